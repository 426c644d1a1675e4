"""Turning users' images into what the network reads: one tensor, or images loaded lazily.

A uniform array stays one ``(N, C, H, W)`` tensor (the network resizes it batch by batch). File
paths, PIL images and arrays of different sizes become :class:`LazyImages`, which decode and
resize one image at a time, so that no more than a batch of pixels sits in memory.
"""

import math
import numbers
import os

import numpy as np
import torch
from PIL import Image

from .decoding import LazyImages

CHANNEL_COUNTS = (1, 3, 4)
LAYOUTS = "(N, H, W) grey, (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4"


def as_image_source(X, image_size=None):
    """Validate images ``X`` and return them in the form the network reads.

    Parameters
    ----------
    X : array-like, sequence of images, or sequence of file paths
        A numpy array or tensor ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with ``C`` in
        1, 3, 4; a list, tuple, object array or pandas Series of file paths (``str`` or
        ``pathlib.Path``), PIL images (any mode) or arrays of any sizes (``(H, W)``,
        ``(H, W, C)`` or ``(C, H, W)`` each); or a nested list of numbers shaped like an array.
        Values: ``uint8`` 0..255, other integers 0..255, ``uint16`` 0..65535 (16-bit images),
        or floats in ``[0, 1]``.
    image_size : int or None, default=None
        The side to which lazily loaded images are resized (see :func:`at_image_size`).

    Returns
    -------
    Tensor or LazyImages
        One ``(N, C, H, W)`` tensor (``uint8``; ``float32`` for float or ``uint16`` input) for a
        uniform array (or a list of arrays of one shape); otherwise :class:`LazyImages`, which
        behaves like the ``(N, 3, S, S)`` ``uint8`` tensor it stands for.
    """
    _refuse_single_image_or_table(X)
    if torch.is_tensor(X):
        return _batch_tensor(X.detach().cpu().numpy())
    if isinstance(X, np.ndarray) and X.dtype.kind not in "OUS":
        return _batch_tensor(X)
    items = _as_items(X)
    if all(isinstance(item, np.ndarray) for item in items) and len({item.shape for item in items}) == 1:
        return _batch_tensor(np.stack(items))
    if any(isinstance(item, (list, tuple, numbers.Number)) for item in items):
        return _batch_tensor(_nested_list_as_array(items))
    return LazyImages([_checked_item(item, index) for index, item in enumerate(items)], image_size)


def at_image_size(images, image_size):
    """Return images ready for a network whose input side is ``image_size``.

    Parameters
    ----------
    images : Tensor or LazyImages
        The result of :func:`as_image_source`.
    image_size : int

    Returns
    -------
    Tensor or LazyImages
        A tensor unchanged (the network resizes it batch by batch); :class:`LazyImages` that
        decode each image at ``image_size``.
    """
    if isinstance(images, LazyImages):
        return LazyImages(images.items, image_size)
    return images


def image_batches(images, batch_size, num_workers=0):
    """Iterate over ``images`` in batches of at most ``batch_size``.

    Parameters
    ----------
    images : Tensor or LazyImages
    batch_size : int
    num_workers : int, default=0
        Processes that load :class:`LazyImages` (0: in this process).

    Yields
    ------
    Tensor of shape (B, C, H, W)
    """
    if torch.is_tensor(images):
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
    else:
        # Its own generator: iterating a DataLoader draws a seed, which must not move the global
        # random state that seeds training.
        yield from torch.utils.data.DataLoader(
            images, batch_size=batch_size, num_workers=num_workers, generator=torch.Generator()
        )


def _refuse_single_image_or_table(X):
    if isinstance(X, (str, os.PathLike)):
        raise TypeError(
            f"X must be a sequence of images; got the single path {os.fspath(X)!r}. Pass a list of paths, e.g. [X], "
            "or skft.load_image_folder(X) for a folder with one sub-folder per class."
        )
    if isinstance(X, Image.Image):
        raise TypeError(f"X must be a sequence of images; got one PIL image ({X!r}). Pass a list: [X].")
    if hasattr(X, "columns") and hasattr(X, "iloc"):
        raise TypeError(
            f"X is a DataFrame with columns {list(X.columns)[:5]}; pass the one column that holds the images or "
            "their paths, e.g. df['path']."
        )


def _as_items(X):
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = X.to_numpy()
    if isinstance(X, np.ndarray):
        if X.ndim != 1:
            raise ValueError(f"X is an array of {X.dtype} of shape {X.shape}; pass a 1-D sequence of paths or images.")
        X = X.tolist() if X.dtype.kind in "US" else list(X)
    if not isinstance(X, (list, tuple)):
        raise TypeError(
            f"X must be an array of images ({LAYOUTS}), or a list of file paths, PIL images or arrays. Got "
            f"{type(X).__name__} instead."
        )
    if not X:
        raise ValueError("X is empty. Pass at least one image.")
    return [item.detach().cpu().numpy() if torch.is_tensor(item) else item for item in X]


