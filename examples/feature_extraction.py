"""Pretrained features for any sklearn model: BackboneFeatures + LogisticRegression, against random weights.

The same pipeline with ``weights=None`` (random initialisation) shows what the ImageNet weights are
worth. Features from a middle block (``feature_layer=-3``) transfer to digits better than the last
block's, which is the most ImageNet-specific. Offline, under a minute (``SKFT_QUICK=1``: seconds).
"""

import os

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skft import BackboneFeatures
from skft.datasets import load_mnist

FEATURE_LAYERS = (-3, -1)


def main(quick=False):
    """Print held-out accuracy for pretrained and random weights at two feature layers; return them.

    Returns
    -------
    dict of (weights, feature_layer) to float
    """
    images, labels = load_mnist(400 if quick else 1000)
    X_train, X_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, stratify=labels, random_state=0)
    accuracy = {}
    for feature_layer in FEATURE_LAYERS:
        for weights in ("DEFAULT", None):
            torch.manual_seed(0)  # weights=None draws from torch's global generator
            model = make_pipeline(
                BackboneFeatures(weights=weights, feature_layer=feature_layer, image_size=64),
                StandardScaler(),
                LogisticRegression(max_iter=2000),
            )
            accuracy[weights, feature_layer] = model.fit(X_train, y_train).score(X_test, y_test)
        print(
            f"feature_layer={feature_layer}: accuracy with ImageNet weights "
            f"{accuracy['DEFAULT', feature_layer]:.3f}, with random weights (weights=None) "
            f"{accuracy[None, feature_layer]:.3f}  ({len(X_test)} test digits)"
        )
    return accuracy


if __name__ == "__main__":
    main(quick=os.environ.get("SKFT_QUICK") == "1")
