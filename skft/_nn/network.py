"""The network inside every fitted estimator: preprocessing, backbone blocks, pooling, head.

Parameters are named ``backbone.<block>.*`` and ``head.*``, so freezing and per-group
learning rates are globs. The forward takes images, or the activations of block ``k - 1`` together
with ``start_block=k`` (the seam the frozen-prefix cache plugs into); ``start_block=len(backbone) + 1``
takes pooled features.

One network serves both modalities. For a text encoder the input is the pair
``(input_ids, attention_mask)`` of a batch padded to its longest text, every block's output is a
``TextState`` ``(hidden, attention_mask)``, the input module is :class:`TextInput` and the
pooling the backbone's :class:`~skft.backbones.TextPool`.
"""

import copy
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2.functional import InterpolationMode, center_crop, resize

from ..backbones import TEXT_POOLINGS, TextPool, TextState
from ..backbones._digest import remember_copied_digests
from .lora import add_adapters, is_adapter_parameter
from .precision import autocast_context


class ImageNormalizer(nn.Module):
    """Turn a batch of images into the tensor a backbone expects.

    Accepts ``(N, C, H, W)`` with ``C`` in 1, 3 or 4, as ``uint8`` (0..255) or float (0..1):
    grey images are repeated to RGB, an alpha channel is dropped, the batch is resized to
    ``image_size`` (antialiased) and normalised with ``mean`` and ``std``. With a ``crop_pct`` the
    batch is resized as timm's eval transform resizes (shorter side to ``floor(image_size / crop_pct)``)
    and its centre ``image_size`` square kept, values clamped to ``[0, 1]`` as an 8-bit image's are.

    Parameters
    ----------
    image_size : int
    mean, std : tuple of float
    interpolation : {"bilinear", "bicubic"}, default="bilinear"
    crop_pct : float or None, default=None
        None: the whole image is resized to the square.
    """

    def __init__(self, image_size, mean, std, interpolation="bilinear", crop_pct=None):
        super().__init__()
        self.image_size = image_size
        self.interpolation = interpolation
        self.crop_pct = crop_pct
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images):
        x = images.float()
        if images.dtype == torch.uint8:
            x = x / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 4:
            x = x[:, :3]
        if self.crop_pct is not None:
            x = _resize_and_centre_crop(x, self.image_size, self.crop_pct, self.interpolation)
        elif tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode=self.interpolation, antialias=True, align_corners=False
            )
        return (x - self.mean) / self.std

    def probe(self, device):
        """One blank input, to find the pooled feature size or an activation's shape.

        Parameters
        ----------
        device : str or torch.device

        Returns
        -------
        Tensor of shape (1, 3, image_size, image_size), uint8
        """
        return torch.zeros(1, 3, self.image_size, self.image_size, dtype=torch.uint8, device=device)


def _resize_and_centre_crop(x, image_size, crop_pct, interpolation):
    """timm's eval resizing: shorter side to ``floor(image_size / crop_pct)``, then the centre square."""
    mode = InterpolationMode(interpolation)
    x = resize(x, [math.floor(image_size / crop_pct)], interpolation=mode, antialias=True).clamp_(0.0, 1.0)
    return center_crop(x, [image_size, image_size])


class TextInput(nn.Module):
    """The input side of a text encoder: passes ``(input_ids, attention_mask)`` to the embedding block.

    It holds the backbone's preprocessing, the tokenizer and the maximum length texts are
    tokenised to (the text counterpart of :class:`ImageNormalizer`'s size, mean and std), so the
    network carries everything that turns its input into what its first block reads.

    Parameters
    ----------
    preprocessing : skft.backbones.TextPreprocessing
    max_length : int
        Tokens per text, special tokens included.
    """

    def __init__(self, preprocessing, max_length):
        super().__init__()
        self.preprocessing = preprocessing
        self.max_length = int(max_length)

    def forward(self, inputs):
        input_ids, attention_mask = inputs
        return input_ids, attention_mask

    def probe(self, device):
        """One short input of padding tokens (see :meth:`ImageNormalizer.probe`).

        Parameters
        ----------
        device : str or torch.device

        Returns
        -------
        tuple of Tensor of shape (1, 2)
        """
        input_ids = torch.full((1, 2), self.preprocessing.pad_token_id, dtype=torch.long, device=device)
        return input_ids, torch.ones_like(input_ids)

    def extra_repr(self):
        return f"max_length={self.max_length}, tokenizer_digest={self.preprocessing.tokenizer_digest!r}"


