"""Augmentation of training batches, never of validation or prediction batches.

The estimators hand :class:`AugmentedBatches` to skorch as the training data loader's
``collate_fn`` only: the early-stopping split and every prediction go through the validation
loader, which never augments. In ``GridSearchCV`` the held-out fold is predicted, so it is never
augmented either.
"""

import math

import torch
from torch.utils.data import default_collate
from torchvision.transforms import v2

from .decoding import to_rgb_uint8

#: The part of each image that ``augment=True`` keeps at random, as a fraction of its area.
DEFAULT_CROP_SCALE = (0.7, 1.0)


def augmentation_enabled(estimator):
    """Whether an estimator augments its training images (its ``augment`` is True or a callable).

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor

    Returns
    -------
    bool
    """
    return callable(estimator.augment) or bool(estimator.augment)


class RandomCropAndFlip:
    """What ``augment=True`` applies: a random resized crop and a horizontal flip, from a generator of its own.

    The crop box is drawn as torchvision's ``RandomResizedCrop`` draws it (a fraction ``scale`` of
    the area, an aspect ratio log-uniform in ``ratio``, ten tries, else the central crop);
    torchvision crops, resizes and flips. The draws come from ``generator``, never from torch's
    global generator, so that fits in threads cannot disturb each other. In a data-loader worker
    process they come from that process's global generator, which torch seeds per worker from the
    loader's own generator (a copy of ``generator`` would repeat one sequence in every worker).

    Parameters
    ----------
    image_size : int
        Side of the crop (the network's input size).
    generator : torch.Generator
    scale : tuple of float, default=DEFAULT_CROP_SCALE
    ratio : tuple of float, default=(3/4, 4/3)
    """

    def __init__(self, image_size, generator, scale=DEFAULT_CROP_SCALE, ratio=(3 / 4, 4 / 3)):
        self.image_size = image_size
        self.generator = generator
        self.scale = scale
        self.ratio = ratio

    def __call__(self, image):
        generator = self.generator if torch.utils.data.get_worker_info() is None else None
        top, left, height, width = self._box(*image.shape[-2:], generator)
        image = v2.functional.resized_crop(image, top, left, height, width, [self.image_size] * 2, antialias=True)
        return v2.functional.horizontal_flip(image) if _uniform(0.0, 1.0, generator) < 0.5 else image

    def _box(self, height, width, generator):
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = height * width * _uniform(*self.scale, generator)
            aspect = math.exp(_uniform(*log_ratio, generator))
            w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                return top, left, h, w
        w, h = width, height
        if width / height < self.ratio[0]:
            h = round(w / self.ratio[0])
        elif width / height > self.ratio[1]:
            w = round(h * self.ratio[1])
        return (height - h) // 2, (width - w) // 2, h, w

    def __repr__(self):
        return f"RandomCropAndFlip(image_size={self.image_size}, scale={self.scale}, ratio={self.ratio})"


def _uniform(low, high, generator):
    return low + (high - low) * float(torch.rand((), generator=generator))


def training_collate(augment, image_size, generator):
    """The ``collate_fn`` for training batches, or None (the default collation) without augmentation.

    Parameters
    ----------
    augment : bool or callable
        The estimator's ``augment`` parameter. A callable draws its randomness where it chooses
        (torch's global generator for torchvision's transforms).
    image_size : int
        The network's input side.
    generator : torch.Generator
        What ``augment=True`` draws its crops and flips from.

    Returns
    -------
    AugmentedBatches or None
    """
    if callable(augment):
        return AugmentedBatches(augment, image_size)
    if augment:
        return AugmentedBatches(RandomCropAndFlip(image_size, generator), image_size)
    return None


class AugmentedBatches:
    """Collate training samples into a batch, augmenting each image on the way.

    Parameters
    ----------
    transform : callable
        Called on each image, a ``(C, H, W)`` tensor (``uint8``, or ``float32`` in ``[0, 1]``);
        returns a tensor of the same kind and value range. Sizes may change: a batch whose images
        differ in size is resized to ``image_size``.
    image_size : int
    """

    def __init__(self, transform, image_size):
        self.transform = transform
        self.image_size = image_size

    def __call__(self, samples):
        images = [self._augmented(image) for image, _ in samples]
        return _stacked(images, self.image_size), default_collate([target for _, target in samples])

    def _augmented(self, image):
        try:
            result = self.transform(image)
        except Exception as error:
            raise ValueError(
                f"augment={self.transform!r} failed on a training image of shape {tuple(image.shape)} and dtype "
                f"{image.dtype} ({type(error).__name__}: {error}). It receives (C, H, W) tensors, uint8 or float32 "
                "in [0, 1], and must return one."
            ) from error
        if not torch.is_tensor(result) or result.ndim != 3 or result.shape[0] not in (1, 3, 4):
            described = f"shape {tuple(result.shape)}" if torch.is_tensor(result) else type(result).__name__
            raise ValueError(
                f"augment={self.transform!r} returned {described}; it must return a (C, H, W) tensor with C in 1, 3 "
                "or 4."
            )
        return result


def _stacked(images, image_size):
    """Stack images into one batch; when their shapes or dtypes differ, as RGB ``uint8`` at ``image_size``."""
    if len({(image.shape, image.dtype) for image in images}) > 1:
        images = [to_rgb_uint8(image, image_size) for image in images]
    return torch.stack(images)
