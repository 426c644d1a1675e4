"""Model files (save / skft.load), atomic writes, and files that must never run code."""

import json
import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sklearn.exceptions import NotFittedError
from skorch.callbacks import EpochTimer
from torch import nn

import skft
from skft import FineTunedClassifier, FineTunedRegressor, register_backbone
from skft._nn.atomic import atomic_write
from skft.backbones import _registry

from conftest import TINY, TINY_SIZE, make_images, make_tiny_cnn


class _RunsCode:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def fitted_classifier(tiny_params):
    X, y = make_images(24, n_classes=3, channels=3)
    labels = np.array(["cat", "dog", "emu"])[y]
    return FineTunedClassifier(head=(8,), dropout=0.1, **tiny_params).fit(X, labels), X, labels


def _saved(estimator, path):
    estimator.save(path)
    return path


def _read(path):
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}, json.loads(handle.metadata()["skft"])


def _forge(source, target, edit):
    """Copy a model file, changing its JSON metadata with ``edit(config)``."""
    tensors, config = _read(source)
    edit(config)
    save_file(tensors, str(target), metadata={"skft": json.dumps(config)})
    return target


# -- round trips ---------------------------------------------------------------------------------


def test_classifier_round_trip_predicts_identically_with_every_attribute(fitted_classifier, tmp_path):
    clf, X, _ = fitted_classifier
    expected_proba, expected = clf.predict_proba(X), clf.predict(X)
    path = tmp_path / "model.skft"
    assert clf.save(path) is clf
    skft.clear_cache()
    loaded = skft.load(path)
    assert type(loaded) is FineTunedClassifier
    assert loaded.get_params() == clf.get_params()
    assert isinstance(loaded.get_params()["head"], tuple)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.classes_.dtype == clf.classes_.dtype
    for name in ("image_size_", "backbone_name_", "block_names_", "n_frozen_blocks_", "lr_", "trainable_layers_",
                 "n_trainable_params_"):  # fmt: skip
        assert getattr(loaded, name) == getattr(clf, name), name
    np.testing.assert_array_equal(loaded.predict_proba(X), expected_proba)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    assert loaded.history_[:, "train_loss"] == clf.history_[:, "train_loss"]


def test_loaded_model_reports_the_lr_its_fit_used_even_if_the_defaults_change(tiny_params, tmp_path, monkeypatch):
    X, y = make_images(16, n_classes=2, seed=0)
    clf = FineTunedClassifier(**{**tiny_params, "lr": "auto"}).fit(X, y)
    clf.save(tmp_path / "model.skft")
    monkeypatch.setattr("skft._base.resolve_lr", lambda *args, **kwargs: 0.123)
    # The blocks a file's fit froze, not what "auto" resolves to now.
    monkeypatch.setattr("skft._base.resolve_trainable_layers", lambda *args, **kwargs: 0)
    loaded = skft.load(tmp_path / "model.skft")
    assert loaded.lr_ == clf.lr_ != 0.123
    assert loaded.trainable_layers_ == clf.trainable_layers_ != 0
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("two_d", [False, True])
def test_regressor_round_trip_keeps_target_scaling(tiny_params, tmp_path, two_d):
    X, labels = make_images(20)
    y = 100.0 + 50.0 * labels
    target = np.column_stack([y, -y / 3]) if two_d else y
    reg = FineTunedRegressor(**tiny_params).fit(X, target)
    expected = reg.predict(X)
    path = _saved(reg, tmp_path / "reg.skft")
    skft.clear_cache()
    loaded = skft.load(path)
    np.testing.assert_array_equal(loaded.target_mean_, reg.target_mean_)
    np.testing.assert_array_equal(loaded.target_scale_, reg.target_scale_)
    assert (loaded.n_targets_, loaded.target_ndim_) == (reg.n_targets_, reg.target_ndim_)
    np.testing.assert_array_equal(loaded.predict(X), expected)


def test_plain_non_default_parameters_round_trip(tiny_params, tmp_path):
    X, y = make_images(16)
    weights = tmp_path / "backbone.pth"
    torch.save(make_tiny_cnn().state_dict(), weights)
    params = dict(
        tiny_params,
        weights=weights,
        optimizer=torch.optim.RMSprop,
        device=torch.device("cpu"),
        early_stopping=True,
        validation_fraction=0.25,
        callbacks=[],
        mode="full",
    )
    clf = FineTunedClassifier(**params).fit(X, y + 5)
    expected = clf.predict_proba(X)
    path = _saved(clf, tmp_path / "m.skft")
    skft.clear_cache()
    loaded = skft.load(path)
    saved = loaded.get_params()
    assert saved["weights"] == weights and isinstance(saved["weights"], Path)
    assert saved["optimizer"] is torch.optim.RMSprop
    assert saved["device"] == "cpu" and saved["callbacks"] == [] and saved["early_stopping"] is True
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_file_is_safetensors_with_readable_json(fitted_classifier, tmp_path):
    clf, _, _ = fitted_classifier
    tensors, config = _read(_saved(clf, tmp_path / "m.skft"))
    assert config["format"] == "skft-model" and config["skft_version"] == skft.__version__
    assert config["estimator"] == "FineTunedClassifier"
    assert config["params"]["backbone"] == "tiny_cnn" and config["fitted"]["block_names_"] == clf.block_names_
    assert config["fitted"]["classes_"]["ndarray"] == ["cat", "dog", "emu"]
    frozen = tuple(f"backbone.{name}." for name in clf.block_names_[: clf.n_frozen_blocks_])
    assert clf.n_frozen_blocks_ > 0
    assert set(tensors) == {key for key in clf.net_.module_.state_dict() if not key.startswith(frozen)}
    assert set(config["pretrained"]["blocks"]) == set(clf.block_names_[: clf.n_frozen_blocks_])
    full_tensors, full_config = _read(clf.save(tmp_path / "full.skft", full=True) and tmp_path / "full.skft")
    assert set(full_tensors) == set(clf.net_.module_.state_dict()) and "pretrained" not in full_config


