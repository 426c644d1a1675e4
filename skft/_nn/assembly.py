"""Building a :class:`FineTuneNetwork` from a resolved backbone and the estimator's choices."""

from numbers import Integral

import torch

from ..backbones import TextPreprocessing, UndescribableAttribute, module_digest
from .network import FineTuneNetwork, ImageNormalizer, TextInput, build_head
from .precision import autocast_dtype
from .prompting import insert_prompt_tokens, is_prompt_parameter

MODES = ("full", "feature_extraction", "repurpose", "lora", "prompt")


def select_blocks(blocks, feature_layer, backbone_name):
    """Keep the blocks up to and including ``feature_layer``.

    Parameters
    ----------
    blocks : list of (str, nn.Module)
    feature_layer : int
        Index of the block whose pooled output feeds the head; negative counts from the end.
    backbone_name : str
        Used in the message.

    Returns
    -------
    list of (str, nn.Module)
    """
    n_blocks = len(blocks)
    if not isinstance(feature_layer, Integral) or not -n_blocks <= feature_layer < n_blocks:
        raise ValueError(
            f"feature_layer={feature_layer!r} is outside the {n_blocks} blocks of backbone {backbone_name!r}. "
            f"Pass an index from {-n_blocks} to {n_blocks - 1} (-1 is the last block)."
        )
    return blocks[: feature_layer % n_blocks + 1]


def count_frozen_blocks(mode, trainable_layers, n_blocks, backbone_name):
    """How many leading blocks a mode freezes.

    Parameters
    ----------
    mode : {"full", "feature_extraction", "repurpose", "lora", "prompt"}
    trainable_layers : int or None
        Used by ``"repurpose"`` and ``"lora"``: how many of the last blocks train (get adapters, for
        ``"lora"``, where None or 0 means every block).
    n_blocks : int
        Blocks kept up to the feature layer.
    backbone_name : str
        Used in the message.

    Returns
    -------
    int
    """
    if mode == "full":
        return 0
    if mode in ("feature_extraction", "prompt"):
        return n_blocks
    if mode == "lora" and not trainable_layers:
        return 0
    if not isinstance(trainable_layers, Integral) or not 0 <= trainable_layers <= n_blocks:
        raise ValueError(
            f"trainable_layers={trainable_layers!r} does not fit backbone {backbone_name!r}, which has {n_blocks} "
            f"blocks up to feature_layer. Pass an integer from 0 to {n_blocks}."
        )
    return n_blocks - trainable_layers


def checked_frozen_count(n_frozen, n_blocks, backbone_name):
    """A model file's count of frozen blocks, refused unless it is an integer from 0 to ``n_blocks``.

    Parameters
    ----------
    n_frozen : object
        What the file says (read from JSON: any type).
    n_blocks : int
        Blocks up to ``feature_layer``.
    backbone_name : str
        Used in the message.

    Returns
    -------
    int
    """
    if isinstance(n_frozen, bool) or not isinstance(n_frozen, Integral) or not 0 <= n_frozen <= n_blocks:
        raise ValueError(
            f"the file freezes n_frozen_blocks_={n_frozen!r} blocks, but backbone {backbone_name!r} has {n_blocks} "
            "blocks up to feature_layer"
        )
    return int(n_frozen)


def input_module(resolved, *, image_size=None, max_length=None):
    """The network's input module: :class:`ImageNormalizer` for images, :class:`TextInput` for text.

    Parameters
    ----------
    resolved : ResolvedBackbone
    image_size : int, optional
        Images: the side images are resized to (checked against the backbone).
    max_length : int, optional
        Text: tokens per text; ``None`` is the backbone's own (checked against its positions).

    Returns
    -------
    ImageNormalizer or TextInput
    """
    pre = resolved.preprocessing
    if isinstance(pre, TextPreprocessing):
        max_length = pre.max_length if max_length is None else max_length
        pre.check_max_length(max_length, resolved.name)
        return TextInput(pre, max_length)
    pre.check_image_size(image_size, resolved.name)
    return ImageNormalizer(image_size, pre.mean, pre.std, pre.interpolation, pre.crop_pct)


def build_network(
    resolved,
    *,
    image_size,
    feature_layer,
    n_frozen_for,
    head,
    n_outputs,
    dropout,
    bn_trainable=False,
    precision="fp32",
    generator=None,
    max_length=None,
    lora=None,
    prompt_tokens=0,
):
    """Assemble the whole network for a fit.

    Parameters
    ----------
    resolved : ResolvedBackbone
    image_size : int or None
        Images' side (``None`` for a text backbone).
    feature_layer : int
    n_frozen_for : callable
        ``n_frozen_for(n_blocks, normalizer) -> int``: how many of the kept blocks to freeze, given
        their number and the input module (a text backbone's tokenizer).
    head : tuple of int
        Hidden sizes of the added layers.
    n_outputs : int or None
        Size of the output layer (``None``: features only).
    dropout : float
    bn_trainable : bool, default=False
        See :class:`FineTuneNetwork`.
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        The dtype the forward autocasts to (see :class:`FineTuneNetwork`).
    generator : torch.Generator, optional
        What the head's initial weights are drawn from (see :func:`build_head`).
    max_length : int, optional
        Text backbones: tokens per text (``None``: the backbone's own).
    lora : dict, optional
        :func:`skft._nn.lora.lora_settings`: attach LoRA adapters to the trainable blocks, whose
        pretrained tensors then stay frozen.
    prompt_tokens : int, default=0
        Text backbones: insert a block of that many learned vectors after the embedding block
        (:func:`skft._nn.prompting.insert_prompt_tokens`), which alone trains; the blocks before
        it are frozen (cached), those after it run frozen.

    Returns
    -------
    FineTuneNetwork
    """
    normalizer = input_module(resolved, image_size=image_size, max_length=max_length)
    blocks = select_blocks(resolved.parts.blocks, feature_layer, resolved.name)
    n_frozen = n_frozen_for(len(blocks), normalizer)
    if prompt_tokens:
        blocks, n_frozen = insert_prompt_tokens(blocks, normalizer, prompt_tokens, generator), 1
    network = FineTuneNetwork(
        blocks,
        resolved.parts.pooling,
        torch.nn.Identity(),
        normalizer,
        n_frozen,
        bn_trainable,
        autocast_dtype(precision),
    )
    if lora is not None:
        network.use_adapters(lora)
    if prompt_tokens:
        network.train_only(is_prompt_parameter)
    network.head = build_head(feature_size(network), tuple(head), n_outputs, dropout, generator)
    return network


_FEATURE_SIZES = {}


def feature_size(network):
    """Length of the pooled feature vector, found by running one blank input through the network.

    The answer is remembered per network structure (its digest without tensor values: every
    module's class, hyper-parameters, attributes and tensor shapes, the input side and the pooling),
    so the many fits of a grid search probe the backbone once. A network holding an attribute that
    digest cannot describe is probed every time.

    Parameters
    ----------
    network : FineTuneNetwork

    Returns
    -------
    int
    """
    try:
        key = module_digest([("", network)], tensors=False)
    except UndescribableAttribute:
        return _probe_feature_size(network)
    if key not in _FEATURE_SIZES:
        _FEATURE_SIZES[key] = _probe_feature_size(network)
    return _FEATURE_SIZES[key]


def _probe_feature_size(network):
    probe = network.normalizer.probe(next(network.parameters()).device)
    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode():
            features = network.features(probe)
    finally:
        network.train(was_training)
    return int(features.shape[1])
