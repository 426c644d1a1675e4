import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

from skft import FineTunedClassifier, FineTunedRegressor

from conftest import make_images


def test_classifier_learns_string_labels_and_returns_them(tiny_params):
    X, y = make_images(60, n_classes=3, channels=3)
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = FineTunedClassifier(mode="full", **{**tiny_params, "max_epochs": 8}).fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    predicted = clf.predict(X)
    assert predicted.dtype == labels.dtype and set(predicted) <= set(labels)
    assert clf.score(X, labels) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(clf.classes_[proba.argmax(axis=1)], predicted)


def test_binary_classifier_with_integer_and_boolean_labels(tiny_params):
    X, y = make_images(30)
    for labels in (y + 10, y.astype(bool)):
        clf = FineTunedClassifier(**tiny_params).fit(X, labels)
        assert set(clf.predict(X)) <= set(labels)
        assert clf.predict_proba(X).shape == (30, 2)


def test_classifier_refuses_a_single_class(tiny_params):
    X, _ = make_images(10)
    with pytest.raises(ValueError, match="single class"):
        FineTunedClassifier(**tiny_params).fit(X, np.zeros(10))


def test_predict_before_fit_is_not_fitted_error(tiny_params):
    X, _ = make_images(4)
    for est in (FineTunedClassifier(**tiny_params), FineTunedRegressor(**tiny_params)):
        with pytest.raises(NotFittedError):
            est.predict(X)


def test_sample_weight_changes_what_is_learned(tiny_params):
    X, y = make_images(40)
    weights = np.where(y == 1, 1.0, 0.0)
    clf = FineTunedClassifier(mode="full", **tiny_params).fit(X, y, sample_weight=weights)
    assert (clf.predict(X) == 1).all()
    with pytest.raises(ValueError):
        FineTunedClassifier(**tiny_params).fit(X, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("two_d", [False, True])
def test_regressor_fits_one_and_two_targets(tiny_params, two_d):
    X, labels = make_images(48, n_classes=2)
    y = 100.0 + 50.0 * labels
    target = np.column_stack([y, -y]) if two_d else y
    reg = FineTunedRegressor(mode="full", **{**tiny_params, "max_epochs": 10}).fit(X, target)
    predicted = reg.predict(X)
    assert predicted.shape == target.shape
    assert reg.score(X, target) > 0.8
    np.testing.assert_allclose(reg.target_mean_, np.atleast_1d(target.mean(axis=0)))


def test_regressor_sample_weight(tiny_params):
    X, labels = make_images(40)
    y = labels.astype(float)
    reg = FineTunedRegressor(mode="full", **tiny_params).fit(X, y, sample_weight=np.where(labels == 1, 1.0, 1e-6))
    assert reg.predict(X).mean() > 0.6


def test_x_and_y_of_different_lengths(tiny_params):
    X, y = make_images(10)
    with pytest.raises(ValueError, match="different lengths"):
        FineTunedClassifier(**tiny_params).fit(X, y[:7])


def test_same_seed_same_predictions_and_different_seed_differs(tiny_params):
    X, y = make_images(30)
    first = FineTunedClassifier(mode="full", **tiny_params).fit(X, y).predict_proba(X)
    second = FineTunedClassifier(mode="full", **tiny_params).fit(X, y).predict_proba(X)
    other = FineTunedClassifier(mode="full", **{**tiny_params, "random_state": 1}).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_fit_does_not_change_global_torch_random_state(tiny_params):
    X, y = make_images(20)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    FineTunedClassifier(**tiny_params).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)


def test_fitting_twice_gives_the_same_model_as_fitting_once(tiny_params):
    X, y = make_images(30)
    clf = FineTunedClassifier(mode="full", **tiny_params)
    once = clf.fit(X, y).predict_proba(X)
    twice = clf.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(once, twice)


