import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from skft import FineTunedClassifier  # noqa: E402
from skft.plotting import plot_compare_modes, plot_confusion_matrix, plot_learning_curves  # noqa: E402

from conftest import make_images  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted():
    from conftest import TINY, TINY_SIZE

    X, y = make_images(40, n_classes=2)
    clf = FineTunedClassifier(
        backbone=TINY,
        image_size=TINY_SIZE,
        max_epochs=3,
        batch_size=8,
        random_state=0,
        early_stopping=True,
        validation_fraction=0.25,
    )
    return clf.fit(X, y), X, y


def test_learning_curves_from_an_estimator_show_train_and_valid_loss(fitted):
    clf, _, _ = fitted
    fig = plot_learning_curves(clf)
    assert isinstance(fig, Figure)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["train loss", "valid loss"]
    np.testing.assert_allclose(lines[0].get_ydata(), clf.history_[:, "train_loss"])
    assert list(lines[0].get_xdata()) == [1, 2, 3]


def test_learning_curves_from_a_history_into_given_axes_with_a_label():
    fig, ax = plt.subplots()
    history = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.4}]
    assert plot_learning_curves(history, ax=ax, label="full") is fig
    assert [line.get_label() for line in ax.get_lines()] == ["full train loss"]


def test_learning_curves_share_a_colour_per_fit_and_dash_validation(fitted):
    clf, _, _ = fitted
    fig, ax = plt.subplots()
    plot_learning_curves(clf, ax=ax, label="a")
    plot_learning_curves(clf, ax=ax, label="b")
    a_train, a_valid, b_train, b_valid = ax.get_lines()
    assert a_train.get_color() == a_valid.get_color() != b_train.get_color() == b_valid.get_color()
    assert [line.get_linestyle() for line in (a_train, a_valid)] == ["-", "--"]
    accuracy = plot_learning_curves(clf, label="a", metric="accuracy", color="tab:red").axes[0].get_lines()
    assert [(line.get_color(), line.get_linestyle()) for line in accuracy] == [("tab:red", "--")]


@pytest.mark.parametrize("bad", [[], FineTunedClassifier(), "history"])
def test_learning_curves_refuse_what_is_not_a_history(bad):
    with pytest.raises(ValueError, match="fitted skft estimator or its history_"):
        plot_learning_curves(bad)


def test_confusion_matrix_counts_every_image(fitted):
    clf, X, y = fitted
    fig = plot_confusion_matrix(clf, X, y)
    assert isinstance(fig, Figure)
    counts = [int(text.get_text()) for text in fig.axes[0].texts]
    assert sum(counts) == len(y) and len(counts) == 4


def test_compare_modes_plots_one_point_per_mode_with_error_bars():
    table = pd.DataFrame(
        {
            "candidate": ["full", "repurpose"],
            "score_mean": [0.9, 0.8],
            "score_std": [0.02, 0.05],
            "fit_time": [30.0, 10.0],
        }
    )
    fig = plot_compare_modes(table)
    ax = fig.axes[0]
    assert [text.get_text() for text in ax.texts] == ["full", "repurpose"]
    assert ax.get_xlabel() == "fit time (s)"
    assert len(ax.collections) == 1  # the error bars


def test_compare_modes_takes_names_from_the_index_and_works_without_std():
    table = pd.DataFrame({"score_mean": [0.7], "fit_time": [2.0]}, index=["feature_extraction"])
    assert [text.get_text() for text in plot_compare_modes(table).axes[0].texts] == ["feature_extraction"]


def test_compare_modes_names_missing_columns():
    with pytest.raises(ValueError, match=r"\['fit_time'\] missing"):
        plot_compare_modes(pd.DataFrame({"score_mean": [0.5]}))


CLOSE_POINTS = pd.DataFrame(
    {  # five points in a cluster, one far away
        "mode": ["feature_extraction", "repurpose", "lora", "weights=None", "prompt", "full"],
        "score_mean": [0.800, 0.801, 0.802, 0.799, 0.801, 0.95],
        "score_std": [0.002, 0.001, 0.001, 0.002, 0.001, 0.01],
        "fit_time": [5.0, 5.02, 5.01, 5.03, 5.04, 9.0],
    }
)


def _label_boxes(fig):
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [Text.get_window_extent(text, renderer) for text in fig.axes[0].texts]


