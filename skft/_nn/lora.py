"""Low-rank adapters (LoRA) on a network's trainable blocks, through Hugging Face peft.

``mode="lora"`` keeps every pretrained tensor frozen and trains, in each of the last
``trainable_layers`` blocks, a pair of low-rank matrices beside each targeted layer
(``W + alpha / rank * B @ A``), plus the head in full. peft provides the adapter layers; this module
only chooses what they attach to, keeps the base weights frozen, and merges the adapters into the
weights after the fit, so that prediction runs plain layers (no adapter overhead).

Targets, per family:

- ``nn.Linear`` layers everywhere: the attention projections and feed-forward layers of BERT-like
  text encoders and of torchvision ViTs (except ``nn.MultiheadAttention``'s own ``out_proj``, which
  the attention reads as a raw tensor, so an adapter on it would never run), a ResNet's ``fc`` when it
  is kept.
- ``nn.Conv2d`` layers with ``groups == 1``: every convolution of a ResNet, ViT's patch embedding,
  EfficientNet-Lite0's 1x1 expand / project convs and its ``head_conv``. Depthwise convs
  (``groups > 1``) are left alone: peft needs the rank divisible by ``groups`` and cannot merge them.
- EfficientNet-Lite0's convs are ``Conv2dDynamicSamePadding``, whose constructor takes its arguments
  in another order than ``nn.Conv2d``'s, so peft's copy of one breaks; its 1x1 stride-1 convs (whose
  "same" padding is none) are first replaced by a plain ``nn.Conv2d`` holding the same tensors, which
  computes the same output. Its 3x3 stem conv (stride 2, padding depends on the input) is not
  targeted.

Embeddings, normalisation layers and biases are never adapted; they stay frozen.
"""

import sys

from torch import nn

#: The name peft gives the one adapter skft attaches.
ADAPTER = "default"
#: What a user without peft is told.
LORA_EXTRA_HINT = "mode='lora' needs the lora extra: pip install \"skft[lora]\" (peft)."


def import_peft():
    """Import and return ``peft``, or raise an ImportError naming the ``lora`` extra.

    Returns
    -------
    module
    """
    try:
        import peft
    except ImportError as error:
        raise ImportError(LORA_EXTRA_HINT) from error
    return peft


def lora_settings(rank, alpha, dropout):
    """The resolved LoRA hyper-parameters a network is built with.

    Parameters
    ----------
    rank : int
    alpha : float or None
        ``None``: ``2 * rank``.
    dropout : float

    Returns
    -------
    dict
        ``{"rank": int, "alpha": float, "dropout": float}``.
    """
    return {"rank": int(rank), "alpha": float(2 * rank if alpha is None else alpha), "dropout": float(dropout)}


def add_adapters(block, settings):
    """Attach LoRA adapters to ``block``'s targeted layers in place and freeze everything else in it.

    Parameters
    ----------
    block : nn.Module
        A trainable block: the network's own copy (its tensors are shared with nothing).
    settings : dict
        From :func:`lora_settings`.

    Returns
    -------
    int
        How many layers got an adapter (0 for a block with no targeted layer, e.g. an embedding block).
    """
    peft = import_peft()
    _replace_pointwise_same_padding_convs(block)
    targets = adapted_layer_names(block)
    block.requires_grad_(False)
    if targets:
        config = peft.LoraConfig(
            r=settings["rank"],
            lora_alpha=settings["alpha"],
            lora_dropout=settings["dropout"],
            target_modules=targets,
            bias="none",
        )
        peft.inject_adapter_in_model(config, block, adapter_name=ADAPTER)
    return len(targets)


def adapted_layer_names(block):
    """Qualified names (within ``block``) of the layers LoRA targets: Linear, and Conv2d with ``groups == 1``.

    Parameters
    ----------
    block : nn.Module

    Returns
    -------
    list of str
    """
    # Exact types: ``nn.MultiheadAttention.out_proj`` is a Linear subclass the attention reads as a raw tensor.
    return [
        name
        for name, module in block.named_modules()
        if type(module) in (nn.Linear, nn.Conv2d) and getattr(module, "groups", 1) == 1
    ]


def _replace_pointwise_same_padding_convs(block):
    """Replace convs that are subclasses of ``nn.Conv2d`` but compute a plain 1x1 stride-1 conv by ``nn.Conv2d``."""
    for parent in list(block.modules()):
        for name, child in list(parent.named_children()):
            if _is_pointwise_subclass_conv(child):
                plain = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    1,
                    bias=child.bias is not None,
                    device=child.weight.device,
                    dtype=child.weight.dtype,
                )
                plain.weight = child.weight
                plain.bias = child.bias
                setattr(parent, name, plain)


def _is_pointwise_subclass_conv(module):
    return (
        isinstance(module, nn.Conv2d)
        and type(module) is not nn.Conv2d
        and tuple(module.kernel_size) == (1, 1)
        and tuple(module.stride) == (1, 1)
        and tuple(module.dilation) == (1, 1)
        and module.groups == 1
    )


def is_adapter_parameter(name):
    """Whether a parameter name (e.g. from ``named_parameters``) is one of a LoRA adapter's matrices.

    Parameters
    ----------
    name : str

    Returns
    -------
    bool
    """
    return ".lora_" in f".{name}"


def adapter_layers(module):
    """The layers of ``module`` that hold an adapter.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    list of peft.tuners.lora.LoraLayer
    """
    lora = sys.modules.get("peft.tuners.lora")
    if lora is None:  # peft was never imported (or is not installed): no layer can hold an adapter
        return []
    return [layer for layer in module.modules() if isinstance(layer, lora.LoraLayer)]


def merge_adapters(module):
    """Add every adapter's low-rank update into its layer's weight, so the forward runs the plain layer.

    The adapters stay in place (merged), so that :func:`unmerge_adapters` can take the update out
    again and a model file can store the adapters alone. Merging an already merged layer does nothing.

    Parameters
    ----------
    module : nn.Module
    """
    for layer in adapter_layers(module):
        if not layer.merged:
            layer.merge(adapter_names=[ADAPTER])


def unmerge_adapters(module):
    """Take the adapters' updates out of the weights again (the forward then runs base layer + adapter).

    Parameters
    ----------
    module : nn.Module
    """
    for layer in adapter_layers(module):
        if layer.merged:
            layer.unmerge()


def peft_available():
    """Whether peft can be imported here.

    Returns
    -------
    bool
    """
    try:
        import_peft()
    except ImportError:
        return False
    return True


def as_plain_layers(state):
    """A merged LoRA network's state dict as the same network without adapters names it.

    The adapters' matrices are dropped (their update is in the weights) and peft's ``base_layer.``
    level is removed from the names of the adapted layers' own tensors.

    Parameters
    ----------
    state : dict of str to Tensor

    Returns
    -------
    dict of str to Tensor
    """
    return {
        name.replace(".base_layer.", "."): tensor for name, tensor in state.items() if not is_adapter_parameter(name)
    }
