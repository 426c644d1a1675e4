"""The checks of ``sklearn_checks.py`` can fail: each catches an estimator broken in the way it guards against."""

import numpy as np
import pytest

from skft import FineTunedClassifier

import sklearn_checks
from conftest import TINY, TINY_SIZE, make_images

PARAMS = dict(backbone=TINY, image_size=TINY_SIZE, max_epochs=1, batch_size=12, lr=1e-2, random_state=0, device="cpu")


class DependsOnTheBatch(FineTunedClassifier):
    def predict_proba(self, X):
        proba = super().predict_proba(X)
        return (proba + proba.mean(axis=0)) / 2


class SortsItsOutputs(FineTunedClassifier):
    def predict_proba(self, X):
        proba = super().predict_proba(X)
        return proba[np.argsort(proba[:, 0], kind="stable")]


class CountsPredictions(FineTunedClassifier):
    def predict(self, X):
        self.n_predictions_ = getattr(self, "n_predictions_", 0) + 1
        return super().predict(X)


class DropsWeights(FineTunedClassifier):
    def fit(self, X, y, sample_weight=None):
        return super().fit(X, y)


class RecordsWidth(FineTunedClassifier):
    def fit(self, X, y, sample_weight=None):
        self.n_features_in_ = np.shape(X)[1]
        return super().fit(X, y, sample_weight=sample_weight)


class TypeErrorOnTables(FineTunedClassifier):
    def fit(self, X, y, sample_weight=None):
        if np.ndim(X) == 2:
            raise TypeError("X is a table")
        return super().fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize(
    "broken, check",
    [
        (DependsOnTheBatch(**PARAMS), sklearn_checks.check_methods_subset_invariance),
        (SortsItsOutputs(**PARAMS), sklearn_checks.check_methods_sample_order_invariance),
        (FineTunedClassifier(**{**PARAMS, "random_state": None}), sklearn_checks.check_fit_idempotent),
        (CountsPredictions(**PARAMS), sklearn_checks.check_predict_changes_nothing),
        (DropsWeights(**PARAMS), sklearn_checks.check_sample_weight_equivalence),
        (RecordsWidth(**PARAMS), sklearn_checks.check_no_n_features_in),
        (TypeErrorOnTables(**PARAMS), sklearn_checks.check_bad_input_is_a_value_error),
    ],
    ids=lambda value: getattr(value, "__name__", type(value).__name__),
)
def test_a_check_fails_on_the_estimator_it_guards_against(broken, check):
    X, y = make_images(12)
    with pytest.raises((AssertionError, TypeError)):
        check(broken, X, y)
