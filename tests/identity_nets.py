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
