"""scikit-learn's API checks, called explicitly, and their equivalents on images."""

import pickle

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from sklearn.utils.validation import check_is_fitted

from skft import BackboneFeatures, FineTunedClassifier, FineTunedRegressor

from conftest import make_images

ESTIMATORS = [FineTunedClassifier, FineTunedRegressor, BackboneFeatures]
CHECKS = [
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
    check_estimator_cloneable,
    check_do_not_raise_errors_in_init_or_set_params,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_sklearn_api_checks(Estimator, check):
    check(Estimator.__name__, Estimator())


def _fit(Estimator, tiny_params, X, y):
    if Estimator is BackboneFeatures:
        return Estimator(backbone=tiny_params["backbone"], image_size=tiny_params["image_size"], device="cpu").fit(X)
    return Estimator(**tiny_params).fit(X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_not_fitted_before_fit_and_fitted_after(Estimator, tiny_params):
    X, y = make_images(16)
    unfitted = Estimator()
    with pytest.raises(Exception, match="not fitted"):
        check_is_fitted(unfitted)
    check_is_fitted(_fit(Estimator, tiny_params, X, y))


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_fit_adds_only_attributes_ending_in_underscore(Estimator, tiny_params):
    X, y = make_images(16)
    before = dict(Estimator(**{k: v for k, v in tiny_params.items() if k in Estimator().get_params()}).__dict__)
    fitted = _fit(Estimator, tiny_params, X, y)
    added = set(fitted.__dict__) - set(before)
    assert added and all(name.endswith("_") and not name.startswith("__") for name in added), added


@pytest.mark.parametrize("Estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_fit_never_changes_or_mutates_constructor_parameters(Estimator, tiny_params):
    X, y = make_images(16)
    params = {k: v for k, v in tiny_params.items() if k in Estimator().get_params()}
    if Estimator is not BackboneFeatures:
        params.update(head=[4], callbacks=[])
    estimator = Estimator(**params)
    originals = {name: pickle.dumps(value) for name, value in estimator.get_params().items()}
    identities = {name: id(value) for name, value in estimator.get_params().items()}
    estimator.fit(X, y)
    for name, value in estimator.get_params().items():
        assert id(value) == identities[name], name
        assert pickle.dumps(value) == originals[name], name


def test_grid_search_over_lr_and_batch_size(tiny_params):
    X, y = make_images(36)
    labels = np.array(["a", "b"])[y]
    search = GridSearchCV(
        FineTunedClassifier(mode="repurpose", **tiny_params), {"lr": [1e-3, 1e-2], "batch_size": [4, 8]}, cv=3
    )
    search.fit(X, labels)
    assert set(search.best_params_) == {"lr", "batch_size"}
    assert set(search.predict(X)) <= {"a", "b"}
    assert len(search.cv_results_["mean_test_score"]) == 4


def test_grid_search_in_parallel_matches_serial(tiny_params):
    X, y = make_images(24)
    grid = {"lr": [1e-3, 1e-2]}
    serial = GridSearchCV(FineTunedClassifier(**tiny_params), grid, cv=2, n_jobs=1).fit(X, y)
    parallel = GridSearchCV(FineTunedClassifier(**tiny_params), grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"], atol=1e-6
    )


def test_cross_val_score_and_pipeline(tiny_params):
    X, y = make_images(30, channels=3)
    scores = cross_val_score(FineTunedClassifier(mode="feature_extraction", **tiny_params), X, y, cv=3)
    assert scores.shape == (3,)
    pipe = Pipeline([("invert", FunctionTransformer(lambda images: 255 - images)),
                     ("clf", FineTunedClassifier(**tiny_params))])
    assert pipe.fit(X, y).predict(X).shape == (30,)


@pytest.mark.parametrize("Estimator", [FineTunedClassifier, FineTunedRegressor], ids=lambda e: e.__name__)
def test_pickle_and_joblib_round_trips_predict_identically(Estimator, tiny_params, tmp_path):
    X, y = make_images(20)
    fitted = Estimator(**tiny_params).fit(X, y)
    expected = fitted.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict(X), expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(X), expected)


def test_clone_of_a_fitted_estimator_is_unfitted_with_equal_params(tiny_params):
    X, y = make_images(16)
    fitted = FineTunedClassifier(**tiny_params).fit(X, y)
    cloned = clone(fitted)
    assert cloned.get_params() == fitted.get_params()
    assert not hasattr(cloned, "net_")


def test_clone_keeps_metadata_requests_so_routed_sample_weight_reaches_fit(tiny_params):
    X, y = make_images(24)
    weights = np.linspace(0.5, 1.5, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(FineTunedClassifier(**dict(tiny_params, max_epochs=1)).set_fit_request(sample_weight=True))
        results = cross_validate(pipe, X, y, cv=2, params={"sample_weight": weights})
    assert results["test_score"].shape == (2,)


def test_clone_keeps_the_output_container_of_set_output(tiny_params):
    pd = pytest.importorskip("pandas")
    X, _ = make_images(4)
    features = BackboneFeatures(backbone=tiny_params["backbone"], image_size=tiny_params["image_size"], device="cpu")
    cloned = clone(features.set_output(transform="pandas"))
    out = cloned.fit(X).transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(cloned.get_feature_names_out())
