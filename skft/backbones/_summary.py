"""What :func:`describe_backbone` shows: blocks, parameter counts, and the input the weights expect.

Image backbones: input size and normalisation. Text backbones: maximum length, tokenizer, pooling.
"""

import os
from dataclasses import dataclass

import torch

from ._registry import get_spec
from ._resolving import _build_with_weights
from ._text import TextPreprocessing
from ._types import Preprocessing


@dataclass
class BackboneSummary:
    """What :func:`describe_backbone` reports, as data.

    Parameters
    ----------
    name : str
    blocks : list of (str, int)
        Block names with their parameter counts.
    preprocessing : Preprocessing or TextPreprocessing
    weights_file : str or None
        Where the default weights live (or are expected) on disk.
    weights_available : bool
        Whether the default weights can be loaded without a download.
    pooling : str, optional
        How the last block's output becomes one vector (shown for text backbones).
    """

    name: str
    blocks: list
    preprocessing: Preprocessing
    weights_file: str
    weights_available: bool
    pooling: str = None

    def to_text(self):
        """Format the summary as the table :func:`describe_backbone` prints.

        Returns
        -------
        str
        """
        total = sum(count for _, count in self.blocks)
        lines = [
            f"backbone: {self.name}",
            *self._input_lines(),
            f"default weights: {'available offline' if self.weights_available else 'not on disk'}"
            + (f" ({self.weights_file})" if self.weights_file else ""),
            f"{len(self.blocks)} blocks, {total:,} parameters:",
        ]
        width = max(len(name) for name, _ in self.blocks)
        lines += [f"  {index:>2}  {name:<{width}}  {count:>12,}" for index, (name, count) in enumerate(self.blocks)]
        return "\n".join(lines)

    def _input_lines(self):
        pre = self.preprocessing
        if isinstance(pre, TextPreprocessing):
            return [
                f"input: text, at most {pre.max_length} tokens (max_length; the model accepts {pre.max_positions})",
                f"tokenizer: {type(pre.tokenizer).__name__} (digest {pre.tokenizer_digest[:12]})",
                f"pooling: {self.pooling}",
            ]
        size = f"exactly {pre.image_size} px" if pre.fixed_size else f"{pre.image_size} px (at least {pre.min_size} px)"
        return [
            f"input size: {size}",
            f"normalisation: mean={tuple(round(v, 4) for v in pre.mean)}, std={tuple(round(v, 4) for v in pre.std)}",
        ]


def summarize_backbone(name):
    """Build a :class:`BackboneSummary` without downloading or allocating weights.

    The network is built on PyTorch's ``meta`` device, so even a large model costs no memory.

    Parameters
    ----------
    name : str
        A registered backbone name.

    Returns
    -------
    BackboneSummary
    """
    spec = get_spec(name)
    default = None if spec.source == "user" else "DEFAULT"
    with torch.device("meta"):
        parts = spec.split(_build_with_weights(spec, default, read_weights=False))
    blocks = [(block_name, sum(p.numel() for p in block.parameters())) for block_name, block in parts.blocks]
    weights_file = spec.weights_file("DEFAULT")
    return BackboneSummary(
        name=name,
        blocks=blocks,
        preprocessing=spec.preprocessing(default),
        weights_file=weights_file,
        weights_available=spec.source == "user" or bool(weights_file and os.path.isfile(weights_file)),
        pooling=parts.pooling,
    )


def describe_backbone(name):
    """Print a backbone's blocks with parameter counts and its input (size and normalisation, or tokenizer).

    Nothing is downloaded and no weights are allocated (parameters are counted on the ``meta`` device).

    Parameters
    ----------
    name : str
        A registered backbone name (see :func:`list_backbones`), or a text encoder (``"hf:<model id>"``
        or a model directory).

    Returns
    -------
    BackboneSummary
        The same information as data (``.blocks``, ``.preprocessing``, ...).

    Examples
    --------
    >>> from skft import describe_backbone
    >>> summary = describe_backbone("efficientnet_lite0")  # doctest: +ELLIPSIS
    backbone: efficientnet_lite0
    ...
    >>> len(summary.blocks)
    9
    """
    summary = summarize_backbone(name)
    print(summary.to_text())
    return summary
