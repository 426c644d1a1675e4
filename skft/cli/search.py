"""Grid searches with a progress report, and their results as a table (shared by the CLI and the demo)."""

import time

import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, ParameterGrid, check_cv

from .progress import FitProgress, fit_progress


def with_progress(estimator):
    """Return a clone of ``estimator`` that reports its epochs to :func:`skft.cli.progress.fit_progress`.

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor

    Returns
    -------
    estimator
    """
    return clone(estimator).set_params(callbacks=[*(estimator.callbacks or []), FitProgress()])


def without_progress(estimator, original_callbacks):
    """Give a fitted estimator back its original ``callbacks`` parameter, so that it saves as plain values.

    Parameters
    ----------
    estimator : fitted estimator
    original_callbacks : list or None

    Returns
    -------
    estimator
    """
    return estimator.set_params(callbacks=original_callbacks)


def grid_search(estimator, grid, X, y, cv, *, verbose=1):
    """Run ``GridSearchCV`` over ``grid``, reporting its progress (bars on a terminal, lines elsewhere).

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor
    grid : dict of str to list
        Parameter names and the values to try; ``{}`` cross-validates ``estimator`` as it is.
    X, y : array-like
    cv : int or cross-validation splitter
    verbose : int, default=1
        ``0``: no progress report (see :func:`skft.cli.progress.fit_progress`).

    Returns
    -------
    GridSearchCV
        Fitted, with ``best_estimator_`` refitted on all of ``X`` (its ``callbacks`` as in ``estimator``).
    """
    n_splits = check_cv(cv, y, classifier=is_classifier(estimator)).get_n_splits(X, y)
    search = GridSearchCV(with_progress(estimator), grid, cv=cv, error_score="raise")
    with fit_progress(len(ParameterGrid(grid)) * n_splits + 1, desc="search", verbose=verbose):
        search.fit(X, y)
    without_progress(search.best_estimator_, estimator.callbacks)
    return search


def timed_fits(estimators, X, y, desc, *, verbose=1):
    """Fit each estimator, reporting progress, and measure its fit time.

    Parameters
    ----------
    estimators : dict of str to estimator
    X, y : array-like
    desc : str
        What the fits are, for the progress report.
    verbose : int, default=1
        ``0``: no progress report.

    Returns
    -------
    fitted : dict of str to estimator
    seconds : dict of str to float
    """
    fitted, seconds = {}, {}
    with fit_progress(len(estimators), desc=desc, verbose=verbose):
        for name, estimator in estimators.items():
            start = time.perf_counter()
            fitted[name] = without_progress(with_progress(estimator).fit(X, y), estimator.callbacks)
            seconds[name] = time.perf_counter() - start
    return fitted, seconds


def search_table(search):
    """The candidates of a fitted search, best first, with their scores and fit times.

    Parameters
    ----------
    search : fitted GridSearchCV

    Returns
    -------
    DataFrame
        One column per searched parameter, then ``mean_test_score``, ``std_test_score``,
        ``mean_fit_time`` (seconds) and ``rank_test_score``.
    """
    results = pd.DataFrame(search.cv_results_)
    params = pd.DataFrame(list(results["params"]), index=results.index)
    scores = results[["mean_test_score", "std_test_score", "mean_fit_time", "rank_test_score"]]
    return pd.concat([params, scores], axis=1).sort_values("rank_test_score").reset_index(drop=True)