def test_loaded_model_continues_training_with_warm_start(fitted_classifier, tmp_path):
    clf, X, labels = fitted_classifier
    expected = clf.predict_proba(X)
    path = _saved(clf, tmp_path / "m.skft")
    skft.clear_cache()
    loaded = skft.load(path)
    loaded.set_params(warm_start=True, lr=1e-12, max_epochs=1).fit(X, labels)
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)


def test_loaded_model_still_pickles(fitted_classifier, tmp_path):
    clf, X, _ = fitted_classifier
    expected = clf.predict(X)
    path = _saved(clf, tmp_path / "m.skft")
    skft.clear_cache()
    loaded = skft.load(path, device="cpu")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(loaded)).predict(X), expected)


# -- what cannot be saved -----------------------------------------------------------------------


def test_save_before_fit_is_not_fitted_error(tmp_path):
    with pytest.raises(NotFittedError):
        FineTunedClassifier().save(tmp_path / "m.skft")
    assert not list(tmp_path.iterdir())


class _MyOptimizer(torch.optim.SGD):
    pass


@pytest.mark.parametrize(
    "param, value, fix",
    [
        ("callbacks", [EpochTimer()], "set_params\\(callbacks=None\\)"),
        ("random_state", np.random.RandomState(0), "int or None"),
        ("optimizer", _MyOptimizer, "torch.optim"),
    ],
)
def test_parameters_that_are_not_plain_values_are_refused_by_name(tiny_params, tmp_path, param, value, fix):
    X, y = make_images(16)
    clf = FineTunedClassifier(**dict(tiny_params, **{param: value})).fit(X, y)
    with pytest.raises(TypeError, match=f"^{param}=.*cannot be saved.*{fix}"):
        clf.save(tmp_path / "m.skft")
    assert not list(tmp_path.iterdir())


def test_module_backbone_is_refused_with_the_registration_fix(tmp_path):
    X, y = make_images(16)
    clf = FineTunedClassifier(backbone=make_tiny_cnn(), image_size=TINY_SIZE, max_epochs=1, random_state=0)
    with pytest.raises(TypeError, match="^backbone=.*register_backbone"):
        clf.fit(X, y).save(tmp_path / "m.skft")


# -- files that must not load -------------------------------------------------------------------


def test_legacy_pickle_carrying_code_is_refused_and_never_runs(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.skft"
    with open(path, "wb") as f:
        pickle.dump({"payload": _RunsCode(str(marker))}, f)
    with pytest.raises(ValueError, match="evil.skft.*refused"):
        skft.load(path)
    assert not marker.exists()


def test_torch_save_zip_carrying_code_is_refused_and_never_runs(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil_zip.skft"
    torch.save({"payload": _RunsCode(str(marker))}, path)
    with pytest.raises(ValueError, match="evil_zip.skft.*refused"):
        skft.load(path)
    assert not marker.exists()


def test_joblib_file_of_a_fitted_estimator_is_refused(fitted_classifier, tmp_path):
    clf, _, _ = fitted_classifier
    joblib.dump(clf, tmp_path / "model.joblib")
    with pytest.raises(ValueError, match="model.joblib.*joblib.load"):
        skft.load(tmp_path / "model.joblib")


def test_plain_weights_safetensors_is_not_a_model_file(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="weights.safetensors.*no skft metadata"):
        skft.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.skft"):
        skft.load(tmp_path / "nope.skft")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.update(estimator="os.system"), "names estimator 'os.system'"),
        (lambda c: c["params"].update(lr=-1.0), "damaged or foreign parameters"),
        (lambda c: c["params"].update(run="rm -rf /"), "damaged or foreign parameters"),
        (lambda c: c["params"].update(optimizer={"torch_optimizer": "Optimizer.__init__"}), "damaged or foreign"),
        (lambda c: c["params"].update(head={"pickle": "gASV"}), "damaged or foreign"),
        (lambda c: c["fitted"].pop("classes_"), "damaged or foreign"),
        (lambda c: c.update(format="other"), "damaged skft metadata"),
        (lambda c: c["fitted"].update(n_frozen_blocks_=99), "n_frozen_blocks_=99"),
        (lambda c: c["fitted"].update(n_frozen_blocks_=True), "n_frozen_blocks_=True"),
    ],
    ids=[
        "estimator",
        "invalid-param",
        "unknown-param",
        "optimizer",
        "unknown-tag",
        "missing-attr",
        "format",
        "frozen-blocks",
        "frozen-blocks-type",
    ],
)
def test_forged_metadata_is_refused(fitted_classifier, tmp_path, edit, match):
    clf, _, _ = fitted_classifier
    forged = _forge(_saved(clf, tmp_path / "m.skft"), tmp_path / "forged.skft", edit)
    with pytest.raises(ValueError, match=match):
        skft.load(forged)


