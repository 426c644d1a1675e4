"""The "auto" defaults (lr, trainable_layers), BatchNorm from scratch, and the epoch table."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from skft import FineTunedClassifier
from skft._defaults import DEFAULTS, FALLBACK, BackboneDefaults, resolve_lr

from conftest import TINY, make_images


@pytest.fixture
def auto_params(tiny_params):
    return {**tiny_params, "lr": "auto"}


def _group_lrs(clf):
    return {group["lr"] for group in clf.net_.optimizer_.param_groups}


@pytest.mark.parametrize("mode", ["full", "repurpose", "feature_extraction"])
def test_auto_lr_resolves_per_mode_and_is_reported(auto_params, mode):
    X, y = make_images(16)
    clf = FineTunedClassifier(mode=mode, **auto_params).fit(X, y)
    assert clf.lr == "auto"
    assert clf.lr_ == FALLBACK.lr[mode]
    assert _group_lrs(clf) == {FALLBACK.lr[mode]}


def test_auto_lr_uses_the_backbones_own_row(auto_params, monkeypatch):
    row = BackboneDefaults(
        lr={"full": 2e-2, "repurpose": 3e-2, "feature_extraction": 4e-2, "scratch": 5e-2},
        trainable_layers=1,
        measured=True,
    )
    monkeypatch.setitem(DEFAULTS, TINY, row)
    X, y = make_images(16)
    assert FineTunedClassifier(mode="repurpose", **auto_params).fit(X, y).lr_ == 3e-2
    scratch = FineTunedClassifier(mode="full", weights=None, **auto_params).fit(X, y)
    assert scratch.lr_ == 5e-2 and _group_lrs(scratch) == {5e-2}


def test_shipped_backbones_have_measured_defaults():
    assert DEFAULTS["efficientnet_lite0"].measured and DEFAULTS["all-MiniLM-L6-v2"].measured
    assert resolve_lr("auto", "efficientnet_lite0", "full", pretrained=True) < resolve_lr(
        "auto", "efficientnet_lite0", "feature_extraction", pretrained=True
    )
    assert resolve_lr(0.5, "efficientnet_lite0", "full", pretrained=True) == 0.5


def test_lora_uses_its_own_measured_value_else_the_repurpose_one():
    assert (
        resolve_lr("auto", "efficientnet_lite0", "lora", pretrained=True) == DEFAULTS["efficientnet_lite0"].lr["lora"]
    )
    assert resolve_lr("auto", "all-MiniLM-L6-v2", "lora", pretrained=True) == DEFAULTS["all-MiniLM-L6-v2"].lr["lora"]
    assert "lora" not in FALLBACK.lr
    assert resolve_lr("auto", "resnet18", "lora", pretrained=True) == FALLBACK.lr["repurpose"]


def test_a_number_passes_through(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(mode="full", **{**tiny_params, "lr": 0.05}).fit(X, y)
    assert clf.lr_ == 0.05 and _group_lrs(clf) == {0.05}


def test_grid_search_over_lr_including_auto(auto_params):
    X, y = make_images(24)
    search = GridSearchCV(FineTunedClassifier(mode="repurpose", **auto_params), {"lr": ["auto", 1e-2]}, cv=2)
    search.fit(X, y)
    assert [params["lr"] for params in search.cv_results_["params"]] == ["auto", 1e-2]
    assert search.best_estimator_.lr_ == (FALLBACK.lr["repurpose"] if search.best_params_["lr"] == "auto" else 1e-2)


@pytest.mark.parametrize(
    "mode, expected", [("repurpose", min(FALLBACK.trainable_layers, 3)), ("full", 3), ("feature_extraction", 0)]
)
def test_auto_trainable_layers_is_reported(tiny_params, mode, expected):
    X, y = make_images(16)
    clf = FineTunedClassifier(mode=mode, **{**tiny_params, "trainable_layers": "auto"}).fit(X, y)
    assert clf.trainable_layers_ == expected
    assert clf.n_frozen_blocks_ == 3 - expected


def test_bad_lr_string_names_the_parameter(tiny_params):
    X, y = make_images(16)
    with pytest.raises(ValueError, match="'lr' parameter"):
        FineTunedClassifier(**{**tiny_params, "lr": "fast"}).fit(X, y)


def test_from_scratch_batchnorm_trains_and_its_statistics_are_a_plain_average(tiny_params):
    X, y = make_images(24)
    clf = FineTunedClassifier(mode="full", weights=None, **tiny_params).fit(X, y)
    network = clf.net_.module_
    with torch.no_grad():
        conv_out = network.backbone[0][0][0](network.normalizer(torch.from_numpy(X)[:, None]))
    batch_norm = network.backbone[0][0][1]
    # Three batches of 8: the cumulative average of the batch means is the mean over all images.
    assert torch.allclose(batch_norm.running_mean, conv_out.mean(dim=(0, 2, 3)), atol=1e-5)
    assert batch_norm.momentum == 0.1  # restored after the pass
    one_by_one = np.concatenate([clf.predict_proba(X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(one_by_one, clf.predict_proba(X), atol=1e-6)


def test_pretrained_batchnorm_stays_frozen_by_default(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(mode="full", **tiny_params).fit(X, y)
    batch_norm = clf.net_.module_.backbone[0][0][1]
    assert torch.equal(batch_norm.running_mean, torch.zeros_like(batch_norm.running_mean))


def test_epoch_table_has_valid_accuracy_and_the_stopping_epoch(tiny_params, capsys):
    X, y = make_images(40)
    clf = FineTunedClassifier(
        mode="feature_extraction",
        early_stopping=True,
        n_iter_no_change=1,
        verbose=1,
        **{**tiny_params, "max_epochs": 50, "lr": 0.5},
    ).fit(X, y)
    assert len(clf.history_) < 50  # stopped early
    assert "valid_acc" in clf.history_[-1]
    lines = capsys.readouterr().out.splitlines()
    assert "valid_acc" in lines[0]
    rows = [line.split()[0] for line in lines if line.strip() and line.split()[0].isdigit()]
    assert rows == [str(epoch) for epoch in range(1, len(clf.history_) + 1)]
