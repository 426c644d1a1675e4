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

from ._base import FineTunedEstimatorBase
from ._multilabel import (
    DEFAULT_THRESHOLD,
    check_indicator_matrix,
    is_indicator_matrix,
    tuned_thresholds,
    weighted_f1_samples,
)
from ._nn.losses import WeightedBinaryCrossEntropy, WeightedCrossEntropy
from ._nn.prompting import PromptHead, class_prompt_texts, pooled_embeddings
from ._onnx_export import EXPORTABLE_LABEL_KINDS
from ._parameter_docs import document_shared
from ._targets import check_no_missing_targets
from ._text import pad_token_ids, tokenized_texts


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
    prompt_template : str, default="{label}"
        With ``mode="prompt"``: the text describing class ``c`` is
        ``prompt_template.format(label=label_prompts.get(c, c))``; it must hold ``{label}``. A text
        is assigned the class whose prompt's pooled, normalised embedding is most similar (cosine)
        to its own; ``predict_proba`` is the softmax of 20 times these similarities.
    label_prompts : dict or None, default=None
        With ``mode="prompt"``: what replaces ``{label}`` per class (the class itself when
        absent), e.g. ``{"fresh": "a positive review", "rotten": "a negative review"}``.
    prompt_tokens : int, default=0
        With ``mode="prompt"``: 0 is zero-shot (``fit`` trains nothing: it records the classes and
        embeds their prompts); ``k > 0`` inserts k learned vectors after the first token of every
        text's embeddings and trains only them (prompt tuning), the encoder frozen, still scoring
        against the class prompts.
    threshold : float in (0, 1) or "auto", default=0.5
        Multi-label ``y`` only: a label is predicted when its probability reaches this value.
        ``"auto"`` chooses one threshold per label, the one that maximises the label's F1 score on
        a held-out ``validation_fraction`` of the training data (held out even without
        ``early_stopping``; a label without positives there keeps 0.5).

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``; for a multi-label indicator ``y``, ``arange(n_labels)``.
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
        "prompt_template": [str],
        "label_prompts": [dict, None],
        "prompt_tokens": [Interval(Integral, 0, None, closed="left")],
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
        self.threshold = threshold

    def _check_prompt_params(self):
        if "{label}" not in self.prompt_template:
            raise ValueError(
                f"prompt_template={self.prompt_template!r} has no '{{label}}': every class would get the same prompt. "
                "Pass a template holding {label}, e.g. 'A {label} movie review.'."
            )
        try:
            class_prompt_texts(["label"], self.prompt_template, None)
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
        texts = class_prompt_texts(self.classes_, self.prompt_template, self.label_prompts)
        tokens = tokenized_texts(texts, network.normalizer)
        return PromptHead(pooled_embeddings(network, pad_token_ids(tokens.ids, tokens.pad_token_id)))

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
