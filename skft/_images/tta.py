"""Test-time augmentation: the copies of the images a prediction is averaged over (``tta``).

``tta="flip"`` predicts each image and its mirror image (horizontal flip); ``tta=n`` the image
itself and ``n - 1`` copies augmented as ``augment=True`` augments training images (a random
resized crop keeping 70 to 100 % of the area, and a flip half of the time). The draws of each
image come from a generator seeded with the image's own content and the copy's number: a
prediction is the same whether an image is predicted alone or in a batch, in any order, in any
process. Training never sees these copies.
"""

import hashlib

import torch
from torchvision.transforms import v2

from .augment import RandomCropAndFlip
from .decoding import LazyImages
from .source import image_batches

#: The only named ``tta``; an integer is a number of copies.
FLIP = "flip"


def check_tta(tta, modality, estimator_name):
    """Refuse ``tta`` where it does not apply: texts have no augmentation to average over.

    Parameters
    ----------
    tta : None, "flip" or int
        Already validated against the parameter constraints.
    modality : {"image", "text"}
    estimator_name : str
        For the message.
    """
    if tta is not None and modality == "text":
        raise ValueError(
            f"tta={tta!r} averages predictions over flipped or cropped copies of images, but this {estimator_name} "
            "reads texts, which have no such copies. Pass tta=None."
        )


def augmented_copies(images, tta, image_size):
    """The image sets a prediction with ``tta`` averages over, the images themselves first.

    Parameters
    ----------
    images : Tensor or LazyImages
        From :func:`skft._images.source.as_image_source`.
    tta : None, "flip" or int
    image_size : int
        The network's input side (the crops' size).

    Yields
    ------
    Tensor or LazyImages
        ``images``, then each augmented copy as an ``(N, C, H, W)`` tensor.
    """
    yield images
    if tta is None:
        return
    if isinstance(images, LazyImages):
        images = torch.cat(list(image_batches(images, 256)))
    if tta == FLIP:
        yield v2.functional.horizontal_flip(images)
        return
    for copy in range(1, tta):
        yield torch.stack([_augmented(image, copy, image_size) for image in images])


def _augmented(image, copy, image_size):
    """``image`` cropped and flipped with draws seeded by its content and ``copy``."""
    digest = hashlib.blake2b(image.contiguous().numpy().tobytes(), digest_size=8, key=str(copy).encode())
    generator = torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)
    return RandomCropAndFlip(image_size, generator)(image)
