"""Keeping fine-tuned weights near their pretrained values, and measuring how far they moved."""

import torch
from torch import nn

from .lora import is_adapter_parameter


def snapshot_trainable(network):
    """Copy the starting values of every trainable block's parameters.

    Parameters
    ----------
    network : FineTuneNetwork

    Returns
    -------
    dict of str to list of Tensor
        Block name -> detached copies of its parameters, in :func:`block_weights` order.
    """
    blocks = list(network.backbone.named_children())[network.n_frozen :]
    return {name: [p.detach().clone() for p in block_weights(block)] for name, block in blocks}


def block_weights(block):
    """A block's own weights: its parameters, less LoRA adapter matrices (merged into the weights after a fit).

    Parameters
    ----------
    block : nn.Module

    Returns
    -------
    list of Parameter
    """
    return [p for name, p in block.named_parameters() if not is_adapter_parameter(name)]


class L2SPPenalty(nn.Module):
    """``alpha / 2 * sum ||w - w0||^2`` over the trainable backbone weights (L2-SP).

    The current parameters are referenced, not registered (they belong to the network); the
    starting values are buffers, so they follow the criterion to the device.

    Parameters
    ----------
    network : FineTuneNetwork
    starting_values : dict
        From :func:`snapshot_trainable`.
    alpha : float
    """

    def __init__(self, network, starting_values, alpha):
        super().__init__()
        self.alpha = alpha
        self.parameters_ = [
            p
            for name, block in network.backbone.named_children()
            if name in starting_values
            for p in block_weights(block)
        ]
        for index, value in enumerate(v for values in starting_values.values() for v in values):
            self.register_buffer(f"anchor_{index}", value)

    def forward(self):
        anchors = [getattr(self, f"anchor_{index}") for index in range(len(self.parameters_))]
        distance = sum(((p - a) ** 2).sum() for p, a in zip(self.parameters_, anchors))
        return 0.5 * self.alpha * distance


def block_drift(network, starting_values):
    """Relative L2 distance of each block's weights from their starting values.

    With LoRA, call it after the adapters were merged: it then measures the merged change.

    Parameters
    ----------
    network : FineTuneNetwork
    starting_values : dict
        From :func:`snapshot_trainable`; blocks absent from it were frozen (drift 0.0).

    Returns
    -------
    dict of str to float
    """
    drift = {}
    for name, block in network.backbone.named_children():
        if name not in starting_values:
            drift[name] = 0.0
            continue
        # The snapshot lies where the network was when it was taken (the GPU when activations were cached).
        pairs = [(p.detach().cpu(), s.cpu()) for p, s in zip(block_weights(block), starting_values[name])]
        moved = sum(((p - s) ** 2).sum() for p, s in pairs)
        size = sum((s**2).sum() for _, s in pairs)
        drift[name] = float(torch.sqrt(moved / size)) if size > 0 else 0.0
    return drift
