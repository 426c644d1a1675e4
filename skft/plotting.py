"""Pictures of a fit: learning curves, a confusion matrix, and the modes compared.

Every function returns a matplotlib ``Figure``; pass ``ax`` to draw into an existing plot.
"""

import numpy as np
import pandas as pd

try:
    from matplotlib.artist import Artist
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox
except ImportError:
    raise ImportError(
        "skft.plotting draws with matplotlib, which is not installed. Install it with: pip install 'skft[plots]' "
        "(or 'skft[demo]', which includes it)."
    ) from None

METRIC_KEYS = {"loss": ("train_loss", "valid_loss"), "accuracy": ("valid_acc",)}
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


def plot_learning_curves(history_or_estimator, ax=None, label=None, metric="loss", color=None):
    """Plot the training and validation loss per epoch, or the validation accuracy.

    The validation columns exist when the fit held out a validation split (``early_stopping=True``);
    ``valid_acc`` is a classifier's. The lines of one call share a colour; training lines are
    solid and validation lines dashed, so that several fits drawn into one ``ax`` (or into two, one
    per metric) are told apart by colour.

    Parameters
    ----------
    history_or_estimator : fitted estimator, skorch History or list of dict
        A fitted skft estimator (its ``history_`` is used) or the history itself.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when omitted. Draw several fits into one ``ax`` with ``label``.
    label : str, optional
        Prefix of the line labels, e.g. the mode.
    metric : {"loss", "accuracy"}, default="loss"
        ``"loss"``: ``train_loss`` and ``valid_loss``; ``"accuracy"``: ``valid_acc``.
    color : matplotlib colour, optional
        The colour of this call's lines; by default the next one of ``ax``'s colour cycle.

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
    if metric not in METRIC_KEYS:
        raise ValueError(f"metric must be one of {sorted(METRIC_KEYS)}. Got {metric!r} instead.")
    history = _history(history_or_estimator)
    ax = _axes(ax)
    epochs = [row["epoch"] for row in history]
    for key in METRIC_KEYS[metric]:
        values = [row.get(key) for row in history]
        if any(value is not None for value in values):
            name = key.replace("_", " ")
            (line,) = ax.plot(
                epochs,
                [np.nan if v is None else v for v in values],
                marker="o",
                linestyle="--" if key.startswith("valid") else "-",
                color=color,
                label=f"{label} {name}" if label else name,
            )
            color = line.get_color()
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(metric)
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


#: The cost axes :func:`plot_compare_modes` can draw (columns of :func:`skft.compare_modes`), with their labels.
COSTS = {
    "fit_time": "fit time (s)",
    "predict_time": "predict time (s)",
    "trainable_params": "trained parameters",
    "file_bytes": "model file size (bytes)",
}


def plot_compare_modes(df, ax=None, cost="fit_time"):
    """Plot quality against cost: score against fit time (or another cost), one labelled point per mode.

    Rows without a value of the cost are left out (e.g. the baseline of :func:`skft.compare_modes`
    has no model file). The axes fit the points with a margin (the cost on a log scale when its
    positive values span more than a factor of :data:`LOG_SCALE_SPAN`; symmetric-log when a cost is
    also 0, e.g. zero-shot prompting's trained parameters), and each label is placed, every time the
    figure is drawn, where it overlaps no other label and no point, leaning on a thin line to its
    point when it had to move away from it.

    Parameters
    ----------
    df : DataFrame or list of dict
        Columns ``score_mean`` and the ``cost`` column, optionally ``score_std`` (drawn as error
        bars), and the names in a ``mode`` or ``candidate`` column, or in the index: e.g. the
        table :func:`skft.compare_modes` returns.
    ax : matplotlib Axes, optional
    cost : {"fit_time", "predict_time", "trainable_params", "file_bytes"}, default="fit_time"
        The column on the horizontal axis: seconds per fold to fit or to predict, parameters
        trained, or bytes of the saved model file.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from skft.plotting import plot_compare_modes
    >>> table = [{"mode": "full", "score_mean": 0.9, "fit_time": 30.0, "file_bytes": 14e6},
    ...          {"mode": "feature_extraction", "score_mean": 0.8, "fit_time": 5.0, "file_bytes": 6e3}]
    >>> plot_compare_modes(table).axes[0].get_xlabel()
    'fit time (s)'
    >>> plot_compare_modes(table, cost="file_bytes").axes[0].get_xlabel()
    'model file size (bytes)'
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {sorted(COSTS)}. Got {cost!r} instead.")
    table = pd.DataFrame(df)
    missing = {"score_mean", cost} - set(table.columns)
    if missing:
        raise ValueError(
            f"plot_compare_modes needs columns score_mean and {cost} (cost={cost!r}); {sorted(missing)} missing."
        )
    table = table[table[cost].notna()]
    if table.empty:
        raise ValueError(f"plot_compare_modes has no row with a value of {cost!r} to draw.")
    ax = _axes(ax)
    costs = table[cost].to_numpy(dtype=float)
    scores = table["score_mean"].to_numpy(dtype=float)
    errors = table["score_std"].to_numpy(dtype=float) if "score_std" in table else np.zeros_like(scores)
    ax.errorbar(costs, scores, yerr=errors if "score_std" in table else None, fmt="o", capsize=4)
    _set_cost_scale(ax, costs)
    ax.set_xlim(_padded(ax.xaxis, costs, costs))
    ax.set_ylim(_padded(ax.yaxis, scores - errors, scores + errors))
    ax.set_xlabel(COSTS[cost])
    ax.set_ylabel("score")
    ax.add_artist(_PointLabels(ax, _names(table), costs, scores, errors))
    return ax.figure


LOG_SCALE_SPAN = 10
"""Costs whose positive values span more than this factor are drawn on a log axis."""

MARGIN = 0.15
"""Room around the points, as a fraction of the data's span on each axis (labels go there)."""


def _set_cost_scale(ax, costs):
    """A log axis for costs spanning orders of magnitude (symmetric-log, linear up to the least one, with zeros)."""
    positive = costs[costs > 0]
    if len(positive) == 0 or positive.max() <= LOG_SCALE_SPAN * positive.min():
        return
    if len(positive) == len(costs):
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=positive.min())


