"""FineTunedClassifier: a pretrained backbone fine-tuned to predict labels of any type."""

from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from skorch.callbacks import EpochScoring

from ._base import FineTunedEstimatorBase
from ._nn.losses import WeightedCrossEntropy
from ._targets import check_no_missing_targets


class FineTunedClassifier(ClassifierMixin, FineTunedEstimatorBase):
    """Image classifier that fine-tunes a pretrained backbone and trains a new head.

    Parameters
    ----------
    backbone : str or nn.Module, default="efficientnet_lite0"
        A name from :func:`skft.list_backbones` (the default ships its ImageNet weights and works
        offline; torchvision names need their weights in the torch hub cache), or your own network.
    weights : str, path or None, default="DEFAULT"
        ``"DEFAULT"``, a torchvision weights name, ``None`` (random initialisation) or a path to a
        ``.pth``/``.pt``/``.safetensors`` state dict.
    mode : {"full", "feature_extraction", "repurpose"}, default="repurpose"
        What trains: every block; only the head; or the last ``trainable_layers`` blocks and the head.
    trainable_layers : int or "auto", default="auto"
        With ``mode="repurpose"``: how many blocks, counted back from ``feature_layer``, train.
        ``"auto"``: the backbone's measured value (3 for ``efficientnet_lite0``; 2 for a backbone
        without one), see ``docs/defaults.md``; the fit reports it as ``trainable_layers_``.
    feature_layer : int, default=-1
        The block whose pooled output feeds the head; later blocks are dropped.
    head : tuple of int, default=()
        Hidden sizes of layers added before the output layer (each Linear, ReLU, Dropout).
    dropout : float, default=0.0
        Dropout rate in the head.
    lr : float or "auto", default="auto"
        Learning rate. ``"auto"``: the value measured for the backbone and ``mode`` (for
        ``efficientnet_lite0``: 3e-3 for ``feature_extraction``, 3e-4 for ``repurpose`` and
        ``full``, 1e-3 for ``full`` with ``weights=None``; other backbones get conservative
        values: 1e-4 for ``full``), see ``docs/defaults.md``; the fit reports it as ``lr_``.
    batch_size : int, default=32
    max_epochs : int, default=10
    optimizer : {"adamw", "adam", "sgd"} or torch optimizer class, default="adamw"
        ``"sgd"`` uses momentum 0.9.
    weight_decay : float, default=1e-4
    image_size : int or None, default=None
        Side of the square images the network sees; ``None``: the backbone's own size (224 for
        the default). Smaller is much faster. Images of any size, smaller ones too, are resized
        to it; ``image_size`` itself must be one the backbone accepts (see
        :func:`skft.describe_backbone`: at least 32 for EfficientNet-Lite).
    augment : bool or callable, default=False
        Random changes to training images, drawn anew each epoch: ``True`` crops a random 70-100%
        of each image (resized back to ``image_size``) and flips half of them left to right, which
        is wrong where orientation matters (digits, text): pass your own instead, a callable or
        torchvision transform that takes and returns one ``(C, H, W)`` tensor (``uint8``, or
        ``float32`` in ``[0, 1]``), e.g. ``torchvision.transforms.v2.RandomRotation(10)``. Only
        training batches are augmented: never the early-stopping split, never predictions.
    num_workers : int, default=0
        Processes that read image files (or PIL images, or arrays of different sizes) and augment
        them while the network trains; 0 does it in this process.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified) and stop after ``n_iter_no_change`` epochs
        without improvement of the validation loss, restoring the best weights.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
    device : str, default="auto"
        ``"auto"`` uses CUDA when available; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` pick one.
        ``"accelerate"`` trains through Hugging Face Accelerate (``pip install 'skft[accelerate]'``):
        started with ``accelerate launch`` or ``torchrun`` on several GPUs, one fit is spread over
        them, each process training on its share of every epoch's batches (docs/scaling.md).
    random_state : int, RandomState or None, default=None
        Seeds head initialisation, shuffling, augmentation, dropout and the validation split.
        Each fit draws from generators of its own, never reading or moving torch's global random
        state, so fits in threads equal fits one after another; except dropout and drop-connect
        (and ``weights=None`` initialisation, a callable ``augment``), which only torch's global
        generator can serve: a fit seeds it and restores it afterwards, but threads share it, so
        fits in threads that train dropout are reproducible only with one thread per worker.
    verbose : int, default=0
        ``0`` is silent; ``1`` prints skorch's table of epochs (with ``early_stopping``: the
        validation loss and accuracy too, down to the epoch that stopped the fit).
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks for the skorch net (copied on every fit).
    cache_dir : str, path or None, default=None
        A folder for the frozen-prefix activation cache, shared by parallel workers (see the README).
    lr_decay : float in (0, 1], default=1.0
        Layer-wise learning-rate decay: the trainable block ``k`` places below the head (the top
        block is ``k = 1``) trains at ``lr * lr_decay**k``. ``1.0`` is off.
    head_lr_scale : float, default=1.0
        The head's learning rate as a multiple of ``lr``.
    warmup_epochs : int, default=0
        Train only the head for that many epochs, then the blocks the mode trains (LP-FT).
    l2sp_alpha : float, default=0.0
        L2-SP: add ``l2sp_alpha / 2 * ||w - w_pretrained||^2`` over the trainable backbone weights
        to the training loss; those weights then get no plain weight decay (the head keeps it).
    lr_schedule : {"cosine", "onecycle"} or None, default=None
        Per-batch schedule with a linear warm-up (see the user guide).
    bn_trainable : bool, default=False
        Whether BatchNorm in trainable blocks normalises with batch statistics and updates its
        running statistics. ``False`` keeps the pretrained statistics (measured better; README).
        With ``weights=None`` BatchNorm always trains (there are no statistics to keep). Wherever
        it trains, its running statistics are re-estimated after the fit in one pass over the
        training images with the final weights (a plain average, "precise BN"), so prediction
        normalises every image alike, alone or in a batch.
    label_smoothing : float in [0, 1), default=0.0
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the loss, as in scikit-learn (multiplying ``sample_weight``).
    warm_start : bool, default=False
        When True and the estimator holds a network (from a fit, an interrupted fit or
        :func:`skft.load`), ``fit`` continues from its weights instead of the pretrained ones, for
        another ``max_epochs`` epochs with a fresh optimizer; ``history_`` goes on from the
        previous epochs, and L2-SP and ``drift_`` still measure from the pretrained weights. The
        network's shape (backbone, ``feature_layer``, ``head``) and the classes must stay the
        same; ``mode`` and ``trainable_layers`` may change (e.g. train the head first, then
        unfreeze).
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Arithmetic of the network's forward: ``"bf16"`` and ``"fp16"`` run it under
        ``torch.autocast`` (mixed precision; weights, optimizer and returned outputs stay float32).
        ``"bf16"`` works on CPU and CUDA; ``"fp16"`` needs CUDA and trains with dynamic loss
        scaling (docs/scaling.md).

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``.
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` is the whole network (``backbone.*``, ``head.*``), the
        estimator's own: editing it (training it further, ``.half()``) changes no other fit.
    history_ : skorch.History
        Per-epoch losses and timings; a ``warm_start`` fit appends its epochs to the previous ones.
    image_size_ : int
    backbone_name_ : str
    block_names_ : list of str
        The blocks kept, up to ``feature_layer``.
    n_frozen_blocks_ : int
    lr_ : float
        The learning rate the fit used (``lr``, or what ``"auto"`` resolved to).
    trainable_layers_ : int
        How many blocks trained: all of them for ``full``, none for ``feature_extraction``.
    drift_ : dict of str to float
        Per block: the relative L2 distance of its parameters from their starting (pretrained)
        values after the fit (also after ``warm_start`` fits); 0.0 for blocks frozen in this fit.

    Notes
    -----
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

    _parameter_constraints = {
        **FineTunedEstimatorBase._parameter_constraints,
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(
        self,
        backbone="efficientnet_lite0",
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
        )
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight

    def _validation_scores(self):
        return [("valid_acc", EpochScoring(_weighted_accuracy, lower_is_better=False, name="valid_acc"))]

    def _encode_targets(self, y):
        y = column_or_1d(y, warn=True)
        check_no_missing_targets(y)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if self._continues_previous_fit() and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start=True continues the previous fit, which learned classes {self.classes_.tolist()}, but y "
                f"has classes {classes.tolist()}. Pass y with the same classes, or warm_start=False to start again "
                "from the pretrained weights."
            )
        self.classes_ = classes
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has a single class ({self.classes_[0]!r}); a classifier needs at least 2. Pass labels of two or "
                "more classes."
            )
        return codes.reshape(-1, 1).astype(np.float32)

    def _n_outputs(self):
        return len(self.classes_)

    def _make_criterion(self, penalty):
        return WeightedCrossEntropy(self.label_smoothing, penalty)

    def _target_weights(self, targets):
        codes = targets[:, 0].astype(int)
        if self.class_weight is None:
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
        return targets[:, 0].numpy()

    def predict_proba(self, X):
        """Class probabilities for images ``X``.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (N, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        logits = torch.from_numpy(self._network_outputs(X))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X):
        """Predict labels for images ``X``.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (N,)
            Labels from ``classes_``.
        """
        logits = self._network_outputs(X)
        return self.classes_[logits.argmax(axis=1)]


def _weighted_accuracy(net, X, packed_targets):
    """Accuracy of ``net`` on ``X``, weighted like the loss (targets packed with their weights, last column)."""
    packed = np.asarray(packed_targets)
    predicted = np.asarray(net.predict(X)).argmax(axis=1)
    return float(np.average(predicted == packed[:, 0], weights=packed[:, -1]))
