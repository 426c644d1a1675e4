"""Images decoded one at a time: from files, PIL images or arrays of different sizes."""

import numbers
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

#: What PIL raises on a file that is not an image, is truncated or is corrupt.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_WITH_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")


class LazyImages:
    """A sequence of images that behaves like the ``(N, 3, S, S)`` ``uint8`` tensor it stands for.

    ``len`` gives ``N``; an integer index decodes one image into a ``(3, S, S)`` ``uint8`` tensor
    (grey repeated to RGB, alpha dropped, resized to ``S = image_size``); an index array or slice
    gives the selected images, still undecoded. Deliberately not a ``torch.utils.data.Dataset``:
    skorch then pairs it with the targets exactly as it pairs an array.

    Parameters
    ----------
    items : list
        File paths (str or path-like), PIL images, or checked ``(C, H, W)`` arrays (``uint8`` or
        ``float32`` in ``[0, 1]``).
    image_size : int or None, default=None
        Side of the decoded square images; ``None`` keeps each image's own size.
    """

    def __init__(self, items, image_size=None):
        self.items = items
        self.image_size = image_size

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, numbers.Integral):
            return load_image(self.items[index], self.image_size)
        positions = np.arange(len(self.items))[np.asarray(index) if not isinstance(index, slice) else index]
        return LazyImages([self.items[position] for position in positions], self.image_size)

    def __repr__(self):
        return f"LazyImages(<{len(self)} images>, image_size={self.image_size!r})"


def load_image(item, image_size=None):
    """Decode one image into a ``(3, S, S)`` ``uint8`` tensor.

    Parameters
    ----------
    item : str, path-like, PIL.Image.Image or ndarray
        A file path, a PIL image of any mode, or a checked ``(C, H, W)`` array.
    image_size : int or None, default=None
        Side to resize to (bilinear, antialiased, like the network); ``None`` keeps the size.

    Returns
    -------
    Tensor of shape (3, S, S), uint8
    """
    pixels = item if isinstance(item, np.ndarray) else _decoded(item, image_size)
    return to_rgb_uint8(torch.from_numpy(np.array(pixels)), image_size)


def pil_pixels(image, name):
    """Pixels of a PIL image of any mode as a ``(C, H, W)`` array.

    Parameters
    ----------
    image : PIL.Image.Image
    name : str
        How the image is named in error messages.

    Returns
    -------
    ndarray
        ``(3, H, W)`` ``uint8`` for 8-bit modes (alpha and palettes resolved); ``(1, H, W)``
            ``float32`` in ``[0, 1]`` for 16-bit (``I;16``), 32-bit integer (``I``) and float (``F``)
        modes: ``F`` within ``[0, 1]`` is taken as is; otherwise ``I`` and ``F`` are read as 0..255,
        or as 0..65535 when larger values occur.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _scaled_grey(np.asarray(image, dtype=np.float64), mode, name)[None]
    has_alpha = mode in _WITH_ALPHA or "transparency" in image.info
    rgb = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))[..., :3]
    return rgb.transpose(2, 0, 1)


def _scaled_grey(values, mode, name):
    """Scale the values of a high-bit-depth grey image to ``[0, 1]``."""
    low, high = float(values.min()), float(values.max())
    if mode.startswith("I;16"):
        full_scale = 65535.0
    elif mode == "F" and high <= 1.0:
        full_scale = 1.0
    else:
        full_scale = 255.0 if high <= 255 else 65535.0
    if not np.isfinite(values).all() or low < 0 or high > full_scale:
        raise ValueError(
            f"{name} has mode {mode!r} and values from {low:g} to {high:g}; images of this mode must lie in [0, 1], "
            "0..255 or 0..65535. Rescale it, e.g. Image.fromarray(array.astype(np.uint8)) for values 0..255."
        )
    return (values / full_scale).astype(np.float32)


def _decoded(item, image_size):
    """Pixels of a PIL image or an image file; a ``ValueError`` naming it when it cannot be read."""
    name = _describe(item)
    try:
        if isinstance(item, Image.Image):
            item.load()
            image = item
        else:
            with Image.open(item) as image:
                if image_size is not None:
                    image.draft("RGB", (image_size, image_size))
                ImageOps.exif_transpose(image, in_place=True)
                image.load()
    except DECODE_ERRORS as error:
        raise ValueError(
            f"could not read {name} ({type(error).__name__}: {error}). Replace or remove it; JPEG, PNG, BMP, WebP, "
            "GIF and TIFF files can be read."
        ) from error
    return pil_pixels(image, name)


def _describe(item):
    if not isinstance(item, Image.Image):
        return f"the image file {os.fspath(item)!r}"
    filename = getattr(item, "filename", "")
    if filename:
        return f"the PIL image from {filename!r}"
    return f"a PIL image ({item.mode}, {item.size[0]}x{item.size[1]})"


def to_rgb_uint8(pixels, image_size):
    """Turn one image into ``(3, S, S)`` ``uint8``: grey repeated, alpha dropped, resized.

    Parameters
    ----------
    pixels : Tensor of shape (C, H, W)
        ``uint8``, or float in ``[0, 1]``; ``C`` in 1, 3, 4.
    image_size : int or None
        ``S``; ``None`` keeps the size.

    Returns
    -------
    Tensor of shape (3, S, S), uint8
    """
    if pixels.shape[0] == 1:
        pixels = pixels.expand(3, -1, -1)
    elif pixels.shape[0] == 4:
        pixels = pixels[:3]
    same_size = image_size is None or tuple(pixels.shape[1:]) == (image_size, image_size)
    if pixels.dtype == torch.uint8 and same_size:
        return pixels.contiguous()
    values = pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels.float()
    if not same_size:
        values = F.interpolate(
            values[None], size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )[0]
    return (values * 255).round_().clamp_(0, 255).to(torch.uint8)
