"""Torch-level parts."""
