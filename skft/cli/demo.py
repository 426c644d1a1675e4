"""``skft demo``: the main job, offline: tune, test and compare the three modes on real MNIST digits."""

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .._classification import FineTunedClassifier
from ..datasets import load_mnist
from ..plotting import plot_compare_modes, plot_confusion_matrix, plot_learning_curves
from .search import grid_search, search_table, timed_fits

MODES = ("feature_extraction", "repurpose", "full")
FILES = ("results.json", "learning_curves.png", "confusion_matrix.png", "modes.png")


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo is.

    The cached modes (``feature_extraction``, ``repurpose``) compute their frozen blocks once per
    image, so they get many digits; ``full`` runs every block in every epoch, so it trains on the
    first ``n_train_full`` of them, and the report says so. The grid search can rank its candidates
    on draws of ``n_search`` digits, so that its refit (the demo's model) affords all of them:
    measured on 2 idle cores, 3,000 digits with 500-digit draws reach 0.977 held-out accuracy in
    2 min 14 s, where 2-fold CV over 1,500 digits reached 0.936 in 2 min 42 s (docs/cli.md).

    Parameters
    ----------
    n_train : int
        MNIST digits to train on.
    n_train_full : int
        Of those, how many ``mode="full"`` trains on.
    max_epochs : int
        At most this many epochs (early stopping on 10% of the training digits may stop sooner).
    cv : int
        Splits of the grid search.
    n_search : int or None
        Digits each of the search's fits trains on (and as many it is scored on), drawn from the
        training digits by a stratified shuffle split; ``None``: ``cv``-fold CV over all of them.
        The refit of the best candidate trains on every training digit.
    grid : dict of str to list
        ``"auto"`` is the estimator's measured default (``lr_`` says what it was).
    n_test : int
        Held-out digits, never trained on.
    image_size : int
    """

    n_train: int
    n_train_full: int
    max_epochs: int
    cv: int
    n_search: int | None = None
    grid: dict = field(default_factory=lambda: {"lr": ["auto", 1e-3], "batch_size": [32, 64]})
    n_test: int = 1000
    image_size: int = 64


FULL = DemoSettings(n_train=3000, n_train_full=500, max_epochs=5, cv=2, n_search=500)
QUICK = DemoSettings(n_train=800, n_train_full=100, max_epochs=5, cv=2, grid={"lr": ["auto", 1e-3], "batch_size": [32]})


def run_demo(out_dir, quick=False, verbose=1):
    """Grid-search a ``repurpose`` fine-tune of EfficientNet-Lite0, test it, compare modes and baselines, write files.

    Parameters
    ----------
    out_dir : str or Path
        Created if needed; receives ``results.json`` and three PNG pictures.
    quick : bool
        A smaller run (fewer digits, epochs and candidates) that writes the same files.
    verbose : int, default=1
        ``0``: no progress report; ``2``: also each fit's epoch table.

    Returns
    -------
    dict
        What ``results.json`` holds.
    """
    settings = QUICK if quick else FULL
    start = time.perf_counter()
    images, labels = load_mnist(settings.n_test + settings.n_train)
    X_test, y_test = images[: settings.n_test], labels[: settings.n_test]
    X_train, y_train = images[settings.n_test :], labels[settings.n_test :]
    base = FineTunedClassifier(
        mode="repurpose",
        image_size=settings.image_size,
        max_epochs=settings.max_epochs,
        early_stopping=True,
        random_state=0,
        verbose=int(verbose > 1),
    )
    search = grid_search(base, settings.grid, X_train, y_train, cv=_search_splits(settings), verbose=verbose)
    modes = _compare_modes(search, settings, X_train, y_train, X_test, y_test, verbose)
    baselines = _baselines(X_train, y_train, X_test, y_test)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_pictures(out, modes.pop("fitted"), pd.DataFrame(modes["rows"]), X_test, y_test)
    results = {
        "settings": asdict(settings) | {"backbone": base.backbone},
        "search": _records(search_table(search)),
        "best_params": search.best_params_,
        "best_cv_score": float(search.best_score_),
        "test_accuracy": modes["rows"][MODES.index("repurpose")]["test_accuracy"],
        "modes": modes["rows"],
        "baselines": baselines,
        "seconds": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _search_splits(settings):
    """The grid search's splits: ``cv`` folds, or ``cv`` stratified draws of ``n_search`` digits to fit and to score."""
    if settings.n_search is None:
        return settings.cv
    size = settings.n_search
    return StratifiedShuffleSplit(settings.cv, train_size=size, test_size=size, random_state=0)


def _compare_modes(search, settings, X_train, y_train, X_test, y_test, verbose):
    """The three modes side by side: the search's refitted ``repurpose`` and two more fits with their default lr.

    ``repurpose`` is the search's best estimator, refitted on every training digit (its fit time is
    the refit's, which also computes the frozen blocks of the digits no search fit had seen).
    ``feature_extraction`` is fitted twice: the first fit pays its frozen blocks once for every
    digit (``one_time``), the second costs what every later fit on these digits costs
    (``fit_time``), as in a grid search after its first fit. ``full`` runs every block in every
    epoch, so it trains on the first ``n_train_full`` digits.
    """
    best = search.best_estimator_
    fitted = {"repurpose": best}
    seconds = {"repurpose": search.refit_time_}
    extraction = {"feature_extraction": clone(best).set_params(mode="feature_extraction", lr="auto")}
    _, first_seconds = timed_fits(extraction, X_train, y_train, desc="feature_extraction, first fit", verbose=verbose)
    later, later_seconds = timed_fits(extraction, X_train, y_train, desc="feature_extraction", verbose=verbose)
    n_full = settings.n_train_full
    full, full_seconds = timed_fits(
        {"full": clone(best).set_params(mode="full", lr="auto")},
        X_train[:n_full],
        y_train[:n_full],
        desc="mode full",
        verbose=verbose,
    )
    fitted |= later | full
    seconds |= later_seconds | full_seconds
    one_time = {"feature_extraction": max(first_seconds["feature_extraction"] - later_seconds["feature_extraction"], 0)}
    rows = [
        {
            "mode": mode,
            "lr": fitted[mode].lr_,
            "trainable_layers": fitted[mode].trainable_layers_,
            "n_train": n_full if mode == "full" else len(X_train),
            "epochs": len(fitted[mode].history_),
            "test_accuracy": float(fitted[mode].score(X_test, y_test)),
            "fit_time": seconds[mode],
            "one_time": one_time.get(mode, 0.0),
        }
        for mode in MODES
    ]
    return {"rows": rows, "fitted": fitted}


def _baselines(X_train, y_train, X_test, y_test):
    """What a user would try first, on the same digits: pixels into LogisticRegression and k-NN."""
    pixels_train = X_train.reshape(len(X_train), -1) / 255.0
    pixels_test = X_test.reshape(len(X_test), -1) / 255.0
    models = {
        "LogisticRegression on pixels": make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
        "3-nearest neighbours on pixels": KNeighborsClassifier(n_neighbors=3),
    }
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(pixels_train, y_train)
        rows.append(
            {
                "model": name,
                "test_accuracy": float(model.score(pixels_test, y_test)),
                "fit_time": time.perf_counter() - start,
            }
        )
    return rows


def _records(table):
    """A DataFrame as a list of JSON-ready dicts (plain Python numbers)."""
    return json.loads(table.to_json(orient="records"))


def _write_pictures(out, fitted, modes, X_test, y_test):
    import matplotlib.pyplot as plt

    figure, (losses, accuracies) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    for mode, color in zip(MODES, ("tab:blue", "tab:orange", "tab:green")):
        plot_learning_curves(fitted[mode], ax=losses, label=mode, color=color)
        plot_learning_curves(fitted[mode], ax=accuracies, label=mode, metric="accuracy", color=color)
    losses.set_title("loss per epoch (validation: 10% of the training digits)")
    accuracies.set_title("validation accuracy per epoch")
    chart = modes.assign(score_mean=modes["test_accuracy"])
    chart["mode"] = [f"{row.mode} ({row.n_train} digits)" for row in modes.itertuples()]
    figures = {
        "learning_curves.png": figure,
        "confusion_matrix.png": plot_confusion_matrix(fitted["repurpose"], X_test, y_test),
        "modes.png": plot_compare_modes(chart),
    }
    figures["confusion_matrix.png"].axes[0].set_title("repurpose, best parameters: held-out test digits")
    one_time = ", ".join(f"{row.mode} {row.one_time:.0f} s" for row in modes.itertuples() if row.one_time > 0)
    figures["modes.png"].axes[0].set(
        ylabel="test accuracy",
        xlabel=f"fit time (s), after a one-time pass through the frozen blocks ({one_time})",
        title="the three modes: test accuracy against fit time",
    )
    for name, picture in figures.items():
        picture.savefig(out / name, dpi=100)
        plt.close(picture)


def _search_description(settings):
    """How the demo's grid search scored its candidates, in words (``settings`` as in ``results.json``)."""
    if settings["n_search"] is None:
        return f"{settings['cv']}-fold CV accuracy"
    return (
        f"accuracy over {settings['cv']} stratified draws of {settings['n_search']} training digits to fit and "
        f"{settings['n_search']} others to score, the best then refitted on all {settings['n_train']}"
    )


def format_report(results, out_dir):
    """The demo's results as text for the terminal.

    Parameters
    ----------
    results : dict
        What :func:`run_demo` returned.
    out_dir : str or Path
        Where the files were written.

    Returns
    -------
    str
    """
    settings = results["settings"]
    table = pd.DataFrame(results["search"]).to_string(index=False, float_format=lambda v: f"{v:.3g}")
    modes = "\n".join(
        f"  {row['mode']:<18} lr={row['lr']:<7.2g} {row['trainable_layers']} blocks trained, {row['n_train']} digits, "
        f"{row['epochs']} epochs: test accuracy {row['test_accuracy']:.3f}   fit {row['fit_time']:5.1f} s"
        + (f" (+ {row['one_time']:.1f} s once, through the frozen blocks)" if row["one_time"] > 0 else "")
        for row in results["modes"]
    )
    baselines = "\n".join(
        f"  {row['model']:<32} test accuracy {row['test_accuracy']:.3f}   fit {row['fit_time']:5.1f} s"
        for row in results["baselines"]
    )
    return "\n".join(
        [
            f"{settings['backbone']} (ImageNet weights), mode='repurpose', image_size={settings['image_size']}, "
            f"at most {settings['max_epochs']} epochs (early stopping); {settings['n_train']} MNIST digits to train, "
            f"{settings['n_test']} to test",
            f"grid search ('auto': the measured default lr), {_search_description(settings)}:",
            table,
            f"best parameters: {results['best_params']} (CV accuracy {results['best_cv_score']:.3f})",
            f"held-out test accuracy: {results['test_accuracy']:.3f}",
            "the three modes: repurpose is the search's refit on every training digit; "
            "the others use their default lr, and 'full' runs every block every epoch, so it gets fewer digits:",
            modes,
            "what you would try first, on the same digits:",
            baselines,
            f"wrote {', '.join(FILES)} to {out_dir} in {results['seconds']:.0f} s",
        ]
    )
