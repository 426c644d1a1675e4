"""Shared estimator logic: parameters, validation, the fit skeleton, the skorch net."""

import copy
import dataclasses
import os
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from skorch.utils import to_device
from torch import nn

from ._cache import frozen_activations, frozen_text_activations, prefix_key
from ._clone import SharesModuleOnClone
from ._defaults import AUTO, resolve_lr, resolve_max_epochs, resolve_trainable_layers
from ._fit_length import count_training_steps, warn_if_loss_barely_moved
from ._images.augment import augmentation_enabled, training_collate
from ._images.source import at_image_size
from ._images.tta import FLIP, augmented_copies, check_tta
from ._modality import check_modality_params, check_samples, set_input_tags
from ._nn.accelerate import ACCELERATE, AcceleratedNet, accelerated_device, make_accelerator
from ._nn.assembly import MODES, build_network, checked_frozen_count, count_frozen_blocks
from ._nn.device import release_cached_gpu_memory, resolve_device
from ._nn.lifecycle import (
    continue_from,
    continued_history,
    fit_interrupted,
    fit_reporting_interrupt,
    keeps_previous_fit_on_error,
)
from ._nn.lora import lora_settings, merge_adapters
from ._nn.network import precise_batchnorm
from ._nn.optim import LR_SCHEDULES, OPTIMIZERS, SGD_MOMENTUM, TrainableOnly, param_groups
from ._nn.precision import PRECISIONS, check_precision
from ._nn.pretrained_base import base_digests
from ._nn.regularizers import L2SPPenalty, block_drift, snapshot_trainable
from ._nn.seeding import FitGenerators, seeded_global_generator
from ._onnx_export import write_onnx
from ._saving import SavedAsModelFile
from ._targets import check_sample_weight
from ._text import TextCollate, tokenized_texts
from .backbones import RegistrationTravelsMixin, backbone_modality, image_backbone_reads_prompts, resolve_backbone
from .callbacks import EarlyStoppingWithLastRow, GradualUnfreezing, fp16_loss_scaling, schedule_callback


