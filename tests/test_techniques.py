import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skft import FineTunedClassifier
from skft.callbacks import GradualUnfreezing

from conftest import make_images


class RecordTrainable(Callback):
    """Record, at the end of each epoch, which blocks train and a copy of block 4's weight."""

    def initialize(self):
        self.trainable, self.weights = [], []
        return self

    def on_epoch_end(self, net, **kwargs):
        network = net.module_
        self.trainable.append(network.n_trainable)
        self.weights.append(network.backbone[-1][0][0].weight.detach().clone())


def _recorder(clf):
    return dict(clf.net_.callbacks_)["RecordTrainable"]


def test_layer_wise_lr_decay_and_head_scale(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(mode="full", lr_decay=0.5, head_lr_scale=10, **tiny_params).fit(X, y)
    groups = clf.net_.optimizer_.param_groups
    assert groups[0]["lr"] == pytest.approx(1e-1)
    assert [group["lr"] for group in groups[1:]] == pytest.approx([5e-3, 2.5e-3, 1.25e-3])


def test_defaults_train_every_group_at_lr(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(mode="full", **tiny_params).fit(X, y)
    assert {group["lr"] for group in clf.net_.optimizer_.param_groups} == {tiny_params["lr"]}
    assert {group["weight_decay"] for group in clf.net_.optimizer_.param_groups} == {1e-4}


def test_warmup_trains_only_the_head_first(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(
        mode="full", warmup_epochs=2, callbacks=[RecordTrainable()], **{**tiny_params, "max_epochs": 4}
    ).fit(X, y)
    record = _recorder(clf)
    assert record.trainable == [0, 0, 3, 3]
    assert torch.equal(record.weights[0], record.weights[1])
    assert not torch.equal(record.weights[1], record.weights[3])
    assert clf.drift_["block_4"] > 0


def test_gradual_unfreezing_on_its_own(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(
        mode="full", callbacks=[GradualUnfreezing(every=2), RecordTrainable()], **{**tiny_params, "max_epochs": 6}
    ).fit(X, y)
    assert _recorder(clf).trainable == [1, 1, 2, 2, 3, 3]
    schedule = GradualUnfreezing(every=1, start_epoch=2, blocks_per_step=2)
    assert [schedule.trainable_at(epoch, 3) for epoch in range(5)] == [0, 0, 2, 3, 3]


def test_gradual_unfreezing_rejects_bad_arguments(tiny_params):
    X, y = make_images(8)
    with pytest.raises(ValueError, match="every must be a positive int"):
        FineTunedClassifier(callbacks=[GradualUnfreezing(every=0)], **tiny_params).fit(X, y)


def test_l2sp_keeps_weights_near_pretrained_and_drops_their_weight_decay(tiny_params):
    X, y = make_images(24)
    params = {**tiny_params, "max_epochs": 6, "lr": 3e-2}
    free = FineTunedClassifier(mode="full", **params).fit(X, y)
    anchored = FineTunedClassifier(mode="full", l2sp_alpha=100.0, **params).fit(X, y)
    assert anchored.drift_["block_0"] < free.drift_["block_0"]
    decays = [group["weight_decay"] for group in anchored.net_.optimizer_.param_groups]
    assert decays[0] == 1e-4 and set(decays[1:]) == {0.0}
    penalty = anchored.net_.criterion_.penalty
    assert penalty() > 0


@pytest.mark.parametrize("schedule, last_factor", [("cosine", 0.0), ("onecycle", 1e-4 / 25)])
def test_lr_schedules_warm_up_then_decay(tiny_params, schedule, last_factor):
    X, y = make_images(32)
    clf = FineTunedClassifier(lr_schedule=schedule, **{**tiny_params, "max_epochs": 4}).fit(X, y)
    scheduler = dict(clf.net_.callbacks_)["lr_schedule"]
    multiplier = scheduler.lr_scheduler_.lr_lambdas[0]
    assert multiplier.total_steps == 16
    assert multiplier(0) < multiplier(multiplier.warmup_steps) == pytest.approx(1.0)
    assert multiplier(16) == pytest.approx(last_factor)
    lr_now = clf.net_.optimizer_.param_groups[0]["lr"]
    assert lr_now < tiny_params["lr"] * 0.1


def test_label_smoothing_softens_probabilities(tiny_params):
    X, y = make_images(24)
    params = {**tiny_params, "max_epochs": 10}
    sharp = FineTunedClassifier(mode="full", **params).fit(X, y).predict_proba(X).max(axis=1).mean()
    smooth = FineTunedClassifier(mode="full", label_smoothing=0.4, **params).fit(X, y).predict_proba(X)
    assert smooth.max(axis=1).mean() < sharp


def test_class_weight_balanced_and_dict(tiny_params):
    X, y = make_images(30)
    clf = FineTunedClassifier(class_weight="balanced", **tiny_params)
    skewed = np.where(np.arange(30) < 25, 0, 1)
    np.testing.assert_allclose(
        clf._target_weights(np.c_[skewed].astype(np.float32)), np.where(skewed == 0, 30 / 50, 30 / 10), rtol=1e-6
    )
    heavy = FineTunedClassifier(mode="full", class_weight={1: 100.0}, **tiny_params).fit(X, np.where(y == 1, 1, 0))
    assert heavy.predict_proba(X)[:, 1].mean() > 0.5
    with pytest.raises(ValueError, match="class_weight names labels \\[7\\]"):
        FineTunedClassifier(class_weight={7: 2.0}, **tiny_params).fit(X, y)


def test_bn_trainable_updates_running_statistics(tiny_params):
    X, y = make_images(24)
    moving = FineTunedClassifier(mode="full", bn_trainable=True, **tiny_params).fit(X, y)
    fixed = FineTunedClassifier(mode="full", **tiny_params).fit(X, y)
    key = "block_2.0.1.running_mean"
    assert not torch.equal(
        moving.net_.module_.backbone.state_dict()[key], fixed.net_.module_.backbone.state_dict()[key]
    )


def test_drift_is_zero_for_frozen_blocks(tiny_params):
    X, y = make_images(16)
    clf = FineTunedClassifier(mode="repurpose", trainable_layers=1, **tiny_params).fit(X, y)
    assert list(clf.drift_) == ["block_0", "block_2", "block_4"]
    assert clf.drift_["block_0"] == clf.drift_["block_2"] == 0.0 and clf.drift_["block_4"] > 0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"lr_decay": 0}, "lr_decay"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"class_weight": "auto"}, "class_weight"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
    ],
)
def test_bad_technique_parameters(tiny_params, params, match):
    X, y = make_images(8)
    with pytest.raises(ValueError, match=match):
        FineTunedClassifier(**{**tiny_params, **params}).fit(X, y)
