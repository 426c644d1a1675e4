"""Multi-label targets: scikit-learn's binary indicator matrix, its checks and per-label thresholds.

A classifier given ``y`` of shape ``(N, n_labels)`` holding only 0 and 1 (what
:func:`sklearn.utils.multiclass.type_of_target` calls ``"multilabel-indicator"``, e.g. the output of
``MultiLabelBinarizer``) learns one sigmoid output per label with binary cross-entropy, as
scikit-learn's ``MLPClassifier`` does: ``classes_`` is ``arange(n_labels)``, ``predict_proba`` an
``(N, n_labels)`` array of per-label probabilities and ``predict`` an indicator matrix.

``threshold="auto"`` chooses each label's threshold on the validation split: one that maximises that
label's F1 score there (of equal ones the lowest), placed midway between the lowest score it predicts
positive and the next lower score, so that no sample sits on it.
A label with no positive sample in the split keeps 0.5.
"""

import numpy as np
from sklearn.metrics import f1_score, precision_recall_curve
from sklearn.utils.multiclass import type_of_target

#: The threshold of a label that the validation split cannot tune.
DEFAULT_THRESHOLD = 0.5


def is_indicator_matrix(y):
    """Whether ``y`` is a binary indicator matrix (scikit-learn's multi-label convention).

    Parameters
    ----------
    y : array-like

    Returns
    -------
    bool
    """
    if np.ndim(y) != 2:
        return False
    try:
        return type_of_target(y) == "multilabel-indicator"
    except ValueError:
        return False


def check_indicator_matrix(y):
    """Return ``y`` as a float32 ``(N, n_labels)`` array, refusing a label that is never positive.

    Parameters
    ----------
    y : array-like of shape (N, n_labels)
        A binary indicator matrix.

    Returns
    -------
    ndarray of shape (N, n_labels), float32

    Raises
    ------
    ValueError
        Naming the labels (columns) without a single positive sample.
    """
    indicator = np.asarray(y).astype(np.float32)
    never = np.flatnonzero(indicator.sum(axis=0) == 0)
    if never.size:
        raise ValueError(
            f"y is a multi-label indicator matrix, but label(s) {never.tolist()} (column(s) of y) are never positive: "
            "the classifier cannot learn when to predict them. Drop those columns, or add samples that have them."
        )
    return indicator


def tuned_thresholds(probabilities, indicator):
    """Per label, a threshold on ``probabilities`` that maximises that label's F1 score on ``indicator``.

    Parameters
    ----------
    probabilities : ndarray of shape (N, n_labels)
    indicator : ndarray of shape (N, n_labels)
        The true labels (0 or 1).

    Returns
    -------
    ndarray of shape (n_labels,)
        0.5 for a label without positive samples.
    """
    thresholds = np.full(indicator.shape[1], DEFAULT_THRESHOLD)
    for label in range(indicator.shape[1]):
        if not indicator[:, label].any():
            continue
        precision, recall, candidates = precision_recall_curve(indicator[:, label], probabilities[:, label])
        f1 = 2 * precision * recall / np.maximum(precision + recall, np.finfo(float).tiny)
        best = int(np.argmax(f1[:-1]))
        # Midway to the next lower score: the same predictions on the split, and away from any sample's score.
        thresholds[label] = (candidates[best] + (candidates[best - 1] if best else 0.0)) / 2
    return thresholds


def weighted_f1_samples(predicted, packed_targets):
    """``f1_samples`` of an indicator ``predicted``, weighted by the last column of ``packed_targets``.

    Parameters
    ----------
    predicted : ndarray of shape (N, n_labels)
    packed_targets : ndarray of shape (N, n_labels + 1)
        The indicator matrix and the sample weights.

    Returns
    -------
    float
    """
    packed = np.asarray(packed_targets)
    return float(f1_score(packed[:, :-1], predicted, average="samples", sample_weight=packed[:, -1], zero_division=0.0))