def _nested_list_as_array(items):
    try:
        array = np.asarray(items)
    except ValueError:
        array = None
    if array is None or array.dtype.kind not in "buif":
        raise TypeError(
            "X is a nested list whose items are not all numbers of one shape. Pass one array of images "
            f"({LAYOUTS}), or a list of paths, PIL images or arrays."
        )
    return array


def _checked_item(item, index):
    name = f"X[{index}]"
    if isinstance(item, bytes):
        item = os.fsdecode(item)
    if isinstance(item, (str, os.PathLike)):
        if not os.path.isfile(item):
            raise FileNotFoundError(
                f"{name} = {os.fspath(item)!r} is not an image file{' (it is a folder)' if os.path.isdir(item) else ''}"
                ". Check the path (relative paths start from the working directory "
                f"{os.getcwd()!r})."
            )
        return item
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, np.ndarray) and item.dtype.kind not in "OUS":
        return _checked_values(_single_image_channels_first(item, name), name)
    raise TypeError(
        f"{name} is a {type(item).__name__}; every item of X must be a file path, a PIL image or a numpy array."
    )


def _batch_tensor(array):
    if array.ndim == 0:
        raise TypeError(f"X must be a collection of images; got the single value {array!r}.")
    if len(array) == 0:
        raise ValueError(f"X is empty (shape {array.shape}). Pass at least one image.")
    if array.dtype.kind in "OUS":
        raise TypeError(f"X must hold numbers; got an array of dtype {array.dtype}.")
    if array.ndim == 2:
        side = math.isqrt(array.shape[1])
        hint = f", e.g. X.reshape(-1, {side}, {side})" if side * side == array.shape[1] else ""
        raise ValueError(
            f"X has shape {array.shape}: a table, not images. Pass images as {LAYOUTS}; if each row is a flattened "
            f"image, reshape it{hint}."
        )
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        array = _channels_first(array, array.shape[1:], "X", f"X has shape {array.shape}")
    else:
        raise ValueError(
            f"X has {array.ndim} dimensions (shape {array.shape}); images need 3 or 4: {LAYOUTS}. "
            "For a single image, pass X[None]."
        )
    return torch.from_numpy(np.ascontiguousarray(_checked_values(array, "X")))


def _single_image_channels_first(array, name):
    if array.ndim == 2:
        return array[None]
    if array.ndim != 3:
        raise ValueError(
            f"{name} has shape {array.shape}; one image must be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4."
        )
    return _channels_first(array[None], array.shape, name, f"{name} has shape {array.shape}")[0]


def _channels_first(batch, image_shape, name, described):
    """Move the channel axis of a 4-D batch second, given one image's 3-D shape."""
    if image_shape[-1] in CHANNEL_COUNTS:
        batch = np.moveaxis(batch, -1, 1)
    elif image_shape[0] not in CHANNEL_COUNTS:
        raise ValueError(
            f"{described}: no axis holds 1, 3 or 4 channels. Pass grey, RGB or RGBA images with the channels "
            "last or first."
        )
    return batch


def _checked_values(array, name):
    """Check an image array's values; return it as uint8 or float32."""
    kind = array.dtype.kind
    if kind == "c":  # a ValueError, as scikit-learn raises for complex data
        raise ValueError(
            f"{name} holds complex numbers (dtype {array.dtype}); images hold real values (uint8 0..255 or float "
            "0..1). Pass the part you mean, e.g. np.abs(X) or X.real, scaled to that range."
        )
    if kind not in "uif":
        raise TypeError(
            f"{name} must hold numbers (uint8 0..255 or float 0..1). Got dtype {array.dtype}."
            + (" Convert a mask with X.astype(np.uint8) * 255." if kind == "b" else "")
        )
    if array.size == 0:
        raise ValueError(
            f"{name} holds images without pixels (shape {array.shape}). Every image needs a height and width of at "
            "least 1."
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    if kind in "ui":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"{name}: integer images must lie in 0..255 (or be uint16 for 16-bit images). Got values from {low} "
                f"to {high}."
            )
        return array.astype(np.uint8)
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} contains NaN or infinite values. Replace them before fitting (images must be finite)."
        )
    low, high = float(array.min()), float(array.max())
    if high > 1.0 or low < 0.0:
        raise ValueError(
            f"{name}: float images must lie in [0, 1]. Got values from {low:g} to {high:g}. Pass uint8 images "
            "(0..255) or divide by 255."
        )
    return array.astype(np.float32, copy=False)
