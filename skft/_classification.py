"""FineTunedClassifier: a pretrained backbone fine-tuned to predict labels of any type."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d
from skorch.callbacks import EpochScoring
from skorch.utils import to_device
from torch import nn
from torch.utils.data import DataLoader

from ._base import FineTunedEstimatorBase, _take
from ._defaults import AUTO, prompt_start_defaults
from ._multilabel import (
    DEFAULT_THRESHOLD,
    check_indicator_matrix,
    is_indicator_matrix,
    tuned_thresholds,
    weighted_f1_samples,
)
from ._nn.calibration import fit_scale_and_bias
from ._nn.distinct_prompts import check_distinct_prompts, colliding_prompts
from ._nn.losses import WeightedBinaryCrossEntropy, WeightedCrossEntropy
from ._nn.network import input_modality
from ._nn.pairs import train_on_pairs
from ._nn.prompt_ensembles import ensembled_class_embeddings, prompt_templates
from ._nn.prompting import PromptHead, UnitNormalize, class_prompt_texts, head_from_prompts, pooled_embeddings
from ._nn.weight_ensembling import interpolate_towards_start, snapshot_head
from ._onnx_export import EXPORTABLE_LABEL_KINDS
from ._parameter_docs import document_shared
from ._targets import check_no_missing_targets
from ._text import pad_token_ids, tokenized_texts
from .backbones import image_backbone_reads_prompts, resolve_backbone


@document_shared
class FineTunedClassifier(ClassifierMixin, FineTunedEstimatorBase):
    """Classifier of images or texts that fine-tunes a pretrained backbone and trains a new head.

    Parameters
    ----------
    {parameters}
    label_smoothing : float in [0, 1), default=0.0
        Label smoothing of the cross-entropy loss: the share of each target spread evenly over the
        classes (0.0 is off).
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the loss, as in scikit-learn (multiplying ``sample_weight``).
    prompt_template : str or list of str, default="{label}"
        With ``mode="prompt"`` or a head that starts from the prompts (``head_init``): the text
        describing class ``c`` is ``prompt_template.format(label=label_prompts.get(c, c))``; it must
        hold ``{label}``. A text (or, on a CLIP-style backbone, an image) is assigned the class whose
        prompt's pooled, normalised embedding is most similar (cosine) to its own; ``predict_proba`` is
        the softmax of ``scale`` times these similarities plus a bias per class (20 and 0 without
        calibration; see ``prompt_calibration``). A list of templates ensembles them: a class's
        embedding is the mean of its normalised prompt embeddings over the templates.
    label_prompts : dict or None, default=None
        What replaces ``{label}`` per class (the class itself when absent), e.g.
        ``{"fresh": "a positive review", "rotten": "a negative review"}``.
    prompt_tokens : int, default=0
        With ``mode="prompt"``: 0 is zero-shot (``fit`` trains nothing: it records the classes and
        embeds their prompts); ``k > 0`` inserts k learned vectors after the first token of every
        text's embeddings and trains only them (prompt tuning), the encoder frozen, still scoring
        against the class prompts.
    prompt_calibration : bool, default=True
        With ``mode="prompt"`` and ``prompt_tokens=0``: ``fit`` chooses the temperature and a bias
        per class that best explain the training labels (weighted cross-entropy, L-BFGS; n_classes + 1
        numbers, nothing in the encoder), so the zero-shot classifier follows the classes' balance
        in your data. False keeps the plain zero-shot rule (scale 20, no bias).
    head_init : {"auto", "random", "prompt"}, default="auto"
        How the head starts. ``"random"``: drawn as ``nn.Linear`` draws it. ``"prompt"`` (text
        backbones and CLIP-style image backbones with a text tower, ``head=()``): as the calibrated
        zero-shot classifier of ``mode="prompt"`` (weights:
        the normalised class-prompt embeddings times the calibrated scale; bias: the calibrated
        biases; the head normalises its input), so before the first step the classifier predicts
        what ``mode="prompt"`` predicts and fine-tuning moves away from the prompts only as far as
        the labels take it. ``"auto"``: ``"prompt"`` for a text backbone with ``head=()`` whose
        classes are described in words (str labels, or ``label_prompts`` for every class) that the
        tokenizer tells apart, else ``"random"`` (a label such as ``0`` says nothing a prompt could
        use; image backbones start from the prompts only when asked: the gain was measured on text).
        Resolved as ``head_init_``.
    pair_steps : int, default=0
        Steps of contrastive training on pairs of training examples before the classification fit
        (SetFit's recipe): each step draws ``batch_size`` pairs, alternately of the same class and of
        different classes, and trains the trainable blocks (not the head) so that the cosine
        similarity of a pair's pooled features is 1 for the same class and 0 otherwise (mean squared
        error; AdamW at the fit's learning rate). The frozen prefix runs once (the activation cache);
        only the trainable blocks run per pair. Then the head starts (``head_init``, on the adapted
        features) and the fit goes on as without pairs. 0 is off; needs trainable blocks.
    wise_alpha : float in [0, 1], default=1.0
        Weight-space ensembling of the zero-shot and the fine-tuned model (WiSE-FT, Wortsman et al.
        2022). After ``fit``, every trained tensor becomes ``(1 - wise_alpha) * start + wise_alpha *
        fine_tuned``: the trained blocks' start is the pretrained weights, the head's is the calibrated
        zero-shot classifier it started as (a LoRA update is scaled by ``wise_alpha``). 1.0 keeps the
        fine-tuned weights; 0.0 gives back the zero-shot prompt classifier; in between trades
        accuracy on your data for the pretrained model's robustness. Below 1 it needs a head that
        started from the prompts (``head_init_ == "prompt"``): the mixture with a random head is no
        model. ``drift_`` is measured after the interpolation (it scales by ``wise_alpha``).
        BatchNorm statistics are the fine-tuned ones.
    threshold : float in (0, 1) or "auto", default=0.5
        Multi-label ``y`` only: a label is predicted when its probability reaches this value.
        ``"auto"`` chooses one threshold per label, the one that maximises the label's F1 score on
        a held-out ``validation_fraction`` of the training data (held out even without
        ``early_stopping``; a label without positives there keeps 0.5).

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``; for a multi-label indicator ``y``, ``arange(n_labels)``.
    head_init_ : str
        How the head started: ``"random"``, ``"prompt"`` (``head_init``), or ``"zero-shot"``
        (``mode="prompt"``).
    threshold_ : ndarray of shape (n_labels,) or None
        The per-label thresholds of ``predict`` for a multi-label ``y``; None for single-label ``y``.
    class_count_ : ndarray of shape (n_classes,)
        Training samples per class (per label for multi-label ``y``), before any validation split.
    n_samples_fit_ : int
        Training samples, before any validation split.
    {attributes}

    See Also
    --------
    FineTunedRegressor : the same fine-tuning for numeric targets.
    BackboneFeatures : pooled backbone features for any scikit-learn model.
    compare_modes : every mode scored side by side on your data.

    Notes
    -----
    ``y`` may be a binary indicator matrix of shape (N, n_labels) (scikit-learn's multi-label
    convention, e.g. from ``MultiLabelBinarizer``): the network then has one sigmoid output per
    label trained with binary cross-entropy, ``predict_proba`` returns per-label probabilities of
    shape (N, n_labels) (as ``MLPClassifier`` does) and ``predict`` an indicator matrix, so
    ``cross_val_score(..., scoring="f1_samples")`` works. ``class_weight`` does not apply to it.

    Ctrl-C during ``fit`` keeps the weights and history reached so far (the estimator predicts with
    them) and then re-raises ``KeyboardInterrupt``, so a grid search stops instead of scoring a
    truncated fit. :meth:`save` and :func:`skft.load` store a fitted estimator in a safetensors
    file that cannot run code when loaded; pickle and joblib work too, for files you trust.

    Examples
    --------
    >>> import numpy as np
    >>> from skft import FineTunedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(20, 32, 32, 3), dtype=np.uint8)
    >>> y = np.array(["cat", "dog"] * 10)
    >>> clf = FineTunedClassifier(mode="feature_extraction", image_size=32, max_epochs=1, random_state=0)
    >>> clf.fit(X, y).predict(X[:2]).shape
    (2,)
    """

    _saved_attributes = FineTunedEstimatorBase._saved_attributes + (
        "classes_",
        "threshold_",
        "n_samples_fit_",
        "class_count_",
    )
    _older_files_fitted = {"threshold_": None, "n_samples_fit_": None, "class_count_": None}

    _parameter_constraints = {
        **FineTunedEstimatorBase._parameter_constraints,
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "prompt_template": [str, list],
        "label_prompts": [dict, None],
        "prompt_tokens": [Interval(Integral, 0, None, closed="left")],
        "prompt_calibration": ["boolean"],
        "head_init": [StrOptions({"auto", "random", "prompt"})],
        "pair_steps": [Interval(Integral, 0, None, closed="left")],
        "wise_alpha": [Interval(Real, 0, 1, closed="both")],
        "threshold": [Interval(Real, 0, 1, closed="neither"), StrOptions({"auto"})],
    }

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="DEFAULT",
        mode="repurpose",
        trainable_layers="auto",
        feature_layer=-1,
        head=(),
        dropout=0.0,
        lr="auto",
        batch_size=32,
        max_epochs=10,
        optimizer="adamw",
        weight_decay=1e-4,
        image_size=None,
        max_length=None,
        augment=False,
        num_workers=0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        cache_dir=None,
        lr_decay=1.0,
        head_lr_scale=1.0,
        warmup_epochs=0,
        l2sp_alpha=0.0,
        lr_schedule=None,
        bn_trainable=False,
        warm_start=False,
        label_smoothing=0.0,
        class_weight=None,
        precision="fp32",
        lora_rank=8,
        lora_alpha=None,
        lora_dropout=0.0,
        tta=None,
        prompt_template="{label}",
        label_prompts=None,
        prompt_tokens=0,
        prompt_calibration=True,
        head_init="auto",
        pair_steps=0,
        wise_alpha=1.0,
        threshold=DEFAULT_THRESHOLD,
    ):
        super().__init__(
            backbone=backbone,
            weights=weights,
            mode=mode,
            trainable_layers=trainable_layers,
            feature_layer=feature_layer,
            head=head,
            dropout=dropout,
            lr=lr,
            batch_size=batch_size,
            max_epochs=max_epochs,
            optimizer=optimizer,
            weight_decay=weight_decay,
            image_size=image_size,
            max_length=max_length,
            augment=augment,
            num_workers=num_workers,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            device=device,
            random_state=random_state,
            verbose=verbose,
            callbacks=callbacks,
            cache_dir=cache_dir,
            lr_decay=lr_decay,
            head_lr_scale=head_lr_scale,
            warmup_epochs=warmup_epochs,
            l2sp_alpha=l2sp_alpha,
            lr_schedule=lr_schedule,
            bn_trainable=bn_trainable,
            warm_start=warm_start,
            precision=precision,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            tta=tta,
        )
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.prompt_template = prompt_template
        self.label_prompts = label_prompts
        self.prompt_tokens = prompt_tokens
        self.prompt_calibration = prompt_calibration
        self.head_init = head_init
        self.pair_steps = pair_steps
        self.wise_alpha = wise_alpha
        self.threshold = threshold

    def _check_prompt_params(self):
        templates = prompt_templates(self.prompt_template)
        if not templates or not all(isinstance(template, str) for template in templates):
            raise TypeError(
                f"prompt_template={self.prompt_template!r} must be a str or a non-empty list of str (templates to "
                "ensemble). Pass e.g. 'a photo of a {label}.' or ['a photo of a {label}.', 'a drawing of a {label}.']."
            )
        if any("{label}" not in template for template in templates):
            raise ValueError(
                f"prompt_template={self.prompt_template!r} has no '{{label}}': every class would get the same prompt. "
                "Pass a template holding {label}, e.g. 'A {label} movie review.'."
            )
        try:
            for template in templates:
                class_prompt_texts(["label"], template, None)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"prompt_template={self.prompt_template!r} cannot be filled in with str.format(label=...) "
                f"({type(error).__name__}: {error}). Keep {{label}} as the only field and double other braces "
                "('{{', '}}')."
            ) from None

    def _trains_nothing(self):
        return self.mode == "prompt" and self.prompt_tokens == 0

    def _prompt_head(self, network):
        """The head of ``mode="prompt"``: similarities to the embeddings of each class's prompt text."""
        if network.modality == "image":  # CLIP, SigLIP: the checkpoint's text tower, read once per process
            embed = resolve_backbone(self.backbone, self.weights, share_modules=True).parts.embed_texts
        else:

            def embed(texts):
                tokens = tokenized_texts(texts, network.normalizer)
                check_distinct_prompts(self.classes_.tolist(), texts, tokens.ids)
                return pooled_embeddings(network, pad_token_ids(tokens.ids, tokens.pad_token_id))

        templates = prompt_templates(self.prompt_template)
        return PromptHead(ensembled_class_embeddings(embed, self.classes_, templates, self.label_prompts))

    def _head_as_built(self, network):
        self.head_init_ = self._resolved_head_init(network.normalizer)
        if not self._head_starts_as_a_classifier():
            return network.head
        # Normalised input: the head computes scale * cosine + bias, as mode="prompt" does, whatever the pooling.
        return nn.Sequential(UnitNormalize(), *network.head)

    def _resolved_head_init(self, normalizer):
        """``head_init``, with ``"auto"`` resolved; refuses ``"prompt"`` where there are no class prompts.

        ``normalizer`` is the network's input module (a text backbone's tokenizer).

        ``"auto"`` picks ``"prompt"`` on text backbones only, where issue 23 measured it, and only where the
        class prompts describe the classes in words (string labels or ``label_prompts`` for every class) that
        the tokenizer tells apart; CLIP-style image backbones read prompts too, but start from them only when
        asked (no measurement on real weights yet).
        """
        modality = input_modality(normalizer)
        if self.mode == "prompt":
            return "zero-shot"
        if self.head_init == "random" or (self.head_init == "auto" and (modality != "text" or self.head)):
            return "random"
        self._check_prompt_params()
        if self.head_init == "auto":  # a text backbone with head=()
            return "prompt" if self._class_prompts_describe_classes(normalizer) else "random"
        reads_prompts = modality == "text" or image_backbone_reads_prompts(self.backbone)
        if not reads_prompts or self.head:
            raise ValueError(
                "head_init='prompt' starts the head as the zero-shot classifier of the class prompts, "
                "which needs a text backbone or an image backbone with a text tower (CLIP, SigLIP, open_clip) and "
                f"head=() (one output layer), but backbone={self.backbone!r} reads {modality}s"
                f"{'' if reads_prompts else ' and has no text tower'} and head={self.head!r}. Use such a backbone "
                "with head=(), or head_init='random'."
            )
        return "prompt"

    def _class_prompts_describe_classes(self, normalizer):
        """Whether every class has a prompt in words (a str label or a label prompt) that tokenises apart."""
        label_prompts = self.label_prompts or {}
        if not all(isinstance(label, str) or label in label_prompts for label in self.classes_.tolist()):
            return False
        for template in prompt_templates(self.prompt_template):
            texts = class_prompt_texts(self.classes_, template, self.label_prompts)
            if colliding_prompts(self.classes_.tolist(), texts, tokenized_texts(texts, normalizer).ids):
                return False
        return True

    def _resolved_lr(self):
        # A head that starts from the prompts, on small data: the blocks take small steps (skft._defaults).
        small_data = self._prompt_start_defaults(self.backbone_name_)
        if self.lr == AUTO and small_data is not None and getattr(self, "head_init_", None) == "prompt":
            if self.mode in small_data.lr:
                return small_data.lr[self.mode]
        return super()._resolved_lr()

    def _resolved_trainable_layers(self, backbone_name, n_blocks, normalizer):
        # A head that starts from the prompts, on small data: every block may adapt (skft._defaults).
        small_data = self._prompt_start_defaults(backbone_name)
        if self.trainable_layers == AUTO and self.mode == "repurpose" and small_data is not None:
            if self._resolved_head_init(normalizer) == "prompt":
                return min(small_data.trainable_layers, n_blocks)
        return super()._resolved_trainable_layers(backbone_name, n_blocks, normalizer)

    def _prompt_start_defaults(self, backbone_name):
        """The backbone's small-data ``"auto"`` values (:func:`skft._defaults.prompt_start_defaults`), or None.

        None also for a multi-label fit, or a loaded file that does not say how many examples each
        class had.
        """
        counts = getattr(self, "class_count_", None)
        if counts is None or self._is_multilabel():
            return None
        return prompt_start_defaults(backbone_name, int(counts.min()))

    def _head_starts_as_a_classifier(self):
        # The calibrated zero-shot classifier: with few examples a fit that keeps close to it is what is wanted.
        return self.head_init_ == "prompt"

    def _refused_by_mode(self):
        refused = super()._refused_by_mode()
        if self.wise_alpha != 1 and (self.mode == "prompt" or self._continues_previous_fit()):
            what = f"mode={self.mode!r} trains nothing in the model" if self.mode == "prompt" else "warm_start=True"
            refused["wise_alpha"] = (
                f"wise_alpha={self.wise_alpha!r} interpolates a fine-tuned network with the zero-shot one it started "
                f"from, but {what} has no such start. Use wise_alpha=1.0, or a fine-tuning mode fitted from the "
                "pretrained weights."
            )
        return refused

    def _prepare_training(self, net, inputs, packed):
        if self.wise_alpha != 1 and not self._head_starts_as_a_classifier():
            raise ValueError(
                f"wise_alpha={self.wise_alpha!r} interpolates the fine-tuned weights with the zero-shot model, but the "
                f"head starts at random (head_init_={self.head_init_!r}): the mixture would be no model. Pass "
                "head_init='prompt' (a text backbone or one with a text tower, head=()), or wise_alpha=1.0."
            )
        calibrates = self.mode == "prompt" and self.prompt_tokens == 0 and self.prompt_calibration
        if not (self.pair_steps or calibrates or self._head_starts_as_a_classifier()):
            return
        initialized = net.initialized_
        if not initialized:
            net.initialize()
        if self.pair_steps:
            self._train_on_pairs(net, inputs(), packed)
        self._start_head(net, inputs, packed)
        if self.wise_alpha != 1:
            self._head_start = snapshot_head(net.module_)
        if not initialized:
            # net.fit initialises the net as it would have (same module instance, head as set here),
            # without announcing a re-initialisation.
            net.initialized_ = False

    def _finish_training(self, network, starting_values):
        head_start = self.__dict__.pop("_head_start", None)
        if self.wise_alpha != 1 and head_start is not None:
            interpolate_towards_start(network, starting_values, head_start, self.wise_alpha)

    def _train_on_pairs(self, net, inputs, packed):
        """SetFit's first phase on the trainable blocks (``pair_steps``); see :mod:`skft._nn.pairs`."""
        network = net.module_
        parameters = [p for name, p in network.named_parameters() if p.requires_grad and not name.startswith("head.")]
        if self.mode == "prompt" or not parameters:
            raise ValueError(
                f"pair_steps={self.pair_steps!r} trains the backbone's trainable blocks on pairs of examples, but "
                f"mode={self.mode!r} trains none. Use mode='repurpose', 'lora' or 'full', or pair_steps=0."
            )
        collate = net.get_params_for("iterator_valid").get("collate_fn")

        def embed(indices):
            subset = _take(inputs, indices.numpy())
            dataset = net.get_dataset(subset, torch.zeros(len(indices)))
            X, _ = next(iter(DataLoader(dataset, batch_size=len(indices), collate_fn=collate)))
            X = to_device(X, net.device)
            return network.features(**X) if isinstance(X, dict) else network.features(X)

        # The pairs are drawn from the fit's batch generator, so a seeded fit draws the same pairs.
        generator = torch.Generator().manual_seed(
            int(torch.randint(2**62, (1,), generator=net.iterator_train__generator))
        )
        network.train()
        train_on_pairs(
            parameters,
            embed,
            packed[:, 0],
            steps=self.pair_steps,
            batch_size=self.batch_size,
            lr=self._resolved_lr(),
            weight_decay=self.weight_decay,
            generator=generator,
        )

    def _start_head(self, net, inputs, packed):
        """Calibrate ``mode="prompt"``'s head, or start a linear head as that calibrated classifier (``head_init``)."""
        calibrates = self.mode == "prompt" and self.prompt_tokens == 0 and self.prompt_calibration
        if not (calibrates or self._head_starts_as_a_classifier()):
            return
        network = net.module_
        head = network.head
        prompt_head = head if self.mode == "prompt" else self._prompt_head(network)
        # The training examples' unit-normalised features, through the network as it starts (and the
        # activation cache).
        network.head = UnitNormalize()
        try:
            features = torch.as_tensor(net.forward(inputs(), training=False))
        finally:
            network.head = head
        codes, weights = packed[:, 0].long(), packed[:, -1]
        prompt_head.calibrate(*fit_scale_and_bias(prompt_head.similarities(features), codes, weights))
        if self.mode == "prompt":
            return
        head_from_prompts(head, prompt_head)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _is_multilabel(self):
        return getattr(self, "threshold_", None) is not None

    def _validation_scores(self):
        if self._is_multilabel():
            return [("valid_f1", EpochScoring(_weighted_f1_samples, lower_is_better=False, name="valid_f1"))]
        return [("valid_acc", EpochScoring(_weighted_accuracy, lower_is_better=False, name="valid_acc"))]

    def _encode_targets(self, y):
        if is_indicator_matrix(y):
            return self._encode_indicator_matrix(y)
        if self.threshold != DEFAULT_THRESHOLD:
            raise ValueError(
                f"threshold={self.threshold!r} applies to multi-label y (a binary indicator matrix), but y is "
                f"{np.ndim(y)}-D single-label targets. Leave threshold at {DEFAULT_THRESHOLD}, or pass y as an "
                "indicator matrix (sklearn.preprocessing.MultiLabelBinarizer makes one)."
            )
        y = column_or_1d(y, warn=True)
        check_no_missing_targets(y)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        self._check_same_classes(classes)
        self.classes_ = classes
        self.threshold_ = None
        self.class_count_ = np.bincount(codes, minlength=len(classes))
        self.n_samples_fit_ = len(codes)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has a single class ({self.classes_[0]!r}); a classifier needs at least 2. Pass labels of two or "
                "more classes."
            )
        return codes.reshape(-1, 1).astype(np.float32)

    def _encode_indicator_matrix(self, y):
        """Multi-label targets: check ``y`` and the parameters, set ``classes_`` and ``threshold_``."""
        indicator = check_indicator_matrix(y)
        if self.class_weight is not None:
            raise ValueError(
                f"class_weight={self.class_weight!r} weighs samples by their one class, but y is a multi-label "
                "indicator matrix. Pass class_weight=None, or weigh samples with sample_weight."
            )
        if self.threshold == "auto" and self._trains_nothing():
            raise ValueError(
                "threshold='auto' chooses thresholds on a split held out from training, but mode='prompt' with "
                "prompt_tokens=0 trains nothing. Pass a number as threshold, or prompt_tokens > 0."
            )
        classes = np.arange(indicator.shape[1])
        self._check_same_classes(classes)
        self.classes_ = classes
        fixed = DEFAULT_THRESHOLD if self.threshold == "auto" else self.threshold
        self.threshold_ = np.full(len(classes), float(fixed))
        self.class_count_ = indicator.sum(axis=0).astype(int)
        self.n_samples_fit_ = len(indicator)
        return indicator

    def _check_same_classes(self, classes):
        if self._continues_previous_fit() and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start=True continues the previous fit, which learned classes {self.classes_.tolist()}, but y "
                f"has classes {classes.tolist()}. Pass y with the same classes, or warm_start=False to start again "
                "from the pretrained weights."
            )

    def _holds_out_validation(self):
        return super()._holds_out_validation() or (self._is_multilabel() and self.threshold == "auto")

    def _learn_from_validation(self, net, valid_dataset):
        if self._is_multilabel() and self.threshold == "auto":
            probabilities = torch.sigmoid(net.forward(valid_dataset.X, training=False).double()).numpy()
            self.threshold_ = tuned_thresholds(probabilities, valid_dataset.y[:, :-1].numpy())

    def _n_outputs(self):
        return len(self.classes_)

    def _make_criterion(self, penalty):
        if self._is_multilabel():
            return WeightedBinaryCrossEntropy(self.label_smoothing, penalty)
        return WeightedCrossEntropy(self.label_smoothing, penalty)

    def _target_weights(self, targets):
        codes = targets[:, 0].astype(int)
        if self.class_weight is None or self._is_multilabel():
            return np.ones(len(codes), dtype=np.float32)
        if self.class_weight == "balanced":
            return compute_sample_weight("balanced", codes).astype(np.float32)
        unknown = [label for label in self.class_weight if label not in set(self.classes_.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight names labels {unknown} that are not in y. The classes are {self.classes_.tolist()}."
            )
        per_class = np.array([self.class_weight.get(label, 1.0) for label in self.classes_], dtype=np.float32)
        return per_class[codes]

    def _stratify(self, targets):
        return None if self._is_multilabel() else targets[:, 0].numpy()

    def _onnx_output(self):
        plain = all(isinstance(label, (str, bool, int, float, np.generic)) for label in self.classes_.tolist())
        if self.classes_.dtype.kind not in EXPORTABLE_LABEL_KINDS or not plain:
            raise ValueError(
                f"export_onnx stores the classes as plain values, but classes_ has dtype {self.classes_.dtype} "
                f"({self.classes_[:3].tolist()}...). Fit with labels that are str, int, float or bool."
            )
        metadata = {
            "estimator": "classifier",
            "classes": self.classes_.tolist(),
            "classes_dtype": self.classes_.dtype.str,
            "threshold": None if self.threshold_ is None else self.threshold_.tolist(),
        }
        output = torch.nn.Sigmoid() if self._is_multilabel() else torch.nn.Softmax(dim=1)
        return output, "probabilities", metadata, self.predict_proba

    def predict_proba(self, X):
        """Class probabilities for images ``X``.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (N, n_classes)
            Rows sum to 1; columns follow ``classes_``. For multi-label ``y``: each label's own
            probability (sigmoid), rows need not sum to 1.
        """
        if self._is_multilabel():
            return self._network_outputs(X, lambda logits: torch.sigmoid(logits.double()))
        return self._network_outputs(X, lambda logits: torch.softmax(logits.double(), dim=1))

    def predict(self, X):
        """Predict labels for images ``X``.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (N,) or (N, n_labels)
            Labels from ``classes_``; for multi-label ``y`` an indicator matrix (1 where a label's
            probability reaches its ``threshold_``).
        """
        if self._is_multilabel():
            return (self.predict_proba(X) >= self.threshold_).astype(int)
        if getattr(self, "tta", None) is not None:
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        logits = self._network_outputs(X)
        return self.classes_[logits.argmax(axis=1)]


def _weighted_accuracy(net, X, packed_targets):
    """Accuracy of ``net`` on ``X``, weighted like the loss (targets packed with their weights, last column)."""
    packed = np.asarray(packed_targets)
    predicted = np.asarray(net.predict(X)).argmax(axis=1)
    return float(np.average(predicted == packed[:, 0], weights=packed[:, -1]))


def _weighted_f1_samples(net, X, packed_targets):
    """``f1_samples`` of ``net`` on ``X`` at thresholds 0.5 (logits above 0), weighted like the loss."""
    return weighted_f1_samples((np.asarray(net.predict(X)) > 0).astype(int), packed_targets)
