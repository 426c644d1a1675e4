"""Multi-label targets: a binary indicator y, one sigmoid output per label, per-label thresholds."""

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

import skft
from skft import FineTunedClassifier
from skft._multilabel import tuned_thresholds

from conftest import TINY_SIZE, tiny_classifier


def make_tagged_images(n, n_labels=3, seed=0):
    """Images with a bright quadrant per label they carry (each image 1 to n_labels labels)."""
    rng = np.random.default_rng(seed)
    indicator = (rng.random((n, n_labels)) < 0.5).astype(int)
    indicator[indicator.sum(axis=1) == 0, rng.integers(0, n_labels)] = 1
    images = rng.integers(0, 60, size=(n, TINY_SIZE, TINY_SIZE)).astype(np.uint8)
    half = TINY_SIZE // 2
    for label in range(n_labels):
        rows, cols = divmod(label, 2)
        images[indicator[:, label] == 1, rows * half : (rows + 1) * half, cols * half : (cols + 1) * half] += 180
    return images, indicator


@pytest.fixture(scope="module")
def tagged():
    return make_tagged_images(60)


def classifier(**params):
    return tiny_classifier(**{"max_epochs": 4, **params})


@pytest.mark.parametrize("mode", ["feature_extraction", "repurpose", "full", "lora"])
def test_every_mode_learns_an_indicator_matrix(tagged, mode):
    X, Y = tagged
    learns = mode in ("repurpose", "full")  # pooled features of the frozen tiny CNN lose where a quadrant is
    epochs = 8 if learns else 2
    clf = classifier(mode=mode, trainable_layers=None if mode == "lora" else "auto", max_epochs=epochs).fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and ((proba >= 0) & (proba <= 1)).all()
    assert not np.allclose(proba.sum(axis=1), 1)  # per-label probabilities, not a softmax
    predicted = clf.predict(X)
    assert predicted.shape == Y.shape and set(np.unique(predicted)) <= {0, 1}
    np.testing.assert_array_equal(predicted, (proba >= 0.5).astype(int))
    assert f1_score(Y, predicted, average="samples") > (0.9 if learns else 0.0)


def test_cross_val_score_f1_samples_and_grid_search(tagged):
    X, Y = tagged
    scores = cross_val_score(classifier(mode="feature_extraction"), X, Y, scoring="f1_samples", cv=KFold(2))
    assert scores.shape == (2,) and (scores > 0).all()
    search = GridSearchCV(classifier(mode="feature_extraction"), {"lr": [1e-3, 1e-2]}, scoring="f1_samples", cv=2)
    assert search.fit(X, Y).best_estimator_.predict(X[:5]).shape == (5, 3)


def test_auto_thresholds_are_chosen_on_a_held_out_split(tagged):
    X, Y = tagged
    clf = classifier(mode="feature_extraction", threshold="auto").fit(X, Y)
    assert clf.threshold_.shape == (3,) and not np.allclose(clf.threshold_, 0.5)
    np.testing.assert_array_equal(clf.predict(X), (clf.predict_proba(X) >= clf.threshold_).astype(int))
    assert "valid_loss" in clf.history_[-1]  # held out although early_stopping=False
    fixed = classifier(mode="feature_extraction", threshold=0.3).fit(X, Y)
    np.testing.assert_array_equal(fixed.threshold_, [0.3, 0.3, 0.3])
    assert "valid_loss" not in fixed.history_[-1]


def test_tuned_thresholds_maximise_each_labels_f1():
    probabilities = np.array([[0.9, 0.2], [0.6, 0.1], [0.4, 0.3], [0.1, 0.05]])
    indicator = np.array([[1, 0], [1, 0], [1, 0], [0, 0]])
    np.testing.assert_allclose(tuned_thresholds(probabilities, indicator), [0.25, 0.5])


def test_early_stopping_scores_f1_samples(tagged):
    X, Y = tagged
    clf = classifier(mode="feature_extraction", early_stopping=True, validation_fraction=0.25).fit(X, Y)
    assert 0 <= clf.history_[-1]["valid_f1"] <= 1


def test_save_load_and_warm_cache_give_the_cold_result(tagged, tmp_path):
    X, Y = tagged
    skft.clear_cache()
    cold = classifier(mode="repurpose", threshold="auto", max_epochs=2).fit(X, Y)
    warm = classifier(mode="repurpose", threshold="auto", max_epochs=2).fit(X, Y)
    np.testing.assert_array_equal(warm.predict_proba(X), cold.predict_proba(X))
    cold.save(tmp_path / "tags.skft")
    skft.clear_cache()
    loaded = skft.load(tmp_path / "tags.skft")
    np.testing.assert_array_equal(loaded.threshold_, cold.threshold_)
    np.testing.assert_allclose(loaded.predict_proba(X), cold.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), cold.predict(X))


def test_single_label_fit_after_multi_label_has_no_thresholds(tagged):
    X, Y = tagged
    clf = classifier(mode="feature_extraction").fit(X, Y)
    clf.fit(X, Y[:, 0])
    assert clf.threshold_ is None and clf.predict(X[:4]).shape == (4,)


def test_prompt_tuning_with_multi_label_texts(bert_dir, texts):
    X, y = texts
    Y = np.column_stack([y, 1 - y, np.arange(len(y)) % 3 == 0]).astype(int)
    clf = FineTunedClassifier(
        bert_dir, mode="prompt", prompt_tokens=2, label_prompts={0: "good", 1: "bad", 2: "the"}, max_epochs=2, lr=1e-1
    )
    clf.set_params(batch_size=8, device="cpu", random_state=0).fit(X, Y)
    assert clf.predict_proba(X).shape == (len(X), 3) and clf.predict(X).shape == (len(X), 3)


@pytest.mark.parametrize(
    "params, y_change, match",
    [
        ({}, lambda Y: np.column_stack([Y, np.zeros(len(Y), dtype=int)]), r"label\(s\) \[3\].*never positive"),
        ({"threshold": 0.3}, lambda Y: Y[:, 0], "threshold=0.3 applies to multi-label y"),
        ({"class_weight": "balanced"}, lambda Y: Y, "class_weight='balanced'.*multi-label"),
        ({"threshold": 1.5}, lambda Y: Y, "threshold"),
    ],
)
def test_bad_multi_label_input_is_named(tagged, params, y_change, match):
    X, Y = tagged
    with pytest.raises(ValueError, match=match):
        classifier(mode="feature_extraction", max_epochs=1, **params).fit(X, y_change(Y))


def test_auto_threshold_needs_training(bert_dir, texts):
    X, y = texts
    Y = np.column_stack([y, 1 - y]).astype(int)
    clf = FineTunedClassifier(bert_dir, mode="prompt", threshold="auto", device="cpu")
    with pytest.raises(ValueError, match="prompt_tokens=0 trains nothing"):
        clf.fit(X, Y)
