"""WiSE-FT (Wortsman et al. 2022): a fitted network's trained weights moved back towards where they started.

Every trained tensor becomes ``(1 - alpha) * start + alpha * fine_tuned``: the backbone's trainable blocks
towards the pretrained weights, the head towards the zero-shot classifier it started as. A LoRA update
``B @ A`` is scaled by ``alpha`` through ``B`` (before the adapters are merged), which is the same
interpolation of the merged weight and keeps a model file's adapters consistent with it.
"""

import torch

from .lora import is_adapter_parameter

#: The adapter matrix a LoRA update is linear in.
_LORA_B = ".lora_B."


def snapshot_head(network):
    """Copies of the head's parameters as they are now (the start of its training).

    Parameters
    ----------
    network : FineTuneNetwork

    Returns
    -------
    dict of str to Tensor
    """
    return {name: p.detach().clone() for name, p in network.head.named_parameters()}


def interpolate_towards_start(network, starting_values, head_start, alpha):
    """Set every trained tensor to ``start + alpha * (trained - start)``, in place.

    Tensors equal to their start (frozen ones, shared with other fits) are not written.

    Parameters
    ----------
    network : FineTuneNetwork
        Fitted, its adapters (if any) not yet merged.
    starting_values : dict
        From :func:`~skft._nn.regularizers.snapshot_trainable`: the blocks' pretrained weights.
    head_start : dict of str to Tensor
        From :func:`snapshot_head`.
    alpha : float in [0, 1]
    """
    with torch.no_grad():
        for name, block in network.backbone.named_children():
            if name not in starting_values:
                continue
            weights = [(n, p) for n, p in block.named_parameters() if not is_adapter_parameter(n)]
            for (_, trained), start in zip(weights, starting_values[name]):
                _lerp_in_place(trained, start, alpha)
            for parameter_name, adapter in block.named_parameters():
                if _LORA_B in f".{parameter_name}":
                    adapter.mul_(alpha)
        for parameter_name, trained in network.head.named_parameters():
            _lerp_in_place(trained, head_start[parameter_name], alpha)


def _lerp_in_place(trained, start, alpha):
    start = start.to(device=trained.device, dtype=trained.dtype)
    if not torch.equal(trained, start):
        trained.copy_(torch.lerp(start, trained, alpha))
