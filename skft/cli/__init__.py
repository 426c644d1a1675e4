"""The command line (``skft``): demo, fit, predict, backbones. Nothing in the library imports it."""

from .main import main

__all__ = ["main"]
