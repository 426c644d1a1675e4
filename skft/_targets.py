"""Checks of the targets ``y`` and of their ``sample_weight``, shared by the estimators."""

import numpy as np
from sklearn.utils.validation import _check_sample_weight


def check_no_missing_targets(y):
    """Raise a ``ValueError`` that gives the positions of missing targets (NaN or None).

    Parameters
    ----------
    y : ndarray of shape (N,) or (N, n_targets)
    """
    if y.ndim == 0 or y.dtype.kind not in "fO":
        return
    missing = np.isnan(y) if y.dtype.kind == "f" else np.frompyfunc(_is_missing, 1, 1)(y).astype(bool)
    rows = np.flatnonzero(missing.reshape(len(y), -1).any(axis=1))
    if rows.size:
        shown = ", ".join(map(str, rows[:5])) + (", ..." if rows.size > 5 else "")
        raise ValueError(
            f"y has {rows.size} missing target(s) (NaN or None), at position(s) {shown}. Drop those images or fill "
            "in their targets."
        )


def _is_missing(value):
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


def check_sample_weight(sample_weight, n_samples):
    """``sample_weight`` as float32 weights, one per sample, refusing negative ones.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        None gives every sample the weight 1.
    n_samples : int

    Returns
    -------
    ndarray of shape (n_samples,) and dtype float32

    Raises
    ------
    ValueError
        For a wrong length, missing or infinite weights (scikit-learn's messages), all weights zero,
        or a negative weight (a loss that rewards getting a sample wrong).
    """
    weights = _check_sample_weight(sample_weight, np.empty(n_samples), dtype=np.float32)
    negative = np.flatnonzero(weights < 0)
    if negative.size:
        raise ValueError(
            f"sample_weight has {negative.size} negative value(s), e.g. {float(weights[negative[0]])!r} at index "
            f"{int(negative[0])}: a negative weight would train the network to get that sample wrong. Pass weights "
            ">= 0 (0 leaves a sample out of the loss)."
        )
    return weights
