import os

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import skft
from skft import FineTunedClassifier, cache_info, clear_cache, set_config
from skft._base import FineTunedEstimatorBase
from skft.backbones import _resolving, resolve_backbone

from conftest import make_images, make_tiny_cnn


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    set_config(cache_bytes=2 * 1024**3)
    clear_cache()


def _no_cache(monkeypatch):
    monkeypatch.setattr(FineTunedEstimatorBase, "_prefix_key", lambda self, network: None)


@pytest.mark.parametrize("mode", ["feature_extraction", "repurpose"])
def test_same_predictions_with_and_without_the_cache(tiny_params, monkeypatch, mode):
    X, y = make_images(30)
    FineTunedClassifier(mode=mode, **tiny_params).fit(X, y)  # computes the activations
    cached = FineTunedClassifier(mode=mode, **tiny_params).fit(X, y)  # is served them
    assert cache_info().misses == 30 and cache_info().hits == 30
    with monkeypatch.context() as patch:
        _no_cache(patch)
        plain = FineTunedClassifier(mode=mode, **tiny_params).fit(X, y)
        plain_proba = plain.predict_proba(X)
    np.testing.assert_allclose(cached.predict_proba(X), plain_proba, atol=1e-5)
    np.testing.assert_allclose(cached.history_[:, "train_loss"], plain.history_[:, "train_loss"], rtol=1e-4)


def test_activations_are_reused_across_fits_folds_and_grid_points(tiny_params):
    X, y = make_images(30)
    FineTunedClassifier(**tiny_params).fit(X, y)
    first = cache_info()
    assert first.misses == 30 and first.entries == 30
    GridSearchCV(FineTunedClassifier(**tiny_params), {"lr": [1e-3, 1e-2]}, cv=3).fit(X, y)
    after = cache_info()
    assert after.misses == first.misses
    # 2 grid points x 3 folds x (20 images to fit + 10 to score), then the refit on all 30: every one a hit.
    assert after.hits - first.hits == 2 * 3 * (20 + 10) + 30


def test_full_mode_never_uses_the_cache(tiny_params):
    X, y = make_images(20)
    FineTunedClassifier(mode="full", **tiny_params).fit(X, y).predict(X)
    assert cache_info().misses == 0 and cache_info().hits == 0


def test_frozen_depth_and_image_size_are_part_of_the_key(tiny_params):
    X, y = make_images(20)
    FineTunedClassifier(mode="repurpose", trainable_layers=1, **tiny_params).fit(X, y)
    FineTunedClassifier(mode="repurpose", trainable_layers=2, **tiny_params).fit(X, y)
    FineTunedClassifier(mode="repurpose", trainable_layers=1, **{**tiny_params, "image_size": 8}).fit(X, y)
    assert cache_info().misses == 60


def test_random_weights_are_keyed_by_their_values(tiny_params):
    X, y = make_images(20)
    FineTunedClassifier(weights=None, **tiny_params).fit(X, y)
    FineTunedClassifier(weights=None, **{**tiny_params, "random_state": 1}).fit(X, y)
    assert cache_info().misses == 40


def test_memory_is_bounded_with_lru_eviction(tiny_params):
    X, y = make_images(30)
    per_image = 16 * 8 * 8 * 4
    set_config(cache_bytes=10 * per_image)
    FineTunedClassifier(trainable_layers=1, **tiny_params).fit(X, y)
    info = cache_info()
    assert info.bytes_used <= 10 * per_image and info.entries == 10
    assert skft.get_config()["cache_bytes"] == 10 * per_image


def test_set_config_rejects_bad_values():
    with pytest.raises(ValueError, match="cache_bytes"):
        set_config(cache_bytes=-1)
    with pytest.raises(ValueError, match="cache_bytes"):
        set_config(cache_bytes="1GB")


def test_disk_cache_is_shared_and_written_atomically(tiny_params, tmp_path):
    X, y = make_images(20)
    reference = FineTunedClassifier(cache_dir=str(tmp_path), **tiny_params).fit(X, y).predict_proba(X)
    files = [f for _, _, names in os.walk(tmp_path) for f in names]
    assert len(files) == 20 and not any(name.startswith(".tmp") for name in files)
    clear_cache()
    again = FineTunedClassifier(cache_dir=str(tmp_path), **tiny_params).fit(X, y).predict_proba(X)
    assert cache_info().disk_hits == 20 and cache_info().misses == 0
    np.testing.assert_allclose(again, reference, atol=1e-6)