def input_device_type(X):
    """The device type of a network input: a tensor, or the first tensor of a text state or token pair.

    Parameters
    ----------
    X : Tensor or tuple of Tensor

    Returns
    -------
    str
    """
    return (X[0] if isinstance(X, (tuple, list)) else X).device.type


def _as_float(x):
    """``x.float()`` for a tensor; the hidden states in float for a text state (the mask unchanged)."""
    if isinstance(x, (tuple, list)):
        hidden, attention_mask = x
        return TextState(hidden.float(), attention_mask)
    return x.float()


def make_pool(pooling):
    """The pooling module for a backbone's ``pooling``: :class:`TextPool` for text, else :class:`GlobalPool`.

    Parameters
    ----------
    pooling : str

    Returns
    -------
    nn.Module
    """
    return TextPool(pooling) if pooling in TEXT_POOLINGS else GlobalPool(pooling)


class GlobalPool(nn.Module):
    """Reduce a block's output to one feature vector per image.

    Parameters
    ----------
    pooling : {"avg", "avg_channels_last", "class_token"}
        An ``(N, D)`` input is already pooled (a block that ends with its own pooling, as timm's
        pre-logits do) and passes through.
    """

    def __init__(self, pooling):
        super().__init__()
        self.pooling = pooling

    def forward(self, x):
        if x.ndim == 2:
            return x
        if self.pooling == "class_token":
            return x[:, 0]
        if self.pooling == "avg_channels_last":
            return x.mean(dim=tuple(range(1, x.ndim - 1)))
        return x.mean(dim=tuple(range(2, x.ndim)))

    def extra_repr(self):
        return repr(self.pooling)


def build_head(in_features, hidden, n_outputs, dropout, generator=None):
    """Build the layers added after the backbone.

    Parameters
    ----------
    in_features : int
        Size of the pooled backbone features.
    hidden : tuple of int
        Sizes of hidden layers (each Linear, ReLU, Dropout); ``()`` is a single output layer.
    n_outputs : int or None
        Size of the output layer; ``None`` builds no output layer (features only).
    dropout : float
        Dropout rate after each hidden layer and before the output layer.
    generator : torch.Generator, optional
        What the initial weights are drawn from (as ``nn.Linear`` draws them); ``None``: torch's
        global generator.

    Returns
    -------
    nn.Sequential
    """
    layers, width = [], in_features
    with torch.device("meta"):
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        if n_outputs is not None:
            if dropout and not hidden:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(width, n_outputs))
    head = nn.Sequential(*layers).to_empty(device="cpu")
    for layer in head:
        if isinstance(layer, nn.Linear):
            _initialize_linear(layer, generator)
    return head


def _initialize_linear(layer, generator):
    """``nn.Linear.reset_parameters``, drawing from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _trainable_copy(block):
    """Give a block that will train its own copy of every module and tensor.

    Pretrained modules and tensors are shared between networks built from the same weights in
    one process; a block that trains must not change them for the others.
    """
    return copy.deepcopy(block).requires_grad_(True)


def input_modality(normalizer):
    """``"text"`` where a network's input module is a tokenizer (:class:`TextInput`), else ``"image"``."""
    return "text" if isinstance(normalizer, TextInput) else "image"


