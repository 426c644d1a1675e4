"""Turning users' images into tensors: validation, layout and value range."""

import numbers

import numpy as np
import torch

CHANNEL_COUNTS = (1, 3, 4)


def _as_array(X):
    if torch.is_tensor(X):
        return X.detach().cpu().numpy()
    if isinstance(X, np.ndarray):
        return X
    if isinstance(X, (list, tuple)) and X and all(isinstance(item, np.ndarray) for item in X):
        shapes = {item.shape for item in X}
        if len(shapes) > 1:
            raise ValueError(
                f"X holds images of different shapes {sorted(shapes)[:3]}; pass images of one shape or resize them "
                "first."
            )
        return np.stack(X)
    raise TypeError(
        f"X must be a numpy array of images (N, H, W), (N, H, W, C) or (N, C, H, W). Got {type(X).__name__} instead."
    )


def _channels_first(array):
    if array.ndim == 3:
        return array[:, None]
    if array.ndim != 4:
        raise ValueError(
            f"X must have 3 dimensions (N, H, W) or 4 (N, H, W, C) / (N, C, H, W). Got an array of shape {array.shape}."
        )
    if array.shape[-1] in CHANNEL_COUNTS:
        return np.moveaxis(array, -1, 1)
    if array.shape[1] in CHANNEL_COUNTS:
        return array
    raise ValueError(
        f"X has shape {array.shape}: no axis holds 1, 3 or 4 channels. Pass grey (N, H, W), RGB or RGBA images with "
        "the channels last or second."
    )


def _checked_values(array):
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"X must hold numbers (uint8 0..255 or float 0..1). Got dtype {array.dtype}.")
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(f"integer images must lie in 0..255. Got values from {low} to {high}.")
        return array.astype(np.uint8)
    if not np.isfinite(array).all():
        raise ValueError("X contains NaN or infinite values. Replace them before fitting (images must be finite).")
    low, high = float(array.min()), float(array.max())
    if high > 1.0 or low < 0.0:
        raise ValueError(
            f"float images must lie in [0, 1]. Got values from {low:g} to {high:g}. Pass uint8 images (0..255) or "
            "divide by 255."
        )
    return array.astype(np.float32, copy=False)


def images_to_tensor(X):
    """Validate images and return them as one ``(N, C, H, W)`` tensor.

    Parameters
    ----------
    X : array-like
        ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with ``C`` in 1, 3, 4; ``uint8``
        (0..255), integers in 0..255, or floats in ``[0, 1]``; or a list of equally shaped arrays.

    Returns
    -------
    Tensor
        ``uint8`` for integer input (a quarter of the memory), ``float32`` otherwise.
    """
    array = _as_array(X)
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"X is empty (shape {array.shape}). Pass at least one image.")
    array = _checked_values(_channels_first(array))
    return torch.from_numpy(np.ascontiguousarray(array))


def check_batch_size(value, name="batch_size"):
    """Raise a ``ValueError`` unless ``value`` is a positive integer.

    Parameters
    ----------
    value : object
    name : str
    """
    if not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer. Got {value!r} instead.")
