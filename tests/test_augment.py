"""Augmentation applies to training batches only."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from torch import nn
from torchvision.transforms import v2

from skft import FineTunedClassifier, FineTunedRegressor
from skft._images.augment import RandomCropAndFlip, augmentation_enabled, training_collate

from conftest import make_images


def counting(calls):
    """An augmentation that records the shape and dtype of every image it is given.

    A plain function: ``clone`` (and so ``GridSearchCV``) keeps it, and ``calls``, shared.
    """

    def augment(image):
        calls.append((tuple(image.shape), image.dtype))
        return image

    return augment


def test_only_training_images_are_augmented(tiny_params):
    X, y = make_images(40)
    calls = []
    clf = FineTunedClassifier(
        **tiny_params, augment=counting(calls), early_stopping=True, validation_fraction=0.25
    ).fit(X, y)
    assert len(clf.history_) == 3 and "valid_loss" in clf.history_[-1]
    assert len(calls) == 3 * 30
    clf.predict(X), clf.predict_proba(X), clf.score(X, y)
    assert len(calls) == 3 * 30


def test_grid_search_never_augments_the_held_out_fold(tiny_params):
    X, y = make_images(24)
    calls = []
    search = GridSearchCV(
        FineTunedClassifier(**{**tiny_params, "max_epochs": 2}, augment=counting(calls)), {"lr": [1e-2]}, cv=3
    ).fit(X, y)
    assert search.best_estimator_.augment.__name__ == "augment"
    assert len(calls) == 3 * 2 * 16 + 2 * 24  # three folds of 16 training images, then the refit on all 24


@pytest.mark.parametrize(
    "make_X, expected",
    [
        (lambda X: X, ((1, 16, 16), torch.uint8)),
        (lambda X: X / 255.0, ((1, 16, 16), torch.float32)),
        (lambda X: [x[: 12 + index % 2] for index, x in enumerate(X)], ((3, 16, 16), torch.uint8)),
    ],
    ids=["uint8", "float", "ragged"],
)
def test_the_augmentation_receives_channels_first_tensors(tiny_params, make_X, expected):
    X, y = make_images(16)
    calls = []
    FineTunedClassifier(**{**tiny_params, "max_epochs": 1}, augment=counting(calls)).fit(make_X(X), y)
    assert set(calls) == {expected}


def test_default_augmentation_crops_and_flips_reproducibly(tiny_params):
    transform = training_collate(True, 16, torch.Generator().manual_seed(0)).transform
    assert isinstance(transform, RandomCropAndFlip) and transform.image_size == 16 and transform.scale == (0.7, 1.0)
    assert training_collate(False, 16, torch.Generator()) is None
    X, y = make_images(24, size=24)
    first = FineTunedClassifier(mode="full", **tiny_params, augment=True).fit(X, y).predict_proba(X)
    second = FineTunedClassifier(mode="full", **tiny_params, augment=True).fit(X, y).predict_proba(X)
    plain = FineTunedClassifier(mode="full", **tiny_params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, plain)


def test_the_default_augmentation_draws_crops_and_flips_from_its_generator():
    image = torch.arange(3 * 20 * 30, dtype=torch.float32).reshape(3, 20, 30) / (3 * 20 * 30)
    state = torch.random.get_rng_state()
    outputs = [RandomCropAndFlip(16, torch.Generator().manual_seed(seed))(image) for seed in (0, 0, 1, 2, 3)]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(output.shape == (3, 16, 16) for output in outputs)
    assert torch.equal(outputs[0], outputs[1])
    assert not all(torch.equal(outputs[0], output) for output in outputs[2:])
    # Every box fits the image; the central crop when no draw gives a box that fits.
    transform = RandomCropAndFlip(16, torch.Generator().manual_seed(0))
    for height, width in [(20, 30), (5, 100), (100, 5)]:
        top, left, h, w = transform._box(height, width, transform.generator)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width


def test_augmentation_in_worker_processes(tiny_params):
    X, y = make_images(16, channels=3)
    reg = FineTunedRegressor(**{**tiny_params, "max_epochs": 1}, augment=True, num_workers=1).fit(X, y)
    assert reg.predict(X).shape == (16,)


def _random_size_crop(image):
    side = int(torch.randint(4, image.shape[-1] + 1, ()))
    return image[:, :side, :side]


@pytest.mark.parametrize("augment", [v2.RandomRotation(15), v2.Compose([v2.RandomVerticalFlip()]), _random_size_crop])
def test_torchvision_transforms_and_size_changing_callables(tiny_params, augment):
    X, y = make_images(16, channels=3)
    clf = FineTunedClassifier(**{**tiny_params, "max_epochs": 1}, augment=augment).fit(X, y)
    assert clf.predict(X).shape == (16,)


def _fails(image):
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    "augment, match",
    [
        (_fails, r"augment=<function _fails.*failed on a training image of shape \(1, 16, 16\).*RuntimeError: boom"),
        (lambda image: image.numpy(), r"augment=.*returned ndarray; it must return a \(C, H, W\) tensor"),
        (lambda image: image[None], r"augment=.*returned shape \(1, 1, 16, 16\)"),
    ],
)
def test_a_broken_augmentation_is_named(tiny_params, augment, match):
    X, y = make_images(8)
    with pytest.raises(ValueError, match=match):
        FineTunedClassifier(**tiny_params, augment=augment).fit(X, y)


def test_augmentation_enabled():
    assert not augmentation_enabled(FineTunedClassifier())
    assert augmentation_enabled(FineTunedClassifier(augment=True))
    assert augmentation_enabled(FineTunedClassifier(augment=nn.Sequential()))
    assert augmentation_enabled(FineTunedRegressor(augment=np.bool_(True)))
