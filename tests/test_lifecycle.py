"""The fit lifecycle: interrupts, warm_start, parallel fits, determinism across processes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback, EarlyStopping

from skft import FineTunedClassifier, FineTunedRegressor

from conftest import make_images

TESTS = Path(__file__).parent


class InterruptAt(Callback):
    """Raise ``KeyboardInterrupt`` at the end of epoch ``epoch``, as a Ctrl-C there would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


# -- interrupts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [FineTunedClassifier, FineTunedRegressor], ids=lambda e: e.__name__)
def test_interrupt_keeps_the_weights_and_history_reached_then_reraises(Estimator, tiny_params):
    X, y = make_images(24)
    interrupted = Estimator(**dict(tiny_params, max_epochs=6, callbacks=[InterruptAt(2)]))
    with pytest.raises(KeyboardInterrupt, match="interrupted during epoch 2.*warm_start=True"):
        interrupted.fit(X, y)
    assert len(interrupted.history_) == 2
    two_epochs = Estimator(**dict(tiny_params, max_epochs=2)).fit(X, y)
    np.testing.assert_allclose(interrupted.predict(X), two_epochs.predict(X), rtol=1e-6)


def test_warm_start_continues_from_an_interrupted_fit(tiny_params):
    X, y = make_images(24)
    clf = FineTunedClassifier(**dict(tiny_params, max_epochs=6, callbacks=[InterruptAt(2)]))
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    reached = clf.predict_proba(X)
    # A learning rate of ~0 shows where a fit starts: from the weights reached, or from pretrained ones.
    clf.set_params(callbacks=None, lr=1e-12, max_epochs=1, warm_start=True).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), reached, atol=1e-6)
    clf.set_params(warm_start=False).fit(X, y)
    assert np.abs(clf.predict_proba(X) - reached).max() > 1e-3


def test_warm_start_continues_a_completed_fit_and_plain_refit_starts_over(tiny_params):
    X, y = make_images(24)
    first = FineTunedClassifier(**tiny_params).fit(X, y)
    once = first.predict_proba(X)
    np.testing.assert_allclose(first.fit(X, y).predict_proba(X), once, rtol=1e-6)
    first.set_params(warm_start=True).fit(X, y)
    continued = first.history_[tiny_params["max_epochs"], "train_loss"]
    assert continued < FineTunedClassifier(**tiny_params).fit(X, y).history_[0, "train_loss"]


def test_warm_start_history_goes_on_from_the_previous_epochs(tiny_params):
    X, y = make_images(24)
    clf = FineTunedClassifier(**dict(tiny_params, max_epochs=2)).fit(X, y)
    before = clf.history_[:, "train_loss"]
    clf.set_params(warm_start=True, max_epochs=1).fit(X, y)
    assert clf.history_[:, "epoch"] == [1, 2, 3]
    assert clf.history_[:2, "train_loss"] == before
    assert clf.net_.history is clf.history_


def test_warm_start_measures_l2sp_and_drift_from_the_pretrained_weights(tiny_params):
    X, y = make_images(24)
    params = dict(tiny_params, l2sp_alpha=0.1)
    clf = FineTunedClassifier(**params).fit(X, y)
    drift = clf.drift_
    assert max(drift.values()) > 1e-3
    # A learning rate of ~0: the continued fit does not move, so the distance from pretrained stays.
    clf.set_params(warm_start=True, lr=1e-12, max_epochs=1).fit(X, y)
    assert clf.drift_ == pytest.approx(drift, rel=1e-4)
    unmoved = FineTunedClassifier(**dict(params, lr=1e-12, max_epochs=1)).fit(X, y).net_.module_
    pretrained = [p for block in list(unmoved.backbone)[unmoved.n_frozen :] for p in block.parameters()]
    anchors = list(clf.net_.criterion_.penalty.buffers())
    assert len(anchors) == len(pretrained)
    for anchor, value in zip(anchors, pretrained):
        np.testing.assert_allclose(anchor, value.detach(), atol=1e-6)


def test_warm_start_may_unfreeze_more_blocks(tiny_params):
    X, y = make_images(24)
    clf = FineTunedClassifier(mode="feature_extraction", **tiny_params).fit(X, y)
    head_only = clf.predict_proba(X)
    clf.set_params(mode="full", warm_start=True, lr=1e-12, max_epochs=1).fit(X, y)
    assert clf.n_frozen_blocks_ == 0
    np.testing.assert_allclose(clf.predict_proba(X), head_only, atol=1e-6)


def test_warm_start_refuses_another_network_or_other_targets(tiny_params):
    X, y = make_images(24, n_classes=3)
    clf = FineTunedClassifier(**tiny_params).fit(X, y)
    with pytest.raises(ValueError, match=r"warm_start=True cannot continue.*'head\.0\.weight'.*warm_start=False"):
        clf.set_params(warm_start=True, head=(4,)).fit(X, y)
    with pytest.raises(ValueError, match=r"learned classes \[0, 1, 2\], but y has classes \[0, 1\]"):
        clf.set_params(head=()).fit(X[y < 2], y[y < 2])
    reg = FineTunedRegressor(**tiny_params).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="learned 1 target\\(s\\), but y has 2"):
        reg.set_params(warm_start=True).fit(X, np.column_stack([y, y]))


