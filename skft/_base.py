"""Shared estimator logic: parameters, validation, the fit skeleton, the skorch net."""

import copy
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ._data import images_to_tensor
from ._lifecycle import continue_from, fit_interrupted, fit_reporting_interrupt, keeps_previous_fit_on_error
from ._network import MODES, build_network, count_frozen_blocks
from ._persistence import save_model
from .backbones import RegistrationTravelsMixin, resolve_backbone

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
SGD_MOMENTUM = 0.9


class TrainableOnly:
    """An optimizer factory that hands only trainable parameters to the optimizer.

    skorch gives the optimizer every parameter of the module; frozen ones must not be in it
    (no weight decay on them, no optimizer state for them).

    Parameters
    ----------
    optimizer_class : type
        A ``torch.optim.Optimizer`` subclass.
    """

    def __init__(self, optimizer_class):
        self.optimizer_class = optimizer_class

    def __call__(self, param_groups, **kwargs):
        groups = [dict(group, params=[p for p in group["params"] if p.requires_grad]) for group in param_groups]
        return self.optimizer_class([group for group in groups if group["params"]], **kwargs)


class WeightedLoss(nn.Module):
    """Mean of a per-sample loss weighted by the last column of the target.

    The estimators pack ``sample_weight`` into the target tensor so that weights travel with
    each batch through skorch's ordinary data path.
    """

    def per_sample(self, outputs, targets):
        """Return one loss per sample; subclasses define it."""
        raise NotImplementedError

    def forward(self, outputs, packed_targets):
        targets, weights = packed_targets[:, :-1], packed_targets[:, -1]
        losses = self.per_sample(outputs, targets)
        return (losses * weights).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)


