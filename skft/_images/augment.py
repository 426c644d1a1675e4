"""Augmentation of training batches, never of validation or prediction batches.

The estimators hand :class:`AugmentedBatches` to skorch as the training data loader's
``collate_fn`` only: the early-stopping split and every prediction go through the validation
loader, which never augments. In ``GridSearchCV`` the held-out fold is predicted, so it is never
augmented either.
"""

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


def default_augmentation(image_size):
    """The augmentation ``augment=True`` applies: a random resized crop and a horizontal flip.

    Parameters
    ----------
    image_size : int
        Side of the crop (the network's input size).

    Returns
    -------
    torchvision.transforms.v2.Compose
    """
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=DEFAULT_CROP_SCALE, antialias=True),
        v2.RandomHorizontalFlip(),
    ])


def training_collate(augment, image_size):
    """The ``collate_fn`` for training batches, or None (the default collation) without augmentation.

    Parameters
    ----------
    augment : bool or callable
        The estimator's ``augment`` parameter.
    image_size : int
        The network's input side.

    Returns
    -------
    AugmentedBatches or None
    """
    if callable(augment):
        return AugmentedBatches(augment, image_size)
    if augment:
        return AugmentedBatches(default_augmentation(image_size), image_size)
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
