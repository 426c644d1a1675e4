"""Pictures of a fit: learning curves, a confusion matrix, and the modes compared.

Every function returns a matplotlib ``Figure``; pass ``ax`` to draw into an existing plot.
"""

import numpy as np
import pandas as pd

LOSS_KEYS = ("train_loss", "valid_loss")
NAME_COLUMNS = ("mode", "candidate")


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(layout="constrained")[1]


def _history(history_or_estimator):
    history = getattr(history_or_estimator, "history_", history_or_estimator)
    if not isinstance(history, list) or not history or not all("epoch" in row for row in history):
        raise ValueError(
            "plot_learning_curves needs a fitted skft estimator or its history_ (a list of one dict per epoch). "
            f"Got {type(history_or_estimator).__name__} instead."
        )
    return history


def plot_learning_curves(history_or_estimator, ax=None, label=None):
    """Plot the training loss per epoch, and the validation loss when there is one.

    Parameters
    ----------
    history_or_estimator : fitted estimator, skorch History or list of dict
        A fitted skft estimator (its ``history_`` is used) or the history itself.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when omitted. Draw several fits into one ``ax`` with ``label``.
    label : str, optional
        Prefix of the line labels, e.g. the mode.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from skft.plotting import plot_learning_curves
    >>> history = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]
    >>> plot_learning_curves(history).axes[0].get_ylabel()
    'loss'
    """
    history = _history(history_or_estimator)
    ax = _axes(ax)
    epochs = [row["epoch"] for row in history]
    for key in LOSS_KEYS:
        values = [row.get(key) for row in history]
        if any(value is not None for value in values):
            name = key.replace("_", " ")
            ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o",
                    label=f"{label} {name}" if label else name)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss")
    ax.legend()
    return ax.figure


def plot_confusion_matrix(estimator, X, y, ax=None, normalize=None):
    """Plot the confusion matrix of a fitted classifier on images ``X`` with true labels ``y``.

    Parameters
    ----------
    estimator : fitted classifier
    X : array-like of images
    y : array-like of labels
    ax : matplotlib Axes, optional
    normalize : {"true", "pred", "all"} or None
        As in :func:`sklearn.metrics.confusion_matrix`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    display = ConfusionMatrixDisplay.from_estimator(
        estimator, X, y, ax=_axes(ax), normalize=normalize, xticks_rotation="vertical", colorbar=False
    )
    return display.figure_


def _names(table):
    for column in NAME_COLUMNS:
        if column in table:
            return table[column].astype(str).tolist()
    return table.index.astype(str).tolist()


def plot_compare_modes(df, ax=None):
    """Plot score against fit time, one point per mode (or candidate).

    Parameters
    ----------
    df : DataFrame or list of dict
        Columns ``score_mean`` and ``fit_time`` (seconds), optionally ``score_std`` (drawn as error
        bars), and the names in a ``mode`` or ``candidate`` column, or in the index.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from skft.plotting import plot_compare_modes
    >>> fig = plot_compare_modes([{"mode": "full", "score_mean": 0.9, "fit_time": 30.0},
    ...                           {"mode": "feature_extraction", "score_mean": 0.8, "fit_time": 5.0}])
    >>> fig.axes[0].get_xlabel()
    'fit time (s)'
    """
    table = pd.DataFrame(df)
    missing = {"score_mean", "fit_time"} - set(table.columns)
    if missing:
        raise ValueError(f"plot_compare_modes needs columns score_mean and fit_time; {sorted(missing)} missing.")
    ax = _axes(ax)
    errors = table["score_std"] if "score_std" in table else None
    ax.errorbar(table["fit_time"], table["score_mean"], yerr=errors, fmt="o", capsize=4)
    for name, x, y in zip(_names(table), table["fit_time"], table["score_mean"]):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("fit time (s)")
    ax.set_ylabel("score")
    ax.margins(0.2)
    return ax.figure