def test_warm_start_keeps_the_regressors_target_scaling(tiny_params):
    X, y = make_images(24)
    reg = FineTunedRegressor(**tiny_params).fit(X, 10.0 * y)
    reg.set_params(warm_start=True).fit(X, 1000.0 * y)
    assert reg.target_mean_[0] == pytest.approx(5.0) and reg.target_scale_[0] == pytest.approx(5.0)


@pytest.mark.parametrize("by", ["parameter", "callback"])
def test_early_stopping_is_not_an_interrupt(tiny_params, by):
    X, y = make_images(24)
    stopper = EarlyStopping(monitor="train_loss", patience=1, threshold=10.0)
    params = dict(tiny_params, max_epochs=20, lr=0.5)
    params.update(early_stopping=True, n_iter_no_change=1) if by == "parameter" else params.update(callbacks=[stopper])
    clf = FineTunedClassifier(**params).fit(X, y)
    assert len(clf.history_) < 20


def test_grid_search_stops_on_an_interrupt_instead_of_scoring(tiny_params):
    X, y = make_images(24)
    search = GridSearchCV(
        FineTunedClassifier(**dict(tiny_params, callbacks=[InterruptAt(1)])), {"lr": [1e-3]}, cv=2, error_score=0.0
    )
    with pytest.raises(KeyboardInterrupt):
        search.fit(X, y)


class InterruptBeforeTraining(Callback):
    """Raise ``KeyboardInterrupt`` while skorch initialises the net, before any epoch."""

    def initialize(self):
        raise KeyboardInterrupt


@pytest.mark.parametrize("failure", ["error", "interrupt before training"])
def test_a_failed_fit_leaves_the_previous_fit_intact(tiny_params, failure):
    X, y = make_images(24, n_classes=3)
    clf = FineTunedClassifier(**tiny_params).fit(X, y)
    before = dict(vars(clf)), clf.predict_proba(X)
    two_classes = np.array(["a", "b"])[y % 2]
    if failure == "error":
        clf.set_params(feature_layer=99)
        with pytest.raises(ValueError, match="feature_layer=99"):
            clf.fit(X, two_classes)
    else:
        clf.set_params(callbacks=[InterruptBeforeTraining()])
        with pytest.raises(KeyboardInterrupt):
            clf.fit(X, two_classes)
    fitted = {name for name in before[0] if name.endswith("_")}
    assert {name for name in vars(clf) if name.endswith("_")} == fitted
    assert all(vars(clf)[name] is before[0][name] for name in fitted)
    np.testing.assert_array_equal(clf.predict_proba(X), before[1])


def test_a_failed_first_fit_leaves_the_estimator_unfitted(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(**dict(tiny_params, feature_layer=99))
    with pytest.raises(ValueError):
        clf.fit(X, y)
    assert not [name for name in vars(clf) if name.endswith("_")]


# -- parallel fits and files --------------------------------------------------------------------


def test_early_stopping_writes_no_files(tiny_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = make_images(24)
    FineTunedClassifier(**dict(tiny_params, early_stopping=True, validation_fraction=0.25)).fit(X, y)
    assert not list(tmp_path.iterdir())


def test_parallel_grid_search_with_early_stopping_matches_serial(tiny_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = make_images(32)
    estimator = FineTunedClassifier(**dict(tiny_params, early_stopping=True, validation_fraction=0.25, max_epochs=4))
    grid = {"lr": [1e-3, 1e-2]}
    serial = GridSearchCV(estimator, grid, cv=2, n_jobs=1).fit(X, y)
    parallel = GridSearchCV(estimator, grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"], atol=1e-6
    )
    assert not list(tmp_path.iterdir())


# -- determinism --------------------------------------------------------------------------------

_SCRIPT = """
import sys
import numpy as np
from conftest import make_images
from skft import FineTunedClassifier

X, y = make_images(30, n_classes=3, channels=3)
clf = FineTunedClassifier(backbone="tiny_cnn", image_size=16, mode="full", head=(8,), dropout=0.2, max_epochs=3,
                          batch_size=8, lr=1e-2, early_stopping=True, validation_fraction=0.2, random_state=7,
                          device="cpu")
sys.stdout.write(clf.fit(X, y).predict_proba(X).astype(np.float64).tobytes().hex())
"""


def test_same_random_state_gives_identical_predictions_in_two_processes():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    runs = [process.communicate() for process in processes]
    assert all(process.returncode == 0 for process in processes), [stderr for _, stderr in runs]
    assert runs[0][0] and runs[0][0] == runs[1][0]
