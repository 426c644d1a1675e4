"""``load`` and ``warm_start`` rebuild the network the fit trained, against a cold activation cache.

A loaded model must predict as the saved one with every cache empty: a warm cache would serve the
saved model's own activations and hide a loader that builds another network. The torchvision
backbones read stand-in weights from a temporary hub cache; ``load`` runs with an empty hub and
downloads refused, so it must rebuild without reading any weights.
"""

import numpy as np
import pytest
import torch

import skft
from skft import FineTunedClassifier
from skft.backbones import _resolving

from conftest import TINY_SIZE, make_images
from stand_in_weights import never_download, use_hub, write_stand_in


@pytest.fixture(autouse=True)
def _cold_caches():
    skft.clear_cache()
    _resolving._PRISTINE_MODELS.clear()
    yield
    skft.clear_cache()
    _resolving._PRISTINE_MODELS.clear()


def _fit_save_load(tmp_path, monkeypatch, params, n_images):
    """Fit on stand-in weights, save, then load with cold caches and an empty hub; return both and X."""
    never_download(monkeypatch)
    write_stand_in(use_hub(monkeypatch, tmp_path / "hub_with_weights"), params["backbone"], params["weights"])
    X, y = make_images(n_images, size=params["image_size"], channels=3)
    # A small lr keeps the probabilities away from 0 and 1, where they would hide differences.
    clf = FineTunedClassifier(max_epochs=1, batch_size=4, lr=1e-5, random_state=0, device="cpu", **params).fit(X, y)
    path = tmp_path / "model.skft"
    # The loading side has no torchvision weights: a self-contained file.
    clf.save(path, full=True)
    expected = clf.predict_proba(X)
    skft.clear_cache()
    _resolving._PRISTINE_MODELS.clear()
    use_hub(monkeypatch, tmp_path / "empty_hub")
    return clf, skft.load(path), X, expected


def test_load_googlenet_keeps_its_input_transform(tmp_path, monkeypatch):
    params = dict(backbone="googlenet", weights="DEFAULT", image_size=32, mode="repurpose", trainable_layers=1)
    _, loaded, X, expected = _fit_save_load(tmp_path, monkeypatch, params, n_images=8)
    stem = loaded.net_.module_.backbone[0]
    assert next(iter(stem.named_children()))[0] == "transform_input"
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-5, atol=1e-6)


def test_load_vit_with_swag_weights(tmp_path, monkeypatch):
    # SWAG ViTs only take 384 px images; feature_layer=1 keeps the embedding and one encoder layer.
    params = dict(backbone="vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1", image_size=384, feature_layer=1,
                  mode="feature_extraction")  # fmt: skip
    _, loaded, X, expected = _fit_save_load(tmp_path, monkeypatch, params, n_images=4)
    assert loaded.image_size_ == 384
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-5, atol=1e-6)


def test_warm_start_on_googlenet_continues_the_same_network(tmp_path, monkeypatch):
    """A continuation rebuilds from the kept tensors (as every GPU fit does): at a negligible lr nothing changes."""
    never_download(monkeypatch)
    write_stand_in(use_hub(monkeypatch, tmp_path), "googlenet", "DEFAULT")
    X, y = make_images(8, size=32, channels=3)
    clf = FineTunedClassifier(backbone="googlenet", image_size=32, max_epochs=1, batch_size=4, lr=1e-5,
                              random_state=0, device="cpu", mode="repurpose", trainable_layers=1)  # fmt: skip
    expected = clf.fit(X, y).predict_proba(X)
    skft.clear_cache()
    clf.set_params(warm_start=True, lr=1e-12).fit(X, y)
    skft.clear_cache()
    assert next(iter(clf.net_.module_.backbone[0].named_children()))[0] == "transform_input"
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-5, atol=1e-6)


def _training_modes(network):
    network.train()
    modes = {name: module.training for name, module in network.named_modules()}
    network.eval()
    return modes


def test_load_restores_bn_trainable(tmp_path, tiny_params):
    X, y = make_images(16, size=TINY_SIZE, channels=3)
    clf = FineTunedClassifier(bn_trainable=True, mode="full", **tiny_params).fit(X, y)
    path = tmp_path / "model.skft"
    clf.save(path)
    loaded = skft.load(path)
    assert loaded.net_.module_.bn_trainable is True
    # In training (e.g. net_.partial_fit), the BatchNorm layers update their statistics as they did.
    assert _training_modes(loaded.net_.module_) == _training_modes(clf.net_.module_)
    assert any(isinstance(m, torch.nn.BatchNorm2d) and m.training for m in clf.net_.module_.train().modules())
