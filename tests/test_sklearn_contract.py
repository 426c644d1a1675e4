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
    parametrize_with_checks,
)
from sklearn.utils.validation import check_is_fitted

from skft import BackboneFeatures, FineTunedClassifier, FineTunedRegressor

from conftest import TINY, TINY_SIZE, make_images

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
    pipe = Pipeline(
        [("invert", FunctionTransformer(lambda images: 255 - images)), ("clf", FineTunedClassifier(**tiny_params))]
    )
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


# -- scikit-learn's own checks, all of them ------------------------------------------------------

CHECKED = [
    FineTunedClassifier(backbone=TINY, image_size=TINY_SIZE, max_epochs=1, batch_size=8, device="cpu"),
    FineTunedRegressor(backbone=TINY, image_size=TINY_SIZE, max_epochs=1, batch_size=8, device="cpu"),
    BackboneFeatures(backbone=TINY, image_size=TINY_SIZE, device="cpu"),
]

# The estimators read images, never a table. They keep scikit-learn's default tag two_d_array=True so that
# scikit-learn runs its checks on them at all (with two_d_array=False nearly every check is skipped); each check
# below fails *only* because it feeds an (n, f) table, which skft refuses with "X has shape (n, f): a table, not
# images" (or, for an object table, "pass a 1-D sequence of paths or images"). The same properties on images are
# tested elsewhere in this file and in test_inputs.py. A listed check must still fail, and fail on the refused
# table (TABLE_REFUSALS): a check that starts passing, or fails for another reason, fails this test.
TABLE = "fits on an (n, f) table; X must be images, a table is refused"
TABLE_MESSAGE = "expects sklearn's wording for a table-shaped problem; skft refuses the table as not images first"
IMAGE_ONLY = {
    # Fit / predict / transform on a table: the API property itself is tested on images in this file.
    **dict.fromkeys(
        [
            "check_dict_unchanged",
            "check_dont_overwrite_parameters",
            "check_estimators_dtypes",
            "check_estimators_fit_returns_self",
            "check_estimators_overwrite_params",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_fit_idempotent",
            "check_fit_score_takes_y",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_pipeline_consistency",
            "check_readonly_memmap_input",
            "check_fit_check_is_fitted",
            "check_dtype_object",
        ],
        TABLE,
    ),
    # Error wording on bad tables (NaN, complex, empty features, negative values, one sample, one feature, 1-D
    # predict input): skft refuses each with its own message (NaN, complex, empty, 1-D and out-of-range images
    # are refused with clear errors, tested in test_inputs.py), but the table is refused before the property.
    **dict.fromkeys(
        [
            "check_estimators_nan_inf",
            "check_complex_data",
            "check_estimators_empty_data_messages",
            "check_positive_only_tag_during_fit",
            "check_fit2d_1sample",
            "check_fit2d_1feature",
            "check_fit2d_predict1d",
        ],
        TABLE_MESSAGE,
    ),
    # n_features_in_ is not defined: images of any size are accepted and resized to image_size_, so there is no
    # fixed number of input features to record or to compare at predict time. Both checks fit on a table anyway.
    "check_n_features_in": TABLE + "; and images have no fixed number of features, so no n_features_in_",
    "check_n_features_in_after_fitting": TABLE + "; and images have no fixed number of features, so no n_features_in_",
}
SUPERVISED = {
    **dict.fromkeys(
        [
            "check_sample_weights_list",
            "check_sample_weights_not_overwritten",
            "check_sample_weights_shape",
            "check_sample_weight_equivalence_on_dense_data",
            "check_supervised_y_2d",
        ],
        TABLE,
    ),
    # Lists of lists or a DataFrame as X: a nested list of numbers or a DataFrame of columns is a table here too.
    "check_sample_weights_not_an_array": TABLE + " (given as nested lists)",
    "check_sample_weights_pandas_series": TABLE + " (given as a DataFrame: skft asks for its image column)",
    "check_all_zero_sample_weights_error": TABLE_MESSAGE,
    "check_requires_y_none": TABLE_MESSAGE,
}
EXPECTED_FAILURES = {
    "FineTunedClassifier": {
        **IMAGE_ONLY,
        **SUPERVISED,
        **dict.fromkeys(
            [
                "check_class_weight_classifiers",
                "check_classifiers_classes",
                "check_classifiers_train",
            ],
            TABLE,
        ),
        "check_classifier_data_not_an_array": TABLE + " (given as nested lists)",
        # Multi-label y (the multi_label tag): the equivalents on images are in test_multilabel.py.
        **dict.fromkeys(
            [
                "check_classifiers_multilabel_representation_invariance",
                "check_classifiers_multilabel_output_format_predict",
                "check_classifiers_multilabel_output_format_predict_proba",
                "check_classifiers_multilabel_output_format_decision_function",
            ],
            TABLE,
        ),
        "check_classifiers_one_label": TABLE_MESSAGE,
        "check_classifiers_one_label_sample_weights": TABLE_MESSAGE,
        "check_classifiers_regression_target": TABLE_MESSAGE,
    },
    "FineTunedRegressor": {
        **IMAGE_ONLY,
        **SUPERVISED,
        **dict.fromkeys(
            ["check_regressors_train", "check_regressors_int", "check_regressors_no_decision_function"], TABLE
        ),
        "check_regressor_data_not_an_array": TABLE + " (given as nested lists)",
    },
    "BackboneFeatures": {
        **IMAGE_ONLY,
        **dict.fromkeys(["check_transformer_general", "check_transformer_preserve_dtypes"], TABLE),
        "check_transformer_data_not_an_array": TABLE + " (given as nested lists)",
    },
}

# What skft says when it refuses a table: an expected failure must end in one of these, not in anything else.
TABLE_REFUSALS = (
    "a table, not images",
    "pass a 1-D sequence of paths or images",
    "pass the one column that holds the images",
    "X must be an array of images",
)


def _messages(error):
    """The messages of ``error`` and of the exceptions it was raised from."""
    while error is not None:
        yield str(error)
        error = error.__cause__ or error.__context__


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    reason = EXPECTED_FAILURES[type(estimator).__name__].get(getattr(check, "func", check).__name__)
    if reason is None:
        check(estimator)
        return
    with pytest.raises(Exception) as failure:
        check(estimator)
    messages = list(_messages(failure.value))
    assert any(refusal in message for message in messages for refusal in TABLE_REFUSALS), messages
    pytest.xfail(reason)
