"""Checks of the targets ``y`` shared by the estimators."""

import numpy as np


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
