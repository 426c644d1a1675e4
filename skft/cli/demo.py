"""``skft demo``: the main job, offline: tune, test and compare the three modes on real MNIST digits."""

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from .._classification import FineTunedClassifier
from ..datasets import load_mnist
from ..plotting import plot_compare_modes, plot_confusion_matrix, plot_learning_curves
from .search import grid_search, search_table, timed_fits

MODES = ("feature_extraction", "repurpose", "full")
# Training every block at the learning rate tuned for the last block wrecks the pretrained features
# (measured: 480 digits, 3 epochs, lr=1e-3: 0.41 test accuracy; lr=1e-4: 0.85), so "full" gets a tenth of it.
FULL_LR_FACTOR = 0.1
FILES = ("results.json", "learning_curves.png", "confusion_matrix.png", "modes.png")


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo is.

    Parameters
    ----------
    n_images : int
        MNIST digits used; a fifth of them is held out for the test.
    max_epochs : int
    cv : int
        Folds of the grid search.
    grid : dict of str to list
    image_size : int
    test_fraction : float
    """

    n_images: int
    max_epochs: int
    cv: int
    grid: dict = field(default_factory=lambda: {"lr": [1e-3, 3e-3], "batch_size": [16, 32]})
    image_size: int = 64
    test_fraction: float = 0.2


FULL = DemoSettings(n_images=800, max_epochs=3, cv=3)
QUICK = DemoSettings(n_images=200, max_epochs=2, cv=2)


def run_demo(out_dir, quick=False, verbose=1):
    """Grid-search a ``repurpose`` fine-tune of EfficientNet-Lite0, test it, compare the modes, write the files.

    Parameters
    ----------
    out_dir : str or Path
        Created if needed; receives ``results.json`` and three PNG pictures.
    quick : bool
        A smaller run (fewer digits, epochs and folds) that writes the same files.
    verbose : int, default=1
        ``0``: no progress report; ``2``: also each fit's epoch table.

    Returns
    -------
    dict
        What ``results.json`` holds.
    """
    settings = QUICK if quick else FULL
    start = time.perf_counter()
    images, labels = load_mnist(settings.n_images)
    X_train, X_test, y_train, y_test = train_test_split(
        images, labels, test_size=settings.test_fraction, stratify=labels, random_state=0
    )
    base = FineTunedClassifier(
        mode="repurpose", image_size=settings.image_size, max_epochs=settings.max_epochs, random_state=0,
        verbose=int(verbose > 1),
    )
    search = grid_search(base, settings.grid, X_train, y_train, cv=settings.cv, verbose=verbose)
    best = search.best_estimator_
    fitted, seconds = timed_fits(
        {
            "feature_extraction": clone(best).set_params(mode="feature_extraction"),
            "full": clone(best).set_params(mode="full", lr=best.lr * FULL_LR_FACTOR),
        },
        X_train, y_train, desc="modes", verbose=verbose,
    )
    fitted["repurpose"], seconds["repurpose"] = best, search.refit_time_
    modes = pd.DataFrame([
        {"mode": mode, "lr": fitted[mode].lr, "score_mean": fitted[mode].score(X_test, y_test),
         "fit_time": seconds[mode]}
        for mode in MODES
    ])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_pictures(out, fitted, modes, X_test, y_test)
    results = {
        "settings": asdict(settings) | {"backbone": base.backbone, "n_train": len(X_train), "n_test": len(X_test)},
        "search": _records(search_table(search)),
        "best_params": search.best_params_,
        "best_cv_score": float(search.best_score_),
        "test_accuracy": float(modes.set_index("mode").loc["repurpose", "score_mean"]),
        "modes": _records(modes.rename(columns={"score_mean": "test_accuracy"})),
        "seconds": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _records(table):
    """A DataFrame as a list of JSON-ready dicts (plain Python numbers)."""
    return json.loads(table.to_json(orient="records"))


def _write_pictures(out, fitted, modes, X_test, y_test):
    import matplotlib.pyplot as plt

    curves = plt.subplots(layout="constrained")[1]
    for mode in MODES:
        plot_learning_curves(fitted[mode], ax=curves, label=mode)
    curves.set_title("training loss per epoch")
    figures = {
        "learning_curves.png": curves.figure,
        "confusion_matrix.png": plot_confusion_matrix(fitted["repurpose"], X_test, y_test),
        "modes.png": plot_compare_modes(modes),
    }
    figures["confusion_matrix.png"].axes[0].set_title("repurpose, best parameters: held-out test digits")
    figures["modes.png"].axes[0].set(ylabel="test accuracy", title="the three modes: test accuracy against fit time")
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=100)
        plt.close(figure)


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
        f"  {row['mode']:<18} lr={row['lr']:<7.2g} test accuracy {row['test_accuracy']:.3f}   "
        f"fit {row['fit_time']:5.1f} s"
        for row in results["modes"]
    )
    return "\n".join([
        f"{settings['backbone']} (ImageNet weights), mode='repurpose', image_size={settings['image_size']}, "
        f"{settings['max_epochs']} epochs; {settings['n_train']} MNIST digits to train, {settings['n_test']} to test",
        f"grid search, {settings['cv']}-fold CV accuracy:",
        table,
        f"best parameters: {results['best_params']} (CV accuracy {results['best_cv_score']:.3f})",
        f"held-out test accuracy: {results['test_accuracy']:.3f}",
        f"the three modes, with the best parameters ('full' at {FULL_LR_FACTOR:g} x lr):",
        modes,
        f"wrote {', '.join(FILES)} to {out_dir} in {results['seconds']:.0f} s",
    ])