def test_early_stopping_holds_out_a_stratified_split_and_stops(tiny_params):
    X, _ = make_images(40)
    noise = np.random.default_rng(0).integers(0, 2, size=40)
    clf = FineTunedClassifier(
        mode="full",
        **{**tiny_params, "max_epochs": 40},
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=2,
    ).fit(X, noise)
    history = clf.history_
    assert len(history) < 40
    best = int(np.argmin(history[:, "valid_loss"]))
    assert len(history) - 1 - best == 2
    assert sum(batch["train_batch_size"] for batch in history[0, "batches"] if "train_batch_size" in batch) == 30
    assert sum(batch["valid_batch_size"] for batch in history[0, "batches"] if "valid_batch_size" in batch) == 10
    stopper = dict(clf.net_.callbacks_)["early_stopping"]
    assert stopper.load_best and stopper.patience == 2


def test_no_validation_split_without_early_stopping(tiny_params):
    X, y = make_images(20)
    history = FineTunedClassifier(**tiny_params).fit(X, y).history_
    assert "valid_loss" not in history[-1]
    assert len(history) == tiny_params["max_epochs"]


def test_a_last_batch_of_one_image_does_not_crash_batchnorm(tiny_params):
    X, y = make_images(17)
    clf = FineTunedClassifier(mode="full", **{**tiny_params, "image_size": 4, "batch_size": 8}).fit(X, y)
    assert clf.predict(X[:1]).shape == (1,)


def test_user_callbacks_run_and_are_not_mutated(tiny_params):
    class CountEpochs(Callback):
        def __init__(self):
            self.epochs = 0

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    counter = CountEpochs()
    X, y = make_images(16)
    clf = FineTunedClassifier(callbacks=[counter], **tiny_params).fit(X, y)
    assert counter.epochs == 0
    fitted = [cb for cb in clf.net_.callbacks_ if isinstance(cb[1], CountEpochs)]
    assert fitted and fitted[0][1].epochs == tiny_params["max_epochs"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", torch.optim.RMSprop])
def test_optimizer_choices(tiny_params, optimizer):
    X, y = make_images(16)
    clf = FineTunedClassifier(optimizer=optimizer, **tiny_params).fit(X, y)
    expected = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}.get(optimizer, optimizer)
    assert type(clf.net_.optimizer_) is expected
    if optimizer == "sgd":
        assert clf.net_.optimizer_.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize(
    "params, match",
    [
        ({"mode": "fulll"}, "'mode' parameter.*'fulll'"),
        ({"optimizer": "adamm"}, "'optimizer' parameter"),
        ({"lr": 0}, "'lr' parameter"),
        ({"lr": -1e-3}, "'lr' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"trainable_layers": 4}, "trainable_layers=4.*3 blocks.*0 to 3"),
        ({"feature_layer": 3}, "feature_layer=3.*3 blocks.*-3 to 2"),
        ({"feature_layer": -4}, "feature_layer=-4"),
        ({"head": (8, 0)}, "head must be a tuple of positive integers"),
        ({"backbone": "tiny_cn"}, "Did you mean.*tiny_cnn"),
        ({"image_size": 2}, "image_size=2 is too small.*at least 4"),
        ({"device": "tpu"}, "device must be"),
        ({"validation_fraction": 1.5}, "'validation_fraction' parameter"),
    ],
)
def test_bad_parameters_are_named_in_the_error(tiny_params, params, match):
    X, y = make_images(8)
    with pytest.raises(ValueError, match=match):
        FineTunedClassifier(**{**tiny_params, **params}).fit(X, y)


def test_feature_layer_drops_later_blocks(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(feature_layer=1, trainable_layers=1, **tiny_params).fit(X, y)
    assert clf.block_names_ == ["block_0", "block_2"]
    assert clf.n_frozen_blocks_ == 1
    assert clf.net_.module_.head[0].in_features == 16


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw", "float"])
def test_image_layouts(tiny_params, layout):
    X, y = make_images(16, channels=None if layout == "nhw" else 3)
    if layout == "nchw":
        X = np.moveaxis(X, -1, 1)
    if layout == "float":
        X = X / 255.0
    clf = FineTunedClassifier(**tiny_params).fit(X, y)
    assert clf.predict(X).shape == (16,)


def test_float_images_above_one_are_refused_with_the_fix(tiny_params):
    X, y = make_images(8)
    with pytest.raises(ValueError, match="divide by 255"):
        FineTunedClassifier(**tiny_params).fit(X.astype(np.float32), y)
