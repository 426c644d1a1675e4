"""The scikit-learn contract: its API checks that need no data, its invariants on images and on texts
(``sklearn_checks.py``), and the estimators inside its tools (search, cross-validation, pipelines, routing)."""

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
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
)

from skft import BackboneFeatures, FineTunedClassifier, FineTunedRegressor

from conftest import TINY, TINY_SIZE, make_images
from sklearn_checks import checks_for
from text_fixtures import make_texts

ESTIMATORS = [FineTunedClassifier, FineTunedRegressor, BackboneFeatures]
# scikit-learn's checks that need no data (the rest feed tables: see sklearn_checks.py).
CHECKS = [
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_mixin_order,
    check_valid_tag_types,
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


# -- scikit-learn's invariants on images and on texts ----------------------------------------------

# One training step per fit (12 samples, one batch): the checks compare fits, they need not learn much.
ESTIMATOR_PARAMS = {
    FineTunedClassifier: dict(max_epochs=1, batch_size=12, lr=1e-2, random_state=0, device="cpu"),
    FineTunedRegressor: dict(max_epochs=1, batch_size=12, lr=1e-2, random_state=0, device="cpu"),
    BackboneFeatures: dict(batch_size=5, device="cpu"),
}
CASES = [
    pytest.param(Estimator, modality, check, id=f"{Estimator.__name__}-{modality}-{check.__name__}")
    for Estimator in ESTIMATOR_PARAMS
    for modality in ("image", "text")
    for check in checks_for(Estimator())
]


@pytest.fixture(scope="module")
def contract_data(bert_dir):
    """Per modality: the backbone's parameters and 12 samples of two classes."""
    images, labels = make_images(12)
    texts, text_labels = make_texts(12)
    return {
        "image": ({"backbone": TINY, "image_size": TINY_SIZE}, images, labels),
        "text": ({"backbone": str(bert_dir)}, texts, text_labels),
    }


@pytest.mark.parametrize("Estimator, modality, check", CASES)
def test_sklearn_invariants(Estimator, modality, check, contract_data):
    backbone, X, labels = contract_data[modality]
    y = labels + np.linspace(0.0, 0.5, len(labels)) if Estimator is FineTunedRegressor else labels
    check(Estimator(**backbone, **ESTIMATOR_PARAMS[Estimator]), X, y)


@pytest.mark.parametrize("Estimator", ESTIMATOR_PARAMS, ids=lambda e: e.__name__)
def test_tags_say_images_or_texts_never_a_table(Estimator, bert_dir):
    image_tags = Estimator(TINY).__sklearn_tags__().input_tags
    text_tags = Estimator(str(bert_dir)).__sklearn_tags__().input_tags
    assert not image_tags.two_d_array and image_tags.three_d_array and image_tags.positive_only
    assert not text_tags.two_d_array and text_tags.string and not text_tags.three_d_array
    if Estimator is BackboneFeatures:  # float32 features, whatever the input's dtype
        assert Estimator(TINY).__sklearn_tags__().transformer_tags.preserves_dtype == []