def test_file_from_a_newer_skft_format_fails_clearly(fitted_classifier, tmp_path):
    clf, _, _ = fitted_classifier
    forged = _forge(
        _saved(clf, tmp_path / "m.skft"),
        tmp_path / "new.skft",
        lambda c: c.update(format_version=99, skft_version="9.0"),
    )
    with pytest.raises(ValueError, match=r"skft '9.0' in model format 99.*reads format 1 to 3.*Upgrade skft"):
        skft.load(forged)


@pytest.fixture
def swappable_backbone():
    name = "tiny_swappable"
    register_backbone(name, make_tiny_cnn, image_size=TINY_SIZE, min_image_size=4, overwrite=True)
    yield name
    _registry._USER_SPECS.pop(name, None)


def test_file_made_for_another_backbone_fails_clearly(swappable_backbone, tmp_path):
    X, y = make_images(16)
    clf = FineTunedClassifier(backbone=swappable_backbone, image_size=TINY_SIZE, max_epochs=1, random_state=0)
    clf.fit(X, y).save(tmp_path / "m.skft")

    def wider():
        return nn.Sequential(nn.Conv2d(3, 12, 3), nn.ReLU(), nn.Conv2d(12, 16, 3), nn.Conv2d(16, 16, 3))

    register_backbone(swappable_backbone, wider, image_size=TINY_SIZE, min_image_size=4, overwrite=True)
    with pytest.raises(ValueError, match="m.skft.*made for another backbone.*Register 'tiny_swappable'"):
        skft.load(tmp_path / "m.skft")
    _registry._USER_SPECS.pop(swappable_backbone)
    with pytest.raises(ValueError, match="needs backbone 'tiny_swappable', which cannot be built here"):
        skft.load(tmp_path / "m.skft")


# -- atomic writes ------------------------------------------------------------------------------


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as tmp:
        assert Path(tmp).parent == tmp_path and Path(tmp).exists()
        Path(tmp).write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["file.bin"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["OSError", "KeyboardInterrupt"])
def test_save_failing_midway_keeps_the_previous_file(fitted_classifier, tmp_path, monkeypatch, error):
    clf, X, _ = fitted_classifier
    expected = clf.predict(X)
    path = tmp_path / "m.skft"
    clf.save(path)
    before = path.read_bytes()

    def half_then_fail(tensors, filename, metadata=None):
        save_file(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) // 2)
        raise error

    monkeypatch.setattr("skft._nn.model_file.save_file", half_then_fail)
    with pytest.raises(type(error)):
        clf.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.skft"]
    skft.clear_cache()
    np.testing.assert_array_equal(skft.load(path).predict(X), expected)


def test_failed_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def refuse(src, dst):
        raise PermissionError("busy")

    monkeypatch.setattr("skft._nn.atomic.os.replace", refuse)
    with pytest.raises(PermissionError):
        with atomic_write(target) as tmp:
            Path(tmp).write_bytes(b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["file.bin"]


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "file.bin"
    with atomic_write(target) as first, atomic_write(target) as second:
        assert first != second
        Path(first).write_bytes(b"first")
        Path(second).write_bytes(b"second")
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["file.bin"]


def test_atomic_write_into_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist. Create it first"):
        with atomic_write(tmp_path / "no" / "file.bin"):
            pass


def test_a_file_of_changes_refuses_other_pretrained_weights(tmp_path):
    X, y = make_images(16)
    weights = tmp_path / "backbone.pth"
    torch.save(make_tiny_cnn().state_dict(), weights)
    clf = FineTunedClassifier(
        TINY, weights=weights, trainable_layers=1, max_epochs=1, device="cpu", random_state=0
    ).fit(X, y)
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "changes.skft")
    clf.save(tmp_path / "full.skft", full=True)
    assert os.path.getsize(tmp_path / "changes.skft") < os.path.getsize(tmp_path / "full.skft")
    skft.clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "changes.skft").predict_proba(X), expected, atol=1e-6)
    state = make_tiny_cnn().state_dict()
    state["0.0.weight"] = state["0.0.weight"] + 0.01
    torch.save(state, weights)
    skft.clear_cache()
    with pytest.raises(ValueError, match="stores only what its fit changed.*save\\(path, full=True\\)"):
        skft.load(tmp_path / "changes.skft")
    skft.clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "full.skft").predict_proba(X), expected, atol=1e-6)
