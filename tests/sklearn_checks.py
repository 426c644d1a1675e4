"""scikit-learn's estimator invariants, checked on the data skft's estimators take: images or texts.

scikit-learn's own suite (``parametrize_with_checks``) feeds 2-D tables; skft's estimators refuse a
table and say so in their tags (``two_d_array=False``), which makes scikit-learn skip them. Each
check here is one of scikit-learn's (named in its docstring), on images or texts instead. A check
takes an unfitted estimator (it is cloned, never changed) and data ``X, y`` of its modality (``y``
is ignored by a transformer), and fails with an ``AssertionError``. ``docs/sklearn-contract.md``
lists scikit-learn's checks that do not apply, and why.

Outputs are compared to ``ATOL``: a network's float32 arithmetic may round differently in batches
of another size or layout (scikit-learn's own tolerance for such checks is ``rtol=1e-7`` on float64).
"""

import copy
import hashlib
import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError

import skft

#: Tolerance of outputs that should be equal (probabilities, features, predicted values).
ATOL = 1e-6
#: The prediction methods compared, where the estimator has them.
METHODS = ("predict", "predict_proba", "transform")


def _fit(estimator, X, y, **fit_params):
    """A fitted clone of ``estimator`` (``y`` is passed to supervised estimators only)."""
    fitted = clone(estimator)
    return fitted.fit(X, y, **fit_params) if _is_supervised(estimator) else fitted.fit(X)


#: Fitted estimators by what they were fitted as (class, parameters, data): checks that only need "a fitted
#: estimator" share one fit (each gets its own deep copy); checks about fitting itself always fit.
_FITTED = {}


def _fitted(estimator, X, y):
    """A deep copy of ``estimator`` fitted on ``X, y``; fitted once per class, parameters and data."""
    key = hashlib.sha256(pickle.dumps((type(estimator), estimator.get_params(), X, y))).hexdigest()
    if key not in _FITTED:
        _FITTED[key] = _fit(estimator, X, y)
    return copy.deepcopy(_FITTED[key])


def _is_supervised(estimator):
    return is_classifier(estimator) or is_regressor(estimator)


def _outputs(fitted, X):
    """The output of every prediction method ``fitted`` has, on ``X``."""
    return {method: getattr(fitted, method)(X) for method in METHODS if hasattr(fitted, method)}


def _assert_same_outputs(actual, expected, what):
    assert actual.keys() == expected.keys(), what
    for method, values in expected.items():
        if values.dtype.kind in "fc":
            np.testing.assert_allclose(actual[method], values, rtol=0, atol=ATOL, err_msg=f"{method}: {what}")
        else:
            np.testing.assert_array_equal(actual[method], values, err_msg=f"{method}: {what}")


def _take(X, indices):
    """Samples ``indices`` of images (an array) or texts (a list)."""
    return X[indices] if isinstance(X, np.ndarray) else [X[index] for index in indices]


def check_not_fitted_before_fit(estimator, X, y):
    """Every prediction method raises ``NotFittedError`` before ``fit`` (``check_estimators_unfitted``)."""
    unfitted = clone(estimator)
    for method in METHODS:
        if hasattr(unfitted, method):
            with pytest.raises(NotFittedError):
                getattr(unfitted, method)(X)