@pytest.mark.parametrize("size", [(6.4, 4.8), (4, 3)])
def test_compare_modes_labels_of_close_points_never_overlap(size):
    fig = plot_compare_modes(CLOSE_POINTS)
    fig.set_size_inches(*size)
    fig.axes[0].set_title("a title added afterwards changes the layout")
    boxes = _label_boxes(fig)
    assert len(boxes) == len(CLOSE_POINTS)
    overlapping = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    assert not overlapping


def test_compare_modes_axes_fit_the_points_with_a_margin():
    ax = plot_compare_modes(CLOSE_POINTS).axes[0]
    assert ax.get_xscale() == "linear"
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    times = CLOSE_POINTS["fit_time"]
    low, high = (CLOSE_POINTS["score_mean"] + sign * CLOSE_POINTS["score_std"] for sign in (-1, 1))
    assert x0 < times.min() < times.max() < x1 and x1 - x0 < 2 * (times.max() - times.min())
    assert y0 < low.min() < high.max() < y1 and y1 - y0 < 2 * (high.max() - low.min())


def test_compare_modes_fit_times_spanning_more_than_tenfold_go_on_a_log_axis():
    table = pd.DataFrame({"mode": ["feature_extraction", "full"], "score_mean": [0.87, 0.94], "fit_time": [3.0, 97.0]})
    ax = plot_compare_modes(table).axes[0]
    assert ax.get_xscale() == "log"
    x0, x1 = ax.get_xlim()
    assert x0 < 3.0 and 97.0 < x1 and np.log(x1 / x0) < 2 * np.log(97 / 3)


COMPARE_TABLE = pd.DataFrame(
    {  # the shape of compare_modes' table on a text backbone
        "score_mean": [0.94, 0.93, 0.88, 0.935, 0.70, 0.55, 0.82],
        "score_std": [0.01, 0.01, 0.02, 0.01, 0.0, 0.05, 0.02],
        "fit_time": [97.0, 20.0, 3.0, 22.0, 0.5, 95.0, 0.8],
        "predict_time": [2.0, 2.0, 0.3, 2.1, 0.3, 2.0, 0.05],
        "trainable_params": [3_400_000, 900_000, 12_000, 80_000, 0, 3_400_000, 20_000],
        "file_bytes": [14e6, 3.6e6, 50e3, 340e3, 8e3, 14e6, np.nan],
        "drift": [0.05, 0.04, 0.0, 0.01, 0.0, 0.9, np.nan],
    },
    index=pd.Index(
        ["full", "repurpose", "feature_extraction", "lora", "prompt", "full, weights=None", "TF-IDF + linear model"],
        name="candidate",
    ),
)
COST_LABELS = {
    "fit_time": "fit time (s)",
    "predict_time": "predict time (s)",
    "trainable_params": "trained parameters",
    "file_bytes": "model file size (bytes)",
}


@pytest.mark.parametrize("cost", sorted(COST_LABELS))
def test_compare_modes_draws_score_against_each_cost_with_its_unit(cost):
    fig = plot_compare_modes(COMPARE_TABLE, cost=cost)
    ax = fig.axes[0]
    assert ax.get_xlabel() == COST_LABELS[cost]
    drawn = COMPARE_TABLE[COMPARE_TABLE[cost].notna()]
    assert [text.get_text() for text in ax.texts] == list(drawn.index)  # no model file: no point
    x0, x1 = ax.get_xlim()
    assert x0 < drawn[cost].min() and drawn[cost].max() < x1
    boxes = _label_boxes(fig)
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]


def test_compare_modes_costs_spanning_orders_of_magnitude_with_a_zero_go_on_a_symlog_axis():
    assert plot_compare_modes(COMPARE_TABLE, cost="file_bytes").axes[0].get_xscale() == "log"
    ax = plot_compare_modes(COMPARE_TABLE, cost="trainable_params").axes[0]
    assert ax.get_xscale() == "symlog"  # zero-shot prompting trains nothing: 0 has no place on a log axis
    assert ax.get_xlim()[0] < 0


def test_compare_modes_default_cost_is_fit_time():
    assert plot_compare_modes(COMPARE_TABLE).axes[0].get_xlabel() == "fit time (s)"


def test_compare_modes_refuses_an_unknown_cost():
    with pytest.raises(ValueError, match=r"cost must be one of \['file_bytes', 'fit_time'.*Got 'memory'"):
        plot_compare_modes(COMPARE_TABLE, cost="memory")


def test_compare_modes_names_the_missing_cost_column():
    with pytest.raises(ValueError, match=r"score_mean and file_bytes.*\['file_bytes'\] missing"):
        plot_compare_modes(COMPARE_TABLE.drop(columns="file_bytes"), cost="file_bytes")
