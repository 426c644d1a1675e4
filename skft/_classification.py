"""FineTunedClassifier: a pretrained backbone fine-tuned to predict labels of any type."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from ._base import FineTunedEstimatorBase, WeightedLoss


class WeightedCrossEntropy(WeightedLoss):
    """Cross-entropy on logits, one value per sample (targets hold class indices as floats)."""

    def per_sample(self, outputs, targets):
        return F.cross_entropy(outputs, targets[:, 0].long(), reduction="none")


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
    trainable_layers : int, default=1
        With ``mode="repurpose"``: how many blocks, counted back from ``feature_layer``, train.
    feature_layer : int, default=-1
        The block whose pooled output feeds the head; later blocks are dropped.
    head : tuple of int, default=()
        Hidden sizes of layers added before the output layer (each Linear, ReLU, Dropout).
    dropout : float, default=0.0
        Dropout rate in the head.
    lr : float, default=1e-3
    batch_size : int, default=32
    max_epochs : int, default=10
    optimizer : {"adamw", "adam", "sgd"} or torch optimizer class, default="adamw"
        ``"sgd"`` uses momentum 0.9.
    weight_decay : float, default=1e-4
    image_size : int or None, default=None
        Side of the square images the network sees; ``None``: the backbone's own size (224 for
        the default). Smaller is much faster.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified) and stop after ``n_iter_no_change`` epochs
        without improvement of the validation loss, restoring the best weights.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
    device : str, default="auto"
        ``"auto"`` uses CUDA when available.
    random_state : int, RandomState or None, default=None
        Seeds head initialisation, shuffling, dropout and the validation split.
    verbose : int, default=0
        ``0`` is silent; ``1`` prints skorch's table of epochs.
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks for the skorch net (copied on every fit).
    warm_start : bool, default=False
        When True and the estimator holds a network (from a fit, an interrupted fit or
        :func:`skft.load`), ``fit`` continues from its weights instead of the pretrained ones, for
        another ``max_epochs`` epochs with a fresh optimizer. The network's shape (backbone,
        ``feature_layer``, ``head``) and the classes must stay the same; ``mode`` and
        ``trainable_layers`` may change (e.g. train the head first, then unfreeze).

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``.
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` is the whole network (``backbone.*``, ``head.*``).
    history_ : skorch.History
        Per-epoch losses and timings.
    image_size_ : int
    backbone_name_ : str
    block_names_ : list of str
        The blocks kept, up to ``feature_layer``.
    n_frozen_blocks_ : int

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

    def _encode_targets(self, y):
        y = column_or_1d(y, warn=True)
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

    def _make_criterion(self):
        return WeightedCrossEntropy()

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