def check_methods_subset_invariance(estimator, X, y):
    """Outputs on part of ``X`` are the rows of the outputs on all of it (``check_methods_subset_invariance``)."""
    fitted = _fitted(estimator, X, y)
    whole = _outputs(fitted, X)
    for part in (slice(0, 1), slice(1, len(y) // 2), slice(len(y) // 2, None)):
        indices = np.arange(len(y))[part]
        expected = {method: values[indices] for method, values in whole.items()}
        _assert_same_outputs(_outputs(fitted, _take(X, indices)), expected, f"samples {part}")


def check_methods_sample_order_invariance(estimator, X, y):
    """Shuffled ``X`` gives the outputs shuffled alike (``check_methods_sample_order_invariance``)."""
    fitted = _fitted(estimator, X, y)
    order = np.random.default_rng(0).permutation(len(y))
    expected = {method: values[order] for method, values in _outputs(fitted, X).items()}
    _assert_same_outputs(_outputs(fitted, _take(X, order)), expected, "shuffled samples")


def check_fit_idempotent(estimator, X, y):
    """Fitting again, on a warm cache, gives what the first fit, on a cold one, gave (``check_fit_idempotent``)."""
    skft.clear_cache()
    fitted = _fit(estimator, X, y)
    first = _outputs(fitted, X)
    refitted = fitted.fit(X, y) if _is_supervised(estimator) else fitted.fit(X)
    _assert_same_outputs(_outputs(refitted, X), first, "after fitting again")


def check_predict_changes_nothing(estimator, X, y):
    """Prediction methods replace no attribute and change no tensor, mode or record of the fit
    (``check_dict_unchanged``, which compares the attributes themselves).

    The data loaders' own random generators are left out: a ``DataLoader`` draws a seed from its
    generator whenever it is iterated, for worker processes, and no output depends on it.
    """
    fitted = _fitted(estimator, X, y)
    before = _state(fitted)
    identities = {name: id(value) for name, value in vars(fitted).items()}
    _outputs(fitted, X)
    assert {name: id(value) for name, value in vars(fitted).items()} == identities
    after = _state(fitted)
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert after[name] == value, f"a prediction method changed {name}"


def _state(fitted):
    """What a prediction must not change: every attribute (pickled), and of a network its tensors and modes."""
    state = {}
    for name, value in vars(fitted).items():
        net = getattr(value, "module_", None)
        if net is None:
            state[name] = pickle.dumps(value)
            continue
        for part in ("module_", "criterion_"):
            module = getattr(value, part)
            state[f"{name}.{part} tensors"] = pickle.dumps(module.state_dict())
            state[f"{name}.{part} modes"] = [sub.training for sub in module.modules()]
        state[f"{name}.history"] = pickle.dumps(value.history)
    return state


def check_fit_returns_self_and_keeps_parameters(estimator, X, y):
    """``fit`` returns the estimator and neither replaces nor mutates a constructor parameter; it only adds
    attributes ending in ``_`` or private ones starting with ``_`` (``check_estimators_fit_returns_self``,
    ``check_dont_overwrite_parameters``, ``check_estimators_overwrite_params``)."""
    unfitted = clone(estimator)
    identities = {name: id(value) for name, value in unfitted.get_params().items()}
    pickled = {name: pickle.dumps(value) for name, value in unfitted.get_params().items()}
    fitted = unfitted.fit(X, y) if _is_supervised(estimator) else unfitted.fit(X)
    assert fitted is unfitted
    for name, value in fitted.get_params().items():
        assert id(value) == identities[name], f"fit replaced {name}"
        assert pickle.dumps(value) == pickled[name], f"fit changed {name}"
    added = set(vars(fitted)) - set(vars(clone(estimator)))
    public = {name for name in added if not name.startswith("_")}
    assert public and all(name.endswith("_") for name in public), added


def _read_only(values):
    array = np.array(values, dtype=None if isinstance(values, np.ndarray) else object)
    array.setflags(write=False)
    return array


def _strided(values):
    """The same samples as a view that skips every other row of a larger array (not contiguous)."""
    array = np.asarray(values) if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    view = np.repeat(array, 2, axis=0)[::2]
    assert not view.flags.c_contiguous and np.array_equal(view, array)
    return view


def check_read_only_and_non_contiguous_input(estimator, X, y):
    """Read-only ``X`` and ``y`` (as memory-mapped data is), and strided views, fit and predict as plain
    arrays do (``check_readonly_memmap_input``, ``check_f_contiguous_array_estimator``)."""
    fitted = _fitted(estimator, X, y)
    expected = _outputs(fitted, X)
    for name, convert in (("read-only", _read_only), ("non-contiguous", _strided)):
        other = _fit(estimator, convert(X), convert(y))
        _assert_same_outputs(_outputs(other, convert(X)), expected, f"{name} input")
        _assert_same_outputs(_outputs(fitted, convert(X)), expected, f"{name} input at prediction")
    if isinstance(X, np.ndarray):
        _assert_same_outputs(_outputs(fitted, np.asfortranarray(X)), expected, "Fortran-ordered images")


def check_clone_and_params(estimator, X, y):
    """``clone`` and ``get_params``/``set_params`` round-trip; a clone of a fitted estimator is unfitted and
    fits to the same model (``check_get_params_invariance``, ``check_set_params``, ``check_estimator_cloneable``)."""
    params = estimator.get_params()
    assert clone(estimator).get_params() == params
    assert clone(estimator).set_params(**params).get_params() == params
    fitted = _fitted(estimator, X, y)
    unfitted = clone(fitted)
    assert unfitted.get_params() == fitted.get_params()
    assert not [name for name in vars(unfitted) if name.endswith("_") and not name.startswith("_")]
    _assert_same_outputs(_outputs(_fit(unfitted, X, y), X), _outputs(fitted, X), "clone of a fitted estimator")


def check_pickle(estimator, X, y):
    """A fitted estimator, pickled and read back, predicts the same (``check_estimators_pickle``)."""
    fitted = _fitted(estimator, X, y)
    expected = _outputs(fitted, X)
    skft.clear_cache()
    _assert_same_outputs(_outputs(pickle.loads(pickle.dumps(fitted)), X), expected, "after pickling")
    assert pickle.loads(pickle.dumps(clone(estimator))).get_params().keys() == estimator.get_params().keys()


def check_sample_weight_equivalence(estimator, X, y):
    """A weight of 2 equals the sample twice, a weight of 0 the sample left out
    (``check_sample_weight_equivalence_on_dense_data``).

    Exact only where a batch's make-up cannot change what a sample adds to the loss: one batch
    holding every sample, the backbone frozen (BatchNorm in training mode and dropout depend on the
    batch); the check sets ``mode="feature_extraction"`` and a batch size that holds them all. And 5
    epochs: Adam's first step has the same size whatever the weights (only the gradient's sign counts).
    """
    n = len(y)
    estimator = clone(estimator).set_params(mode="feature_extraction", batch_size=n + 2, max_epochs=5)
    weights = np.ones(n)
    weights[[0, 1]] = 2.0
    weights[2] = 0.0
    repeated = np.array([0, 0, 1, 1, *range(3, n)])
    weighted = _fit(estimator, X, y, sample_weight=weights)
    skft.clear_cache()
    duplicated = _fit(estimator, _take(X, repeated), np.asarray(y)[repeated])
    expected = _outputs(duplicated, X)
    for method, values in _outputs(weighted, X).items():
        np.testing.assert_allclose(values, expected[method], rtol=1e-4, atol=1e-5, err_msg=method)


def check_no_n_features_in(estimator, X, y):
    """No ``n_features_in_`` nor ``feature_names_in_`` (``check_n_features_in``, ``check_dataframe_column_names
    _consistency``): images of any size and texts of any length are taken, so there is no fixed number of input
    features nor named columns. A transformer names its output columns, one per feature."""
    fitted = _fitted(estimator, X, y)
    assert not hasattr(fitted, "n_features_in_") and not hasattr(fitted, "feature_names_in_")
    if hasattr(fitted, "get_feature_names_out"):
        names = fitted.get_feature_names_out()
        assert len(names) == fitted.transform(X).shape[1] == fitted.n_features_out_
        assert len(set(names)) == len(names)


def check_transform_batch_independence(estimator, X, y):
    """Each sample's features do not depend on the others in its batch, padded texts included
    (``batch_size`` 1 against all in one batch)."""
    fitted = _fitted(estimator, X, y)
    expected = _outputs(fitted, X)
    for batch_size in (1, len(y)):
        _assert_same_outputs(_outputs(fitted.set_params(batch_size=batch_size), X), expected, f"{batch_size=}")


def check_bad_input_is_a_value_error(estimator, X, y):
    """A table, no samples, missing values, complex numbers, or 1-D numbers at prediction are a ``ValueError``
    naming ``X`` (``check_fit2d_predict1d``, ``check_estimators_empty_data_messages``,
    ``check_estimators_nan_inf``, ``check_complex_data``)."""
    texts = not isinstance(X, np.ndarray)
    missing = [None, *X[1:]] if texts else np.full(X.shape, np.nan)
    bad_fits = {
        "a table": np.ones((len(y), 5)),
        "no samples": X[:0] if not texts else [],
        "missing values": missing,
        "complex numbers": np.ones((len(y), 5)) + 1j if texts else X.astype(complex),
    }
    for bad in bad_fits.values():
        with pytest.raises(ValueError, match="X"):
            clone(estimator).fit(bad, y) if _is_supervised(estimator) else clone(estimator).fit(bad)
    fitted = _fitted(estimator, X, y)
    for method in METHODS:
        if hasattr(fitted, method):
            with pytest.raises(ValueError, match="X"):
                getattr(fitted, method)(np.ones(len(y)))


def check_classifier_outputs(estimator, X, y):
    """Labels of any type come back as given; ``predict`` is the most probable class and probabilities sum to
    1 (``check_classifiers_train``, ``check_classifiers_classes``)."""
    labels = np.array(["neg", "pos", "neutral"])[np.asarray(y) % 3]
    fitted = _fit(estimator, X, labels)
    np.testing.assert_array_equal(fitted.classes_, np.unique(labels))
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fitted.predict(X), fitted.classes_[proba.argmax(axis=1)])
    assert 0.0 <= fitted.score(X, labels) <= 1.0


def check_regressor_targets(estimator, X, y):
    """1-D targets give 1-D predictions, 2-D targets one column each (``check_regressors_int``,
    ``check_supervised_y_2d``)."""
    targets = np.asarray(y, dtype=float)
    assert _fit(estimator, X, targets.astype(int)).predict(X).shape == (len(y),)
    assert _fit(estimator, X, np.column_stack([targets, -targets])).predict(X).shape == (len(y), 2)


COMMON_CHECKS = [
    check_not_fitted_before_fit,
    check_methods_subset_invariance,
    check_methods_sample_order_invariance,
    check_fit_idempotent,
    check_predict_changes_nothing,
    check_fit_returns_self_and_keeps_parameters,
    check_read_only_and_non_contiguous_input,
    check_clone_and_params,
    check_pickle,
    check_no_n_features_in,
    check_bad_input_is_a_value_error,
]


def checks_for(estimator):
    """The checks that apply to ``estimator``: the common ones, then its kind's.

    Parameters
    ----------
    estimator : estimator

    Returns
    -------
    list of callable
    """
    if is_classifier(estimator):
        return COMMON_CHECKS + [check_sample_weight_equivalence, check_classifier_outputs]
    if is_regressor(estimator):
        return COMMON_CHECKS + [check_sample_weight_equivalence, check_regressor_targets]
    return COMMON_CHECKS + [check_transform_batch_independence]