def resolve_device(device):
    """Turn ``"auto"`` into ``"cuda"`` when CUDA is available, else ``"cpu"``.

    Parameters
    ----------
    device : str or torch.device

    Returns
    -------
    str
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>'. Got {device!r} instead.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here. Pass device='auto' or 'cpu'.")
    return str(resolved)


class FineTunedEstimatorBase(RegistrationTravelsMixin, BaseEstimator):
    """Fine-tune a pretrained backbone with a new head; the shared part of every skft estimator.

    Subclasses define the targets (:meth:`_encode_targets`), the loss and how outputs become
    predictions. See :class:`skft.FineTunedClassifier` for the parameters.
    """

    _parameter_constraints = {
        "backbone": [str, nn.Module],
        "weights": [str, os.PathLike, None],
        "mode": [StrOptions(set(MODES))],
        "trainable_layers": [Interval(Integral, 0, None, closed="left")],
        "feature_layer": [Integral],
        "head": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "image_size": [Interval(Integral, 1, None, closed="left"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        backbone="efficientnet_lite0",
        weights="DEFAULT",
        mode="repurpose",
        trainable_layers=1,
        feature_layer=-1,
        head=(),
        dropout=0.0,
        lr=1e-3,
        batch_size=32,
        max_epochs=10,
        optimizer="adamw",
        weight_decay=1e-4,
        image_size=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        warm_start=False,
    ):
        self.backbone = backbone
        self.weights = weights
        self.mode = mode
        self.trainable_layers = trainable_layers
        self.feature_layer = feature_layer
        self.head = head
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.image_size = image_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start

    # -- hooks for subclasses -------------------------------------------------------------

    def _encode_targets(self, y):
        """Validate ``y``, set the fitted target attributes, return float32 targets ``(N, k)``."""
        raise NotImplementedError

    def _make_criterion(self):
        """Return the :class:`WeightedLoss` for this task."""
        raise NotImplementedError

    def _n_outputs(self):
        """Size of the output layer, known after :meth:`_encode_targets`."""
        raise NotImplementedError

    def _stratify(self, targets):
        """Labels to stratify the early-stopping split on, or None."""
        return None

    # -- fitting -----------------------------------------------------------------------------

    @keeps_previous_fit_on_error
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the backbone and train the head on images ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like of images
            ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, uint8 0..255 or float 0..1.
        y : array-like of shape (N,) or (N, n_targets)
        sample_weight : array-like of shape (N,), optional
            Per-image weights of the loss.

        Returns
        -------
        self

        Raises
        ------
        KeyboardInterrupt
            Re-raised after Ctrl-C, once the weights and history reached so far are kept in the
            estimator (usable for predict; ``warm_start=True`` continues from them). A fit that
            fails, or is interrupted before training starts, leaves the estimator as it was.
        """
        self._validate_params()
        self._check_head()
        images = images_to_tensor(X)
        targets = self._encode_targets(y)
        if len(targets) != len(images):
            raise ValueError(f"X and y have different lengths: {len(images)} images but {len(targets)} targets.")
        weights = _check_sample_weight(sample_weight, np.empty(len(images)), dtype=np.float32)
        packed = torch.from_numpy(np.column_stack([targets, weights]).astype(np.float32))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = self._build_network()
            if self._continues_previous_fit():
                continue_from(network, self.net_.module_)
            train_images, train_targets, valid_dataset = self._split_validation(images, packed, seed)
            net = self._make_net(network, valid_dataset, len(train_images), device)
            interrupted = fit_reporting_interrupt(net, train_images, train_targets)
        self.net_ = net
        self.history_ = net.history
        if interrupted:
            raise fit_interrupted(net.history)
        return self

    def _continues_previous_fit(self):
        """Whether this fit starts from the weights of the previous one (``warm_start=True`` after a fit)."""
        return self.warm_start and hasattr(self, "net_")

    def _check_head(self):
        if not all(isinstance(size, Integral) and size > 0 for size in self.head):
            raise ValueError(
                f"head must be a tuple of positive integers (hidden layer sizes), e.g. () or (256,). Got {self.head!r}."
            )

    def _build_network(self):
        resolved = resolve_backbone(self.backbone, self.weights, image_size=self.image_size)
        self.image_size_ = self.image_size or resolved.preprocessing.image_size
        network = build_network(
            resolved,
            image_size=self.image_size_,
            feature_layer=self.feature_layer,
            n_frozen_for=lambda n_blocks: count_frozen_blocks(
                self.mode, self.trainable_layers, n_blocks, resolved.name
            ),
            head=self.head,
            n_outputs=self._n_outputs(),
            dropout=self.dropout,
        )
        self.backbone_name_ = resolved.name
        self.block_names_ = [name for name, _ in network.backbone.named_children()]
        self.n_frozen_blocks_ = network.n_frozen
        return network

    def _split_validation(self, images, packed, seed):
        """Hold out ``validation_fraction`` for early stopping (stratified for classifiers)."""
        if not self.early_stopping:
            return images, packed, None
        train, valid = train_test_split(
            np.arange(len(images)), test_size=self.validation_fraction, random_state=seed,
            stratify=self._stratify(packed),
        )
        return images[train], packed[train], Dataset(images[valid], packed[valid])

    def _make_net(self, network, valid_dataset, n_train, device):
        callbacks = copy.deepcopy(list(self.callbacks or []))
        if self.early_stopping:
            callbacks.append(
                ("early_stopping", EarlyStopping(monitor="valid_loss", patience=self.n_iter_no_change, load_best=True))
            )
        optimizer_class = OPTIMIZERS.get(self.optimizer, self.optimizer)
        optimizer_kwargs = {"optimizer__weight_decay": self.weight_decay}
        if optimizer_class is torch.optim.SGD:
            optimizer_kwargs["optimizer__momentum"] = SGD_MOMENTUM
        # A last training batch of one image breaks BatchNorm in training mode: drop it (it is a
        # different image each epoch, since batches are shuffled).
        drop_last = n_train % self.batch_size == 1 and n_train > 1
        return NeuralNet(
            module=network,
            criterion=self._make_criterion(),
            optimizer=TrainableOnly(optimizer_class),
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            iterator_train__drop_last=drop_last,
            train_split=predefined_split(valid_dataset) if valid_dataset is not None else None,
            callbacks=callbacks,
            device=device,
            verbose=self.verbose,
            **optimizer_kwargs,
        )

    def save(self, path):
        """Save the fitted estimator to one file that loading can never run code from.

        The file is a safetensors file: the network's weights as tensors, and in its metadata, as JSON,
        the parameters, the fitted attributes (classes, target scaling, preprocessing, history), the
        skft version and the backbone's identity. Read it back with :func:`skft.load`. The write is
        atomic: an interrupted save leaves any previous file at ``path`` intact.

        Parameters
        ----------
        path : str or path-like
            Where to write, e.g. ``"model.skft"``.

        Returns
        -------
        self

        Raises
        ------
        TypeError
            When a parameter is not a plain value (an ``nn.Module`` backbone, callbacks, a
            ``RandomState``, an optimizer class outside ``torch.optim``); the message names it.
            pickle and joblib store such estimators, for files you trust.
        """
        save_model(self, path)
        return self

    # -- prediction ------------------------------------------------------------------------

    def _network_outputs(self, X):
        """Raw network outputs (logits or standardised values) for images ``X`` as a numpy array."""
        check_is_fitted(self)
        images = images_to_tensor(X)
        return self.net_.forward(images, training=False).numpy()

