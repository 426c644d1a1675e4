"""Shared fixtures: a tiny registered backbone and small, seeded image data sets."""

import os

import numpy as np
import pytest
import torch
from torch import nn

from skft import register_backbone

TINY = "tiny_cnn"
TINY_SIZE = 16


def make_tiny_cnn():
    """Three conv blocks with BatchNorm (and a parameter-free ReLU after each)."""
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        return _tiny_layers()


def _tiny_layers():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.Dropout(0.1)),
        nn.ReLU(),
    )


if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel test workers share the machine's cores: one torch thread each avoids oversubscription.
    torch.set_num_threads(1)

register_backbone(TINY, make_tiny_cnn, image_size=TINY_SIZE, min_image_size=4, overwrite=True)


def make_images(n, n_classes=2, size=TINY_SIZE, channels=None, seed=0):
    """Images whose class sets the brightness of one quadrant: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    images = rng.integers(0, 60, size=shape).astype(np.uint8)
    half = size // 2
    for cls in range(n_classes):
        rows, cols = divmod(cls % 4, 2)
        images[labels == cls, rows * half : (rows + 1) * half, cols * half : (cols + 1) * half] += 180
    return images, labels


@pytest.fixture
def images_binary():
    return make_images(40, n_classes=2)


@pytest.fixture
def images_multiclass():
    return make_images(60, n_classes=3, channels=3, seed=1)


@pytest.fixture
def tiny_params():
    """Constructor arguments that make a fit take well under a second."""
    return dict(backbone=TINY, image_size=TINY_SIZE, max_epochs=3, batch_size=8, random_state=0, lr=1e-2, device="cpu")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A tiny randomly initialised BERT with its tokenizer, saved as a local model folder (text tests)."""
    from text_fixtures import save_tiny_model

    return save_tiny_model("bert", tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def texts():
    """32 short labelled texts (text tests)."""
    from text_fixtures import make_texts

    return make_texts(32)


def tiny_classifier(**params):
    """A FineTunedClassifier on the tiny backbone, seeded, on the CPU, fast (``params`` override the defaults)."""
    from skft import FineTunedClassifier

    defaults = dict(image_size=TINY_SIZE, max_epochs=2, batch_size=8, random_state=0, lr=1e-2, device="cpu")
    return FineTunedClassifier(TINY, **{**defaults, **params})
