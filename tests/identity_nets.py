"""Tiny backbone builders for the identity tests, importable by the fresh reference processes."""

import torch
from torch import nn


def seeded_cnn(seed=0, activation=nn.ReLU, stride=2):
    """A tiny three-block CNN whose weights, activation and stride are chosen by the arguments."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)),
            activation(),
            nn.Sequential(nn.Conv2d(8, 16, 3, stride=stride, padding=1), nn.BatchNorm2d(16)),
            activation(),
            nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)),
            activation(),
        )


#: Builders that differ in tensors, in a module class only, or in a hyper-parameter only.
VARIANTS = {
    "relu": lambda: seeded_cnn(),
    "tanh": lambda: seeded_cnn(activation=nn.Tanh),
    "stride1": lambda: seeded_cnn(stride=1),
    "reseeded": lambda: seeded_cnn(seed=1),
}


class ReadsAttribute(nn.Module):
    """A parameter-free layer whose forward reads a plain attribute: ``read(x, self.setting)``."""

    def __init__(self, setting, read):
        super().__init__()
        self.setting = setting
        self.read = read

    def forward(self, x):
        return self.read(x, self.setting)


def scale_by(x, setting):
    """``x`` times a tensor, a NumPy scalar or a number."""
    return x * torch.as_tensor(setting, dtype=x.dtype)


def apply_setting(x, setting):
    """``setting(x)``, e.g. a ``functools.partial`` activation."""
    return setting(x)


def scale_by_entry(x, setting):
    """``x`` times ``setting["scale"]`` (a dict of settings) or ``setting.scale`` (any object)."""
    return x * (setting["scale"] if isinstance(setting, dict) else setting.scale)


def cnn_reading(setting, read):
    """:func:`seeded_cnn` whose first block ends with a layer reading ``setting`` (same weights for every setting)."""
    network = seeded_cnn()
    network[0].append(ReadsAttribute(setting, read))
    return network


def flattening_cnn(stride):
    """One conv block whose flattened output (its feature size) depends on ``stride`` alone."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, stride=stride, padding=1), nn.Flatten())
