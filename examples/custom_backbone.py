"""Your own network as the backbone: pass an nn.Module, or register it under a name.

A module's top-level children become its blocks (``describe_backbone`` lists them), so
``trainable_layers`` and ``feature_layer`` work as for the shipped backbones. Offline, under a
minute on CPU (``SKFT_QUICK=1``: seconds).
"""

import os

import torch
from sklearn.model_selection import train_test_split
from torch import nn

from skft import FineTunedClassifier, describe_backbone, register_backbone
from skft.datasets import load_mnist


def small_cnn():
    """Three convolution blocks (each: conv, BatchNorm, ReLU); the input is RGB (grey images are repeated)."""

    def block(channels_in, channels_out):
        return nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=2, padding=1), nn.BatchNorm2d(channels_out), nn.ReLU()
        )

    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64))


def main(quick=False):
    """Train the small network from scratch (``mode="full"``) both ways; print and return the accuracies."""
    images, labels = load_mnist(300 if quick else 2000)
    X_train, X_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, stratify=labels, random_state=0)
    params = dict(mode="full", lr=3e-3, max_epochs=8 if quick else 10, random_state=0)
    # 1. An nn.Module instance: skft copies it for every fit; image_size is required.
    torch.manual_seed(0)  # the module's initial weights come from torch's global generator
    module_clf = FineTunedClassifier(backbone=small_cnn(), image_size=28, **params).fit(X_train, y_train)
    # 2. A registered builder: usable by name anywhere, also in GridSearchCV(n_jobs=2) workers.
    register_backbone("small_cnn", small_cnn, image_size=28, min_image_size=8, overwrite=True)
    describe_backbone("small_cnn")
    named_clf = FineTunedClassifier(backbone="small_cnn", **params).fit(X_train, y_train)
    accuracy = {"module": module_clf.score(X_test, y_test), "registered": named_clf.score(X_test, y_test)}
    print(
        f"held-out accuracy on {len(X_test)} digits: nn.Module {accuracy['module']:.3f}, "
        f"registered name {accuracy['registered']:.3f}"
    )
    return accuracy


if __name__ == "__main__":
    main(quick=os.environ.get("SKFT_QUICK") == "1")