def _padded(axis, low, high):
    """Limits around ``low.min()`` .. ``high.max()``, :data:`MARGIN` on both sides in the ``axis``'s scale."""
    scale = axis.get_transform()
    lo, hi = scale.transform(np.array([np.nanmin(low), np.nanmax(high)], dtype=float))
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return tuple(scale.inverted().transform(np.array([lo - MARGIN * span, hi + MARGIN * span])))


# Where a label may sit, in points from its point, nearest first: beside it (right, left), above,
# below; then the same directions farther out.
_DIRECTIONS = [
    (1, 1, "left", "bottom"),
    (1, -1, "left", "top"),
    (-1, 1, "right", "bottom"),
    (-1, -1, "right", "top"),
    (0, 1.5, "center", "bottom"),
    (0, -1.5, "center", "top"),
]
_STEP = 6
_RINGS = 4


def _candidates():
    for ring in range(1, _RINGS + 1):
        for dx, dy, ha, va in _DIRECTIONS:
            yield (dx * _STEP * ring, dy * _STEP * ring), ha, va, ring > 1
    ring = _RINGS
    while True:  # every place inside the axes is taken: stack the label upwards until it is free
        ring += 1
        yield (_STEP, _STEP * ring), "left", "bottom", True


class _PointLabels(Artist):
    """Labels of points, placed at draw time (after the figure's layout) so that none overlaps another.

    Each label takes the first place from :func:`_candidates` that lies inside the axes and clear of
    the labels already placed and of every point with its error bar; a label set away from its point gets a thin line
    to it. The labels are ordinary annotations of the axes (``ax.texts``); this artist only moves
    them, drawing before them.
    """

    def __init__(self, ax, names, x, y, errors):
        super().__init__()
        self._errors = errors
        self.set_zorder(-np.inf)  # move the labels before they draw
        self.set_in_layout(False)
        self._labels = []
        for name, xi, yi in zip(names, x, y):
            label = ax.annotate(
                name,
                (xi, yi),
                xytext=(_STEP, _STEP),
                textcoords="offset points",
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 1, "shrinkB": 4},
            )
            label.set_in_layout(False)  # placed after the layout; the margins leave it room
            self._labels.append(label)

    def draw(self, renderer):
        taken = [_point_box(label, error, renderer) for label, error in zip(self._labels, self._errors)]
        inside = self.axes.get_window_extent(renderer)
        for label in sorted(self._labels, key=lambda label: tuple(label.xy)):
            for offset, ha, va, far in _candidates():
                label.xyann = offset
                label.set(ha=ha, va=va)
                label.update_positions(renderer)
                box = Text.get_window_extent(label, renderer).padded(2)
                clear = not any(box.overlaps(other) for other in taken)
                if clear and (_within(box, inside) or offset[1] > _STEP * _RINGS):
                    break
            label.arrow_patch.set_visible(far)
            taken.append(box)
        self.stale = False


def _point_box(label, error, renderer):
    """The box a point's marker and error bar cover, in display units."""
    x, y = label.xy
    (_, low), (_, high) = label.axes.transData.transform([(x, y - error), (x, y + error)])
    x = label.axes.transData.transform(label.xy)[0]
    radius = 4 * renderer.points_to_pixels(1)  # the marker is 6 points wide
    return Bbox.from_extents(x - radius, min(low, high) - radius, x + radius, max(low, high) + radius)


def _within(box, outer):
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1