class FineTunedEstimatorBase(
    SavedAsModelFile, SharesModuleOnClone, RegistrationTravelsMixin, BaseEstimator, metaclass=ABCMeta
):
    """Fine-tune a pretrained backbone with a new head; the shared part of every skft estimator.

    Subclasses define the targets (:meth:`_encode_targets`), the loss and how outputs become
    predictions. See :class:`skft.FineTunedClassifier` for the parameters.
    """

    _parameter_constraints = {
        "backbone": [str, os.PathLike, nn.Module],
        "weights": [str, os.PathLike, None],
        "mode": [StrOptions(set(MODES))],
        "trainable_layers": [Interval(Integral, 0, None, closed="left"), StrOptions({AUTO}), None],
        "feature_layer": [Integral],
        "head": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({AUTO})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({AUTO})],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "image_size": [Interval(Integral, 1, None, closed="left"), None],
        "max_length": [Interval(Integral, 2, None, closed="left"), None],
        "augment": ["boolean", callable],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "cache_dir": [str, os.PathLike, None],
        "lr_decay": [Interval(Real, 0, 1, closed="right")],
        "head_lr_scale": [Interval(Real, 0, None, closed="neither")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "l2sp_alpha": [Interval(Real, 0, None, closed="left")],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES)), None],
        "bn_trainable": ["boolean"],
        "warm_start": ["boolean"],
        "precision": [StrOptions(set(PRECISIONS))],
        "lora_rank": [Interval(Integral, 1, None, closed="left")],
        "lora_alpha": [Interval(Real, 0, None, closed="neither"), None],
        "lora_dropout": [Interval(Real, 0, 1, closed="left")],
        "tta": [StrOptions({FLIP}), Interval(Integral, 2, None, closed="left"), None],
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
        precision="fp32",
        lora_rank=8,
        lora_alpha=None,
        lora_dropout=0.0,
        tta=None,
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
        self.max_length = max_length
        self.augment = augment
        self.num_workers = num_workers
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.cache_dir = cache_dir
        self.lr_decay = lr_decay
        self.head_lr_scale = head_lr_scale
        self.warmup_epochs = warmup_epochs
        self.l2sp_alpha = l2sp_alpha
        self.lr_schedule = lr_schedule
        self.bn_trainable = bn_trainable
        self.warm_start = warm_start
        self.precision = precision
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.tta = tta

    # -- hooks for subclasses -------------------------------------------------------------

    @abstractmethod
    def _encode_targets(self, y):
        """Validate ``y``, set the fitted target attributes, return float32 targets ``(N, k)``."""

    @abstractmethod
    def _make_criterion(self, penalty):
        """Return the :class:`WeightedLoss` for this task, adding ``penalty`` (or None) to it."""

    @abstractmethod
    def _n_outputs(self):
        """Size of the output layer, known after :meth:`_encode_targets`."""

    def _scaled_targets(self, targets, sample_weight):
        """The encoded targets as the network learns them, given the samples' weights; unchanged by default."""
        return targets

    def _validation_scores(self):
        """Scoring callbacks run on the early-stopping split every epoch (columns of ``history_``); none by default."""
        return []

    def _stratify(self, targets):
        """Labels to stratify the early-stopping split on, or None."""
        return None

    def _holds_out_validation(self):
        """Whether ``fit`` holds out ``validation_fraction`` of the data (early stopping needs it)."""
        return self.early_stopping

    def _learn_from_validation(self, net, valid_dataset):
        """Set what the held-out split decides once training ends (multi-label thresholds); nothing by default."""

    def _target_weights(self, targets):
        """Per-sample weights implied by the targets (class weights); ones by default."""
        return np.ones(len(targets), dtype=np.float32)

    def __sklearn_tags__(self):
        """scikit-learn's tags: ``X`` is images (or texts for a text backbone); see :func:`set_input_tags`."""
        return set_input_tags(super().__sklearn_tags__(), self.backbone)

    # -- fitting -----------------------------------------------------------------------------

    @keeps_previous_fit_on_error
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the backbone and train the head on images or texts ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like of images, sequence of file paths or PIL images, or sequence of str
            Image backbones: an array ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` (uint8
            0..255 or float 0..1); or a list, array or pandas Series of image file paths, PIL
            images or arrays of different sizes, read batch by batch. Images of any size are
            resized to ``image_size``. Text backbones: a list, 1-D array or pandas Series of str
            (empty strings allowed), tokenised once per fit, each text at its own length
            (truncated to ``max_length`` tokens, with a warning).
        y : array-like of shape (N,) or (N, n_targets)
        sample_weight : array-like of shape (N,), optional
            Per-sample weights of the loss, >= 0.

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
        modality = backbone_modality(self.backbone)
        self._check_mode(modality)
        check_modality_params(self, modality, self.backbone)
        check_tta(self.tta, modality, type(self).__name__)
        samples = check_samples(X, modality, self.backbone)
        targets = self._encode_targets(y)
        if len(targets) != len(samples):
            raise ValueError(f"X and y have different lengths: {len(samples)} {modality}s but {len(targets)} targets.")
        weights = check_sample_weight(sample_weight, len(samples))
        targets = self._scaled_targets(targets, weights)
        weights = weights * self._target_weights(targets)
        packed = torch.from_numpy(np.column_stack([targets, weights]).astype(np.float32))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        accelerator = self._make_accelerator()
        device = accelerated_device(accelerator) if accelerator is not None else resolve_device(self.device)
        check_precision(self.precision, device)
        generators = FitGenerators(seed)
        with seeded_global_generator(seed, device):
            continues = self._continues_previous_fit()
            # Frozen pretrained modules are shared between CPU networks while they fit; a continued
            # fit copies trained weights into its blocks, so it must own them.
            network = self._build_network(share_modules=device == "cpu" and not continues, generator=generators.head)
            # Counted as built: a fit with mode="lora" merges its adapters into the weights afterwards.
            n_trainable_params = network.n_trainable_parameters()
            if modality == "image":
                samples = at_image_size(samples, self.image_size_)
            # Before a continued fit copies the previous weights in: L2-SP and drift_ measure from the pretrained ones.
            starting_values = snapshot_trainable(network)
            # What a changes-only model file leaves out, as the fit starts (a continuation keeps the first fit's).
            if continues:
                base = getattr(self, "_base_digests", None)
            else:
                base = None if self.weights is None else base_digests(network)
            if continues:
                continue_from(network, self.net_.module_)
                if self.mode == "prompt":
                    # The class prompts are this fit's (label_prompts, prompt_template), not the previous fit's.
                    network.head = self._prompt_head(network)
            # A continued fit may start from frozen blocks that trained before: no cached activations.
            self.prefix_key_ = None if continues else self._prefix_key(network)
            if self._trains_nothing():
                net = self._make_net(network, None, 0, device, starting_values, accelerator, generators)
                net.initialize()
                if not continues:
                    key = self.prefix_key_
                    self._prepare_training(net, lambda: self._network_inputs(network, samples, device, key), packed)
                interrupted = False
            else:
                inputs = self._network_inputs(network, samples, device, self.prefix_key_)
                train, valid = self._split_validation(packed, seed)
                valid_dataset = Dataset(_take(inputs, valid), packed[valid]) if valid is not None else None
                net = self._make_net(
                    network, valid_dataset, len(train), device, starting_values, accelerator, generators
                )
                if not continues:
                    self._prepare_training(net, lambda: _take(inputs, train), packed[train])
                interrupted = fit_reporting_interrupt(net, _take(inputs, train), packed[train])
                if network.batchnorm_trains and not interrupted:
                    precise_batchnorm(network, _batches(net, _take(inputs, train), packed[train], device))
                self._finish_training(network, starting_values)
                if valid_dataset is not None and not interrupted:
                    # After _finish_training: what is learnt from the validation split (thresholds) fits the
                    # weights the estimator keeps.
                    self._learn_from_validation(net, valid_dataset)
        # Adapters are added into the weights: prediction runs the plain layers.
        merge_adapters(network)
        if torch.device(device).type == "cpu":
            # Frozen blocks were the kept pretrained modules during the fit (what makes many fits cheap); the
            # fitted network is the estimator's own. (Moving a network to a GPU already copied them.)
            network.own_frozen_blocks()
        if continues:
            net.history = continued_history(self.history_, net.history)
        # Fitted means ready to predict (dropout off, BatchNorm statistics used), as predict leaves it.
        network.eval()
        net.criterion_.eval()
        self.net_ = net
        self.history_ = net.history
        self.lr_ = self._resolved_lr()
        self.max_epochs_ = net.max_epochs
        self.n_steps_ = count_training_steps(net.history)
        if not (interrupted or self._trains_nothing() or self._head_starts_as_a_classifier()):
            warn_if_loss_barely_moved(net.history, self.max_epochs, self.lr)
        self.trainable_layers_ = network.n_blocks_after_prefix
        self.n_trainable_params_ = n_trainable_params
        self.drift_ = block_drift(network, starting_values)
        self._base_digests = base
        release_cached_gpu_memory(device)
        if interrupted:
            raise fit_interrupted(net.history)
        return self

    def _make_accelerator(self):
        """The ``Accelerator`` of a fit with ``device="accelerate"``; None for other devices."""
        if self.device != ACCELERATE:
            return None
        unfreezes_gradually = self.warmup_epochs > 0 or any(
            isinstance(callback, GradualUnfreezing) for callback in _callback_objects(self.callbacks)
        )
        return make_accelerator(self.precision, unfreezes_gradually)

    def _continues_previous_fit(self):
        """Whether this fit starts from the weights of the previous one (``warm_start=True`` after a fit)."""
        return self.warm_start and hasattr(self, "net_")

    def _check_mode(self, modality):
        """Refuse parameters that contradict ``mode`` (each error names the parameter and the fix)."""
        if self.mode == "prompt":
            self._check_prompt_params()
            if modality != "text" and not image_backbone_reads_prompts(self.backbone):
                raise ValueError(
                    f"mode='prompt' classifies inputs by their similarity to a text per class, but backbone="
                    f"{self.backbone!r} reads images and has no text tower (CLIP and SigLIP checkpoints have one). "
                    "For an image backbone with its weights unchanged, use mode='feature_extraction'."
                )
        refused = self._refused_by_mode()
        if refused:
            raise ValueError(next(iter(refused.values())))

    def _refused_by_mode(self):
        """The parameters set to a value ``mode`` refuses: name -> the error's message, which says the fix.

        :meth:`_check_mode` raises the first; ``compare_modes`` leaves them out of the rows they do not apply to.
        """
        refused = {}
        if self.trainable_layers is None and self.mode != "lora":
            refused["trainable_layers"] = (
                f"trainable_layers=None means every block only with mode='lora'; mode={self.mode!r} needs an integer "
                "(0 trains the head alone). Pass an integer, or mode='full' to train every block."
            )
        if self.mode != "lora":
            return refused
        for name, value, why in (
            (
                "l2sp_alpha",
                self.l2sp_alpha > 0,
                "the pretrained weights stay frozen, so there is nothing to pull back "
                "to them (the adapters are the whole change; lora_rank bounds it)",
            ),
            (
                "bn_trainable",
                self.bn_trainable,
                "LoRA leaves every pretrained tensor, BatchNorm statistics included, as it was",
            ),
            ("warm_start", self._continues_previous_fit(), "a continued fit would add new adapters onto merged ones"),
        ):
            if value:
                refused[name] = (
                    f"{name}={getattr(self, name)!r} does not apply to mode='lora': {why}. Leave {name} at its "
                    "default, or choose mode='repurpose' or 'full'."
                )
        return refused

    def _check_prompt_params(self):
        """Validate the prompt parameters for ``mode="prompt"``; only classifiers have a prompt per class."""
        raise ValueError(
            f"mode='prompt' assigns each text the class whose prompt it is most similar to, so it needs classes: "
            f"{type(self).__name__} predicts numbers. Use FineTunedClassifier for mode='prompt', or another mode "
            "('feature_extraction' keeps the backbone unchanged)."
        )

    def _trains_nothing(self):
        """Whether ``fit`` only builds the network (zero-shot prompting) instead of training it."""
        return False

    def _head_as_built(self, network):
        """The head ``network`` is built with (the subclass may wrap the one ``build_network`` made)."""
        return network.head

    def _head_starts_as_a_classifier(self):
        """Whether the head starts as a working predictor (then a loss that barely moves is no warning sign)."""
        return False

    def _prepare_training(self, net, inputs, packed):
        """What runs on the training data before the training steps (pairs, the head's start); nothing by default.

        ``inputs`` is a function returning the training inputs (``packed``: their targets and weights).
        """

    def _finish_training(self, network, starting_values):
        """What changes the trained network before its adapters merge (WiSE-FT); nothing by default.

        ``starting_values`` holds the trainable blocks' pretrained weights (:func:`snapshot_trainable`).
        """

    def _check_head(self):
        if not all(isinstance(size, Integral) and size > 0 for size in self.head):
            raise ValueError(
                f"head must be a tuple of positive integers (hidden layer sizes), e.g. () or (256,). Got {self.head!r}."
            )

    def _build_network(
        self,
        *,
        share_modules=False,
        read_weights=True,
        normalisation=None,
        generator=None,
        adapters=True,
        n_frozen=None,
    ):
        """Build the network for this estimator's parameters: the one way ``fit`` and ``load`` build it.

        Parameters
        ----------
        share_modules : bool, default=False
            Use the process's kept pretrained modules for frozen blocks (CPU fits; see
            :func:`skft.backbones.resolve_backbone`).
        read_weights : bool, default=True
            False builds the skeleton for ``weights`` without reading them (``load`` copies the saved
            tensors in afterwards).
        normalisation : dict, optional
            ``{"mean": ..., "std": ...}`` replacing the backbone's (a model file's saved values).
        generator : torch.Generator, optional
            Draws the head's initial values.
        adapters : bool, default=True
            False builds a ``mode="lora"`` network with plain layers, for weights with the adapters merged
            in (``load`` of a full file where peft is not installed).
        n_frozen : int, optional
            The leading blocks to freeze (a model file's ``n_frozen_blocks_``: what its fit froze, whatever
            ``"auto"`` resolves to now); None resolves it from the parameters and the data, as ``fit`` does.

        Returns
        -------
        FineTuneNetwork
        """
        resolved = resolve_backbone(
            self.backbone,
            self.weights,
            image_size=self.image_size,
            share_modules=share_modules,
            read_weights=read_weights,
        )
        if normalisation is not None:
            resolved = dataclasses.replace(
                resolved, preprocessing=dataclasses.replace(resolved.preprocessing, **normalisation)
            )
        self.image_size_ = self.image_size or getattr(resolved.preprocessing, "image_size", None)
        network = build_network(
            resolved,
            image_size=self.image_size_,
            max_length=self.max_length,
            feature_layer=self.feature_layer,
            n_frozen_for=lambda n_blocks, normalizer: (
                count_frozen_blocks(
                    self.mode,
                    self._resolved_trainable_layers(resolved.name, n_blocks, normalizer),
                    n_blocks,
                    resolved.name,
                )
                if n_frozen is None
                else checked_frozen_count(n_frozen, n_blocks, resolved.name)
            ),
            head=self.head,
            n_outputs=None if self.mode == "prompt" else self._n_outputs(),
            dropout=self.dropout,
            # Randomly initialised BatchNorm has no statistics worth keeping: it trains.
            bn_trainable=self.bn_trainable or self.weights is None,
            precision=self.precision,
            generator=generator,
            lora=self._lora_settings() if adapters else None,
            prompt_tokens=self.prompt_tokens if self.mode == "prompt" else 0,
        )
        if self.mode == "prompt":
            network.head = self._prompt_head(network)
        network.head = self._head_as_built(network)
        self.max_length_ = getattr(network.normalizer, "max_length", None)
        self.backbone_name_ = resolved.name
        self.block_names_ = [name for name, _ in network.backbone.named_children()]
        self.n_frozen_blocks_ = network.n_frozen
        return network

    def _resolved_trainable_layers(self, backbone_name, n_blocks, normalizer):
        """``trainable_layers``, or when it is ``"auto"`` the backbone's value (``skft._defaults``).

        Parameters
        ----------
        backbone_name : str
        n_blocks : int
            Blocks up to ``feature_layer``.
        normalizer : nn.Module
            The network's input module (a text backbone's tokenizer), for subclasses whose value
            depends on it.

        Returns
        -------
        int or None
        """
        return resolve_trainable_layers(self.trainable_layers, backbone_name, n_blocks)

    def _resolved_lr(self):
        """``lr``, or when it is ``"auto"`` the backbone's value for this mode (``skft._defaults``)."""
        return resolve_lr(self.lr, self.backbone_name_, self.mode, pretrained=self.weights is not None)

    def _lora_settings(self):
        """The resolved adapter settings with ``mode="lora"`` (``lora_alpha_`` is set), else None."""
        if self.mode != "lora":
            return None
        settings = lora_settings(self.lora_rank, self.lora_alpha, self.lora_dropout)
        self.lora_alpha_ = settings["alpha"]
        return settings

    def _split_validation(self, packed, seed):
        """Training and early-stopping indices (``validation_fraction``, stratified for classifiers)."""
        indices = np.arange(len(packed))
        if not self._holds_out_validation():
            return indices, None
        stratify = self._stratify(packed)
        try:
            return train_test_split(indices, test_size=self.validation_fraction, random_state=seed, stratify=stratify)
        except ValueError as error:
            per_class = "" if stratify is None else ", the same share of every class"
            raise ValueError(
                f"early_stopping=True holds out validation_fraction={self.validation_fraction!r} of the "
                f"{len(indices)} samples{per_class}, which these samples cannot give ({error}). Pass more samples "
                "(at least 2 of every class for a classifier), a validation_fraction that holds out at least one "
                "sample of every class, or early_stopping=False."
            ) from error

    def _prefix_key(self, network):
        """Identity of ``network``'s frozen prefix as built, for the activation cache; None when nothing is frozen."""
        if network.n_frozen == 0 or augmentation_enabled(self):
            return None
        return prefix_key(network, self.precision)

    def _network_inputs(self, network, samples, device, key):
        """What the network is fed: frozen-prefix activations under ``key``, else the images or token ids.

        Texts are tokenised here, once, each at its own length: without the cache the network gets
        ``{"X": token ids per text}``, which batches pad (:class:`skft._text.TextCollate`).
        """
        if network.modality == "text":
            texts = tokenized_texts(samples, network.normalizer)
            if key is None:
                return {"X": texts.ids}
            network.to(device)
            activations = frozen_text_activations(
                network, texts, key=key, device=device, batch_size=max(self.batch_size, 64), cache_dir=self.cache_dir
            )
            return {"X": activations, "start_block": torch.full((len(texts),), network.cache_start)}
        images = samples
        if key is None:
            return images
        network.to(device)
        activations = frozen_activations(
            network,
            images,
            key=key,
            device=device,
            batch_size=max(self.batch_size, 64),
            cache_dir=self.cache_dir,
            num_workers=self.num_workers,
        )
        return {"X": activations, "start_block": torch.full((len(images),), network.cache_start)}

    def _make_net(self, network, valid_dataset, n_train, device, starting_values, accelerator=None, generators=None):
        """The skorch net that trains ``network``: a ``NeuralNet``, or an ``AcceleratedNet`` with ``accelerator``.

        Its batches are shuffled, and augmented, with ``generators`` (a :class:`FitGenerators`; None
        for a net that will not train, e.g. a loaded one: torch's global generator).
        """
        # A last training batch of one image breaks BatchNorm in training mode: drop it (it is a
        # different image each epoch, since batches are shuffled).
        drop_last = n_train % self.batch_size == 1 and n_train > 1
        steps_per_epoch = n_train // self.batch_size if drop_last else -(-n_train // self.batch_size)
        optimizer_class = OPTIMIZERS.get(self.optimizer, self.optimizer)
        lr = self._resolved_lr()
        optimizer_kwargs = {
            "optimizer__weight_decay": self.weight_decay,
            "optimizer__param_groups": param_groups(
                [name for name, _ in network.backbone.named_children()],
                network.n_frozen,
                lr=lr,
                lr_decay=self.lr_decay,
                head_lr_scale=self.head_lr_scale,
                weight_decay=self.weight_decay,
                l2sp=self.l2sp_alpha > 0,
            ),
        }
        if optimizer_class is torch.optim.SGD:
            optimizer_kwargs["optimizer__momentum"] = SGD_MOMENTUM
        penalty = L2SPPenalty(network, starting_values, self.l2sp_alpha) if self.l2sp_alpha > 0 else None
        criterion = self._make_criterion(penalty)
        max_epochs = resolve_max_epochs(self.max_epochs, n_train, self.batch_size)
        callbacks = self._callbacks(len(network.backbone), max_epochs * steps_per_epoch)
        if self.precision == "fp16":
            # First, so that gradient clipping or logging callbacks see unscaled gradients.
            criterion, loss_scaling = fp16_loss_scaling(criterion)
            callbacks.insert(0, ("loss_scaling", loss_scaling))
        if accelerator is None:
            net_class, placement = NeuralNet, {"device": device}
        else:
            # Accelerate places the network and the batches; skorch must not (device=None).
            net_class = AcceleratedNet
            placement = {"device": None, "accelerator": accelerator, "unwrap_after_train": False}
        return net_class(
            module=network,
            criterion=criterion,
            optimizer=TrainableOnly(optimizer_class),
            lr=lr,
            max_epochs=max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            iterator_train__drop_last=drop_last,
            train_split=predefined_split(valid_dataset) if valid_dataset is not None else None,
            callbacks=callbacks,
            verbose=self.verbose,
            iterator_train__generator=generators and generators.batches,
            # Iterating a data loader draws a seed from its generator: prediction must not draw from the global one.
            iterator_valid__generator=torch.Generator(),
            **self._collate(network, generators),
            iterator_train__num_workers=self.num_workers,
            iterator_valid__num_workers=self.num_workers,
            **optimizer_kwargs,
            **placement,
        )

    def _collate(self, network, generators):
        """How batches are made: padded per batch for text, augmented (when asked) for images."""
        if network.modality == "text":
            collate = TextCollate(network.normalizer.preprocessing.pad_token_id)
            return {"iterator_train__collate_fn": collate, "iterator_valid__collate_fn": collate}
        return {
            "iterator_train__collate_fn": training_collate(
                self.augment, self.image_size_, generators and generators.augmentation
            )
        }

    def _callbacks(self, n_blocks, total_steps):
        """The user's callbacks (copied), then early stopping, warm-up and the LR schedule."""
        callbacks = copy.deepcopy(list(self.callbacks or []))
        if self.early_stopping:
            callbacks += self._validation_scores()
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStoppingWithLastRow(monitor="valid_loss", patience=self.n_iter_no_change, load_best=True),
                )
            )
        if self.warmup_epochs:
            callbacks.append(
                ("head_warmup", GradualUnfreezing(start_epoch=self.warmup_epochs, blocks_per_step=n_blocks))
            )
        if self.lr_schedule is not None:
            callbacks.append(("lr_schedule", schedule_callback(self.lr_schedule, total_steps)))
        return callbacks

    # -- export ------------------------------------------------------------------------------

    def export_onnx(self, path):
        """Write the fitted prediction path as an ONNX graph, after checking it against this estimator.

        The graph takes images as uint8 pixels ``(batch, image_size_, image_size_, 3)`` (RGB,
        channels last; resize them to ``image_size_`` first, the normalisation is in the graph), or
        texts as ``input_ids`` and ``attention_mask`` ``(batch, sequence)`` from the backbone's
        tokenizer, whose files are written in the same folder. It returns ``probabilities``
        (classifiers, as ``predict_proba``) or ``predictions`` (regressors, always 2-D). The batch
        size is dynamic. Every mode exports (``mode="lora"`` with its adapters merged); load the file
        with :class:`skft.OnnxClassifier` or :class:`skft.OnnxRegressor`, which need only
        onnxruntime and numpy. Needs the ``onnx`` extra (``pip install 'skft[onnx]'``).

        Parameters
        ----------
        path : str or path-like
            The ``.onnx`` file to write; its folder must exist. For a text backbone, export each
            model to a folder of its own (the tokenizer files have fixed names).

        Returns
        -------
        self

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        FileNotFoundError
            When the folder of ``path`` does not exist.
        ValueError
            When onnxruntime's outputs on a sample batch differ from ``predict_proba`` (or
            ``predict``) by more than 1e-4; the message gives the largest difference and nothing
            is written.
        """
        check_is_fitted(self)
        if self.tta is not None:
            raise ValueError(
                f"export_onnx writes the network without test-time augmentation, but tta={self.tta!r} averages "
                "predictions over augmented copies, so the graph would not predict as this estimator. Export with "
                "est.set_params(tta=None) (prediction only: no refit needed)."
            )
        write_onnx(self, path, *self._onnx_output())
        return self

    def _onnx_output(self):
        """``(output module, output name, metadata, reference)`` for :func:`skft._onnx_export.write_onnx`."""

    # -- prediction ------------------------------------------------------------------------

    def _network_outputs(self, X, transform=None):
        """``transform`` (e.g. a softmax; None: none) of the network's outputs for ``X``, as a numpy array.

        The outputs are logits or standardised values; with ``tta`` the transformed outputs of the
        images and of each augmented copy of them, averaged.
        """
        check_is_fitted(self)
        network = self.net_.module_
        samples = check_samples(X, network.modality, self.backbone, self.image_size_)
        # The key is computed again from the network as it is now, so a fitted network edited in place
        # since its fit never reads, or writes, the entries of what it was.
        key = None if self.prefix_key_ is None else self._prefix_key(network)
        transform = transform or (lambda outputs: outputs)
        outputs = [
            transform(
                self.net_.forward(self._network_inputs(network, copy, str(self.net_.device), key), training=False)
            )
            for copy in augmented_copies(samples, getattr(self, "tta", None), self.image_size_)
        ]
        return (outputs[0] if len(outputs) == 1 else sum(outputs) / len(outputs)).numpy()


def _callback_objects(callbacks):
    """The callback objects in a ``callbacks`` parameter (callbacks, or ``(name, callback)`` pairs)."""
    return [entry[1] if isinstance(entry, tuple) else entry for entry in callbacks or []]


def _batches(net, inputs, targets, device):
    """The inputs of ``net``'s fit in batches of its size, on ``device``, in order."""
    for X, _ in net.get_iterator(net.get_dataset(inputs, targets), training=False):
        yield to_device(X, device)


def _take(inputs, indices):
    """Index images, or a dict of activations and start blocks, by ``indices``."""
    if isinstance(inputs, dict):
        return {name: value[indices] for name, value in inputs.items()}
    return inputs[indices]