class FineTuneNetwork(nn.Module):
    """Backbone blocks, pooling and head, with the first ``n_frozen`` blocks frozen.

    Frozen blocks have ``requires_grad=False`` and stay in eval mode (BatchNorm statistics and
    dropout fixed) even when the rest of the network is put in training mode, as skorch does
    on every batch.

    Parameters
    ----------
    blocks : list of (str, nn.Module)
        The backbone's blocks up to the feature layer, in order.
    pooling : str
        See :class:`GlobalPool` (images) and :class:`~skft.backbones.TextPool` (text).
    head : nn.Module
    normalizer : ImageNormalizer or TextInput
    n_frozen : int
        How many leading blocks are frozen.
    bn_trainable : bool
        Whether BatchNorm layers in trainable blocks use batch statistics and update their running
        statistics while training. ``False`` keeps every BatchNorm in eval mode (its affine
        parameters still train), so training and prediction normalise alike.
    autocast_dtype : torch.dtype or None, default=None
        Run the forward (and the frozen prefix) under ``torch.autocast`` with this dtype
        (``torch.bfloat16`` or ``torch.float16``); outputs are float32 either way. None: float32.
    """

    def __init__(self, blocks, pooling, head, normalizer, n_frozen, bn_trainable=False, autocast_dtype=None):
        super().__init__()
        self.normalizer = normalizer
        self.backbone = nn.Sequential(
            OrderedDict(
                (name, block if index < n_frozen else _trainable_copy(block))
                for index, (name, block) in enumerate(blocks)
            )
        )
        self.pool = make_pool(pooling)
        self.head = head
        self.n_frozen = n_frozen
        self.n_trainable = self.n_blocks_after_prefix
        self.bn_trainable = bn_trainable
        self.autocast_dtype = autocast_dtype
        self.trains_only = None
        for block in self.frozen_blocks():
            block.requires_grad_(False)
        self.train(False)

    def frozen_blocks(self):
        """Return the blocks frozen for the whole fit (the cacheable prefix), in order.

        Returns
        -------
        list of nn.Module
        """
        return list(self.backbone)[: self.n_frozen]

    def own_frozen_blocks(self):
        """Replace the frozen blocks by copies of them, so that this network shares no module or tensor.

        During a fit on the CPU the frozen blocks are the process's kept pretrained modules, shared
        by every network built from the same weights. A fitted estimator calls this before handing
        its network out: whatever a user then does to it (train it, ``.half()``, edit a tensor in
        place) cannot reach another fit.
        """
        for name, block in list(self.backbone.named_children())[: self.n_frozen]:
            copied = copy.deepcopy(block)
            remember_copied_digests(block, copied)
            setattr(self.backbone, name, copied)

    def use_adapters(self, settings):
        """Attach LoRA adapters to every block after the frozen prefix: only they (and the head) train then.

        Parameters
        ----------
        settings : dict
            From :func:`skft._nn.lora.lora_settings`.
        """
        for block in list(self.backbone)[self.n_frozen :]:
            add_adapters(block, settings)
        self.train_only(is_adapter_parameter)

    @property
    def n_blocks_after_prefix(self):
        """How many blocks follow the frozen prefix: those a fit may train.

        Returns
        -------
        int
        """
        return len(self.backbone) - self.n_frozen

    def n_trainable_parameters(self):
        """How many parameter values train: those with ``requires_grad`` (LoRA: adapters and head).

        Returns
        -------
        int
        """
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train_only(self, predicate):
        """In the blocks after the frozen prefix, train only the parameters ``predicate`` accepts.

        The other parameters of those blocks stay frozen (no gradient) while the blocks run in
        training mode, also after :meth:`set_trainable_blocks`. Used by LoRA (adapters only) and
        prompt tuning (the prompt vectors only).

        Parameters
        ----------
        predicate : callable
            ``predicate(name) -> bool`` for a parameter's name within its block; a module-level
            function, so that the network pickles.
        """
        self.trains_only = predicate
        self.set_trainable_blocks(self.n_trainable)

    def set_trainable_blocks(self, n_trainable):
        """Train only the last ``n_trainable`` of the blocks after the frozen prefix.

        The other blocks after the prefix are held: no gradient and eval mode, as if frozen.
        Used by warm-up (train the head first) and gradual unfreezing.

        Parameters
        ----------
        n_trainable : int
            From 0 (head only) to ``len(backbone) - n_frozen``.
        """
        maximum = self.n_blocks_after_prefix
        if not 0 <= n_trainable <= maximum:
            raise ValueError(f"n_trainable must lie in 0..{maximum}. Got {n_trainable!r} instead.")
        self.n_trainable = n_trainable
        for index, block in enumerate(self.backbone):
            if index >= self.n_frozen:
                block.requires_grad_(index >= len(self.backbone) - n_trainable)
                for name, parameter in block.named_parameters():
                    if self.trains_only is not None and not self.trains_only(name):
                        parameter.requires_grad_(False)
        self.train(self.training)

    def train(self, mode=True):
        """Set training mode except in frozen or held blocks (and BatchNorm unless ``bn_trainable``).

        skorch calls this on every batch, so frozen blocks are only visited when one of them is
        not yet in eval mode.
        """
        self.training = mode
        for module in (self.normalizer, self.pool, self.head):
            module.train(mode)
        self.backbone.training = mode
        n_still = len(self.backbone) - self.n_trainable
        for index, block in enumerate(self.backbone):
            if index >= n_still:
                block.train(mode)
            elif block.training:
                block.eval()
        if mode and not self.bn_trainable:
            for block in list(self.backbone)[n_still:]:
                for module in block.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        if mode and self.trains_only is not None:
            # Blocks whose pretrained weights stay frozen (LoRA, prompt tuning): their own dropout stays off,
            # as in frozen blocks; only what trains (e.g. the adapters' lora_dropout) draws.
            for block in list(self.backbone)[n_still:]:
                for name, module in block.named_modules():
                    if isinstance(module, nn.modules.dropout._DropoutNd) and not self.trains_only(name):
                        module.eval()
        return self

    @property
    def batchnorm_trains(self):
        """Whether a fit updates BatchNorm statistics: ``bn_trainable`` and a trainable block holding BatchNorm."""
        return self.bn_trainable and bool(_trainable_batchnorms(self))

    @property
    def modality(self):
        """``"text"`` for a text encoder's network, else ``"image"``."""
        return input_modality(self.normalizer)

    @property
    def cache_start(self):
        """The ``start_block`` at which training resumes after the frozen prefix.

        ``n_frozen`` while trainable blocks remain; ``len(backbone) + 1`` when every block is
        frozen, in which case the prefix ends with the (parameter-free) pooling.
        """
        return self.n_frozen if self.n_frozen < len(self.backbone) else len(self.backbone) + 1

    def frozen_prefix(self, inputs):
        """Run the frozen part on inputs: what the frozen-prefix cache stores.

        Parameters
        ----------
        inputs : Tensor of shape (N, C, H, W), or tuple of Tensor
            Images, or ``(input_ids, attention_mask)`` of a padded batch of texts.

        Returns
        -------
        Tensor or TextState
            The output of the last frozen block (pooled when every block is frozen), float32
            (for text, a ``TextState`` with float32 hidden states); inference tensors, to be
            cloned before use in training.
        """
        with torch.inference_mode(), autocast_context(self.autocast_dtype, input_device_type(inputs)):
            x = self.normalizer(inputs)
            for block in self.frozen_blocks():
                x = block(x)
            return _as_float(self.pool(x) if self.n_frozen == len(self.backbone) else x)

    def features(self, X, start_block=0):
        """Pooled backbone features of images, or of block activations.

        Parameters
        ----------
        X : Tensor or tuple of Tensor
            Images ``(N, C, H, W)`` (or ``(input_ids, attention_mask)``) when ``start_block`` is 0,
            else the output of block ``start_block - 1`` (a text state ``(hidden, attention_mask)``);
            already pooled features when ``start_block`` is ``len(backbone) + 1``.
        start_block : int or Tensor
            Index of the first block to run (a tensor of equal values when it comes through a data loader).

        Returns
        -------
        Tensor of shape (N, n_features)
        """
        start = int(start_block.flatten()[0]) if torch.is_tensor(start_block) else int(start_block)
        if start > len(self.backbone):
            return X
        x = self.normalizer(X) if start == 0 else X
        for block in list(self.backbone)[start:]:
            x = block(x)
        return self.pool(x)

    def forward(self, X, start_block=0):
        with autocast_context(self.autocast_dtype, input_device_type(X)):
            outputs = self.head(self.features(X, start_block))
        return outputs.float()


def _trainable_batchnorms(network):
    return [
        module
        for block in list(network.backbone)[network.n_frozen :]
        for module in block.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]


def precise_batchnorm(network, batches):
    """Re-estimate the running statistics of the trainable blocks' BatchNorm layers ("precise BN").

    During training the running statistics are an exponential average over batches of weights that
    kept changing (and with a small momentum, such as EfficientNet-Lite's 0.01, far behind them).
    This resets them and takes the plain average over one pass of ``batches`` with the final
    weights (``momentum=None``), everything else in eval mode and without gradients; prediction
    then normalises each image with these fixed statistics, alone or in a batch alike.

    Parameters
    ----------
    network : FineTuneNetwork
    batches : iterable
        What the network's forward takes, batch by batch: a tensor of images, or a dict of its
        keyword arguments (cached activations and ``start_block``).
    """
    layers = _trainable_batchnorms(network)
    momenta = [layer.momentum for layer in layers]
    was_training = network.training
    network.train(False)
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
            layer.train()
        with torch.no_grad():
            for batch in batches:
                network(**batch) if isinstance(batch, dict) else network(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
            layer.eval()
        network.train(was_training)