def test_a_damaged_disk_entry_is_recomputed(tiny_params, tmp_path):
    X, y = make_images(10)
    FineTunedClassifier(cache_dir=str(tmp_path), **tiny_params).fit(X, y)
    victim = next(os.path.join(root, names[0]) for root, _, names in os.walk(tmp_path) if names)
    with open(victim, "wb") as f:
        f.write(b"not a tensor file")
    clear_cache()
    FineTunedClassifier(cache_dir=str(tmp_path), **tiny_params).fit(X, y)
    assert cache_info().misses == 1


def test_pretrained_weights_are_read_once_and_frozen_tensors_shared(monkeypatch):
    _resolving._PRISTINE_MODELS.clear()
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    first = resolve_backbone("efficientnet_lite0", "DEFAULT")
    second = resolve_backbone("efficientnet_lite0", "DEFAULT")
    assert len(calls) == 1
    stem_a, stem_b = first.parts.blocks[0][1][0].weight, second.parts.blocks[0][1][0].weight
    assert stem_a.data_ptr() == stem_b.data_ptr()


def test_a_seeded_fit_does_not_depend_on_whether_the_weights_were_read_before():
    X, y = make_images(16, size=32, channels=3)
    clf = FineTunedClassifier(mode="full", image_size=32, max_epochs=1, batch_size=8, random_state=0, device="cpu")
    _resolving._PRISTINE_MODELS.clear()
    reading_the_weights = clf.fit(X, y).predict_proba(X)
    weights_already_read = clf.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(reading_the_weights, weights_already_read)


def test_trainable_blocks_are_copied_so_fitting_never_changes_the_pretrained_tensors():
    X, y = make_images(16, size=32, channels=3)
    params = dict(image_size=32, max_epochs=1, batch_size=8, random_state=0, lr=1e-2, device="cpu")
    clf = FineTunedClassifier(mode="repurpose", trainable_layers=1, **params)
    once = clf.fit(X, y).predict_proba(X)
    twice = clf.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(once, twice)
    pristine = resolve_backbone("efficientnet_lite0", "DEFAULT").parts.blocks
    trained = clf.net_.module_.backbone
    # The fitted network owns its frozen blocks too (shared only during the fit): equal values, not the same tensors.
    assert trained.stem[0].weight.data_ptr() != pristine[0][1][0].weight.data_ptr()
    assert torch.equal(trained.stem[0].weight, pristine[0][1][0].weight)
    assert trained.head_conv[0].weight.data_ptr() != pristine[-1][1][0].weight.data_ptr()
    assert not torch.equal(trained.head_conv[0].weight, pristine[-1][1][0].weight)


def test_clone_shares_a_user_module_instead_of_copying_it():
    module = make_tiny_cnn()
    estimator = FineTunedClassifier(backbone=module, image_size=16)
    assert clone(estimator).backbone is module
    assert clone(estimator).get_params()["image_size"] == 16


def test_augmentation_bypasses_the_cache(tiny_params):
    X, y = make_images(20)
    FineTunedClassifier(augment=lambda batch: batch, **tiny_params).fit(X, y).predict(X)
    assert cache_info().misses == 0 and cache_info().hits == 0


def test_parallel_workers_share_the_disk_cache_without_corrupting_it(tiny_params, tmp_path):
    from safetensors.torch import load_file

    X, y = make_images(24)
    grid = {"lr": [1e-3, 1e-2]}
    serial = GridSearchCV(FineTunedClassifier(trainable_layers=1, **tiny_params), grid, cv=2).fit(X, y)
    parallel = GridSearchCV(
        FineTunedClassifier(trainable_layers=1, cache_dir=str(tmp_path), **tiny_params), grid, cv=2, n_jobs=2
    )
    parallel.fit(X, y)
    np.testing.assert_allclose(serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"])
    files = [os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names]
    assert len(files) == 24
    assert all(load_file(path)["activation"].shape == (16, 8, 8) for path in files)


def test_fitted_cpu_networks_own_their_frozen_modules_and_the_blocks_they_train():
    X, y = make_images(16, size=32, channels=3)
    params = dict(image_size=32, max_epochs=1, batch_size=8, random_state=0, lr=1e-2, device="cpu")
    first = FineTunedClassifier(mode="repurpose", **params).fit(X, y).net_.module_.backbone
    second = FineTunedClassifier(mode="repurpose", **params).fit(X, y).net_.module_.backbone
    # Shared with the kept pretrained modules while fitting; copied before the fit returns.
    assert first.stem[0] is not second.stem[0]
    assert first.head_conv[0] is not second.head_conv[0]
    pristine = resolve_backbone("efficientnet_lite0", "DEFAULT").parts.blocks[0][1][0].weight.clone()
    full = FineTunedClassifier(mode="full", **params).fit(X, y).net_.module_.backbone
    assert full.stem[0] is not first.stem[0] and full.stem[0].weight.requires_grad
    assert not first.stem[0].weight.requires_grad
    assert torch.equal(first.stem[0].weight, pristine)
