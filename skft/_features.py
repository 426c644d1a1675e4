"""BackboneFeatures: pooled features of a pretrained backbone as a scikit-learn transformer."""

import os
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._clone import SharesModuleOnClone
from ._images.source import image_batches
from ._modality import check_modality_params, check_samples, set_input_tags
from ._nn.assembly import build_network, feature_size
from ._nn.device import resolve_device
from ._text import pad_token_ids, tokenized_texts
from .backbones import RegistrationTravelsMixin, backbone_modality, resolve_backbone


class BackboneFeatures(
    SharesModuleOnClone, RegistrationTravelsMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Pooled features of one block of a pretrained backbone, for any scikit-learn model.

    For images, or texts with a text backbone: ``BackboneFeatures(backbone="all-MiniLM-L6-v2")``
    returns the vectors ``SentenceTransformer.encode`` returns (masked mean pooling, normalised).

    Parameters
    ----------
    backbone : str, path or nn.Module, default="efficientnet_lite0"
        A name from :func:`skft.list_backbones` (image backbones, and ``"all-MiniLM-L6-v2"`` for
        text), ``"hf:<model id>"`` or a local Hugging Face model folder for text, or your own
        ``nn.Module``.
    weights : str, path or None, default="DEFAULT"
        ``"DEFAULT"``, a torchvision weights name, ``None`` (random initialisation) or a path to a
        state dict.
    feature_layer : int, default=-1
        The block whose pooled output is returned.
    image_size : int or None, default=None
        Image backbones: ``None`` is the backbone's own size.
    max_length : int or None, default=None
        Text backbones: tokens per text beyond which texts are truncated (with a warning);
        ``None`` is the backbone's own.
    batch_size : int, default=64
        Images or texts per forward pass in ``transform``.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available; ``"accelerate"`` acts like ``"auto"`` (nothing trains here).
    num_workers : int, default=0
        Processes that read image files (or PIL images, or arrays of different sizes) while the
        network runs; 0 reads them in this process.

    Attributes
    ----------
    network_ : nn.Module
        The frozen backbone up to ``feature_layer`` with its pooling (in eval mode); the estimator's
        own copy, which may be edited without changing other estimators.
    n_features_out_ : int
        Length of each feature vector.
    device_ : str
        The device the network runs on.
    image_size_ : int or None
        None for a text backbone.
    max_length_ : int or None
        None for an image backbone.

    See Also
    --------
    FineTunedClassifier : fine-tunes the backbone instead of freezing it.
    compare_modes : frozen features against fine-tuning on your data.

    Examples
    --------
    >>> import numpy as np
    >>> from skft import BackboneFeatures
    >>> X = np.zeros((4, 32, 32), dtype=np.uint8)
    >>> BackboneFeatures(image_size=32).fit(X).transform(X).shape
    (4, 1280)
    """

    _parameter_constraints = {
        "backbone": [str, os.PathLike, nn.Module],
        "weights": [str, os.PathLike, None],
        "feature_layer": [Integral],
        "image_size": [Interval(Integral, 1, None, closed="left"), None],
        "max_length": [Interval(Integral, 2, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="DEFAULT",
        feature_layer=-1,
        image_size=None,
        max_length=None,
        batch_size=64,
        device="auto",
        num_workers=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.feature_layer = feature_layer
        self.image_size = image_size
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers

    def fit(self, X, y=None):
        """Check ``X``, resolve the backbone and load its weights; nothing is learned from ``X``.

        ``X`` is validated as :meth:`transform` reads it, so that a table, an empty or 1-D array
        or complex values fail here, as they do in the estimators' ``fit``. No
        ``n_features_in_`` is set: images of any size are accepted (and resized to
        ``image_size_``), and texts of any length, so there is no fixed number of input features.

        Parameters
        ----------
        X : array-like of images, sequence of file paths or PIL images, or sequence of str
            As for :meth:`skft.FineTunedClassifier.fit`.
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        modality = backbone_modality(self.backbone)
        check_modality_params(self, modality, self.backbone)
        check_samples(X, modality, self.backbone)
        self.device_ = resolve_device(self.device)
        resolved = resolve_backbone(
            self.backbone, self.weights, image_size=self.image_size, share_modules=self.device_ == "cpu"
        )
        self.image_size_ = self.image_size or getattr(resolved.preprocessing, "image_size", None)
        network = build_network(
            resolved,
            image_size=self.image_size_,
            feature_layer=self.feature_layer,
            n_frozen_for=lambda n_blocks, normalizer: n_blocks,
            head=(),
            n_outputs=None,
            dropout=0.0,
            max_length=self.max_length,
        )
        self.max_length_ = getattr(network.normalizer, "max_length", None)
        if self.device_ == "cpu":
            # Its blocks are the process's kept pretrained modules: copy them, so that editing network_
            # cannot change another estimator.
            network.own_frozen_blocks()
        self.network_ = network.to(self.device_).eval()
        self.n_features_out_ = feature_size(network)
        return self

    def __sklearn_tags__(self):
        """scikit-learn's tags: ``X`` is images (or texts for a text backbone), see :func:`set_input_tags`;
        the features are float32 whatever the input's dtype."""
        tags = set_input_tags(super().__sklearn_tags__(), self.backbone)
        tags.transformer_tags.preserves_dtype = []
        return tags

    @property
    def _n_features_out(self):
        """Used by ``get_feature_names_out`` (names ``backbonefeatures0``, ...)."""
        return self.n_features_out_

    def transform(self, X):
        """Return the pooled ``feature_layer`` features of images or texts ``X``.

        Parameters
        ----------
        X : array-like of images, sequence of file paths or PIL images, or sequence of str
            As for :meth:`skft.FineTunedClassifier.fit`.

        Returns
        -------
        ndarray of shape (N, n_features_out_), float32
        """
        check_is_fitted(self)
        samples = check_samples(X, self.network_.modality, self.backbone, self.image_size_)
        batches = (
            self._text_batches(samples)
            if self.network_.modality == "text"
            else image_batches(samples, self.batch_size, self.num_workers)
        )
        outputs = []
        with torch.inference_mode():
            for batch in batches:
                outputs.append(self.network_.features(_to(batch, self.device_)).float().cpu())
        return torch.cat(outputs).numpy().astype(np.float32, copy=False)

    def _text_batches(self, texts):
        """``(input_ids, attention_mask)`` batches of the texts in order, each padded to its own longest text."""
        tokens = tokenized_texts(texts, self.network_.normalizer)
        for start in range(0, len(tokens), self.batch_size):
            yield pad_token_ids(list(tokens.ids[start : start + self.batch_size]), tokens.pad_token_id)


def _to(batch, device):
    """A batch of images, or a tuple of tensors, on ``device``."""
    return tuple(tensor.to(device) for tensor in batch) if isinstance(batch, tuple) else batch.to(device)
