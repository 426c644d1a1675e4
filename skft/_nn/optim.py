"""Optimizer set-up: which parameters train, at which learning rate, on which schedule."""

import math

import torch

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
SGD_MOMENTUM = 0.9
LR_SCHEDULES = ("cosine", "onecycle")


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
        # A network with nothing to train (zero-shot prompting) gets an optimizer over an empty group.
        return self.optimizer_class([group for group in groups if group["params"]] or [{"params": []}], **kwargs)


def param_groups(block_names, n_frozen, *, lr, lr_decay, head_lr_scale, weight_decay, l2sp):
    """skorch ``optimizer__param_groups`` for layer-wise learning rates and L2-SP.

    The head trains at ``lr * head_lr_scale``; the trainable block ``k`` places below the head
    (the top block is ``k = 1``) at ``lr * lr_decay**k``. With L2-SP the trainable backbone
    groups get no plain weight decay (the L2-SP penalty replaces it); the head keeps it.

    Parameters
    ----------
    block_names : list of str
    n_frozen : int
    lr, lr_decay, head_lr_scale, weight_decay : float
    l2sp : bool

    Returns
    -------
    list of (str, dict)
    """
    groups = [("head.*", {"lr": lr * head_lr_scale, "weight_decay": weight_decay})]
    trainable = block_names[n_frozen:]
    for depth, name in enumerate(reversed(trainable), start=1):
        groups.append(
            (f"backbone.{name}.*", {"lr": lr * lr_decay**depth, "weight_decay": 0.0 if l2sp else weight_decay})
        )
    return groups


class WarmupThenDecay:
    """Learning-rate multiplier per step: linear warm-up, then cosine decay.

    Parameters
    ----------
    total_steps : int
    warmup_fraction : float
        Share of the steps spent warming up.
    start_factor : float
        Multiplier at step 0.
    end_factor : float
        Multiplier at the last step.
    """

    def __init__(self, total_steps, warmup_fraction, start_factor, end_factor):
        self.total_steps = max(total_steps, 1)
        self.warmup_steps = max(int(round(warmup_fraction * self.total_steps)), 1)
        self.start_factor = start_factor
        self.end_factor = end_factor

    def __call__(self, step):
        if step < self.warmup_steps:
            return self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return self.end_factor + (1.0 - self.end_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
