"""Real MNIST digits for the examples (the loader lives in skft, where ``skft demo`` uses it too)."""

from skft._mnist import load_digits_images

__all__ = ["load_digits_images"]
