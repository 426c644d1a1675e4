"""Test-time augmentation (tta): predictions averaged over flipped or cropped copies, at predict time only."""

import numpy as np
import pytest
import torch

import skft
from skft import FineTunedClassifier, FineTunedRegressor
from skft._images.tta import augmented_copies

from conftest import TINY, TINY_SIZE, make_images, tiny_classifier


@pytest.fixture(scope="module")
def fitted():
    X, y = make_images(24, n_classes=3, channels=3)
    return tiny_classifier(mode="repurpose").fit(X, y), X


def test_flip_averages_the_probabilities_of_the_image_and_its_mirror(fitted):
    clf, X = fitted
    plain = clf.predict_proba(X)
    mirrored = clf.predict_proba(X[:, :, ::-1].copy())
    clf.set_params(tta="flip")
    try:
        np.testing.assert_allclose(clf.predict_proba(X), (plain + mirrored) / 2, atol=1e-7)
        np.testing.assert_array_equal(clf.predict(X), clf.classes_[clf.predict_proba(X).argmax(axis=1)])
    finally:
        clf.set_params(tta=None)


def test_crops_are_seeded_by_each_image_so_order_and_batch_do_not_matter(fitted):
    clf, X = fitted
    clf.set_params(tta=4)
    try:
        together = clf.predict_proba(X)
        np.testing.assert_allclose(clf.predict_proba(X[::-1])[::-1], together, atol=1e-6)
        np.testing.assert_allclose(clf.predict_proba(X[5:6]), together[5:6], atol=1e-6)
        assert not np.allclose(together, clf.set_params(tta=None).predict_proba(X))
    finally:
        clf.set_params(tta=None)


def test_copies_are_the_images_first_and_differ_from_them():
    images = torch.from_numpy(make_images(3, channels=3)[0]).permute(0, 3, 1, 2)
    copies = list(augmented_copies(images, 3, TINY_SIZE))
    assert len(copies) == 3 and copies[0] is images
    assert all(copy.shape == images.shape and not torch.equal(copy, images) for copy in copies[1:])
    assert len(list(augmented_copies(images, None, TINY_SIZE))) == 1


def test_fit_is_the_same_with_or_without_tta():
    X, y = make_images(24, n_classes=3)
    skft.clear_cache()
    plain = tiny_classifier(mode="repurpose").fit(X, y)
    skft.clear_cache()
    with_tta = tiny_classifier(mode="repurpose", tta=3).fit(X, y)
    for name, value in plain.net_.module_.state_dict().items():
        torch.testing.assert_close(with_tta.net_.module_.state_dict()[name], value, atol=0, rtol=0)
    assert plain.history_[-1]["train_loss"] == with_tta.history_[-1]["train_loss"]


def test_regressor_averages_image_predictions_and_survives_a_model_file(tmp_path):
    X, _ = make_images(16)
    y = X.mean(axis=(1, 2)) / 255
    reg = FineTunedRegressor(TINY, mode="repurpose", max_epochs=2, random_state=0, device="cpu", tta="flip").fit(X, y)
    mirrored = reg.set_params(tta=None).predict(X[:, :, ::-1].copy())
    plain = reg.predict(X)
    np.testing.assert_allclose(reg.set_params(tta="flip").predict(X), (plain + mirrored) / 2, atol=1e-6)
    reg.save(tmp_path / "reg.skft")
    np.testing.assert_allclose(skft.load(tmp_path / "reg.skft").predict(X), reg.predict(X), atol=1e-6)


@pytest.mark.parametrize("Estimator", [FineTunedClassifier, FineTunedRegressor])
def test_tta_with_texts_is_refused(bert_dir, texts, Estimator):
    X, y = texts
    with pytest.raises(ValueError, match=r"tta='flip' averages predictions over .* reads texts.*Pass tta=None"):
        Estimator(bert_dir, tta="flip", device="cpu").fit(X, y)


@pytest.mark.parametrize("tta", [1, "crop", 0.5])
def test_bad_tta_values_are_named(tta):
    X, y = make_images(8)
    with pytest.raises((ValueError, TypeError), match="tta"):
        tiny_classifier(tta=tta).fit(X, y)


def test_export_onnx_refuses_tta(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    clf, _ = fitted
    with pytest.raises(ValueError, match="set_params\\(tta=None\\)"):
        clf.set_params(tta="flip").export_onnx(tmp_path / "model.onnx")
    clf.set_params(tta=None)
