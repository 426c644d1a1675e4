"""Image input."""
