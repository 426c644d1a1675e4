"""Backbone builders for the identity property test, importable by the fresh reference process."""

import torch
from torch import nn


def _layers(activation, stride, seed):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)),
            activation(),
            nn.Sequential(nn.Conv2d(6, 8, 3, stride=stride, padding=1), nn.BatchNorm2d(8)),
            activation(),
            nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)),
            activation(),
        )


#: Builders that differ in tensors, in a module class only, or in a hyper-parameter only.
VARIANTS = {
    "relu": lambda: _layers(nn.ReLU, 2, 0),
    "tanh": lambda: _layers(nn.Tanh, 2, 0),
    "stride1": lambda: _layers(nn.ReLU, 1, 0),
    "reseeded": lambda: _layers(nn.ReLU, 2, 1),
}
