"""Every mode side by side on one data set: held-out accuracy (mean of seeds), fit time, parameters, file size.

The measurements of issues 15 and 16, in one resumable script::

    OMP_NUM_THREADS=1 python benchmarks/modes_table.py mnist --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/modes_table.py text --seeds 0 1 2 --cv
    python benchmarks/modes_table.py text --table      # the tables, from what is already recorded

- ``mnist``: EfficientNet-Lite0, 1,000 training and 1,000 held-out MNIST digits per seed (disjoint
  draws of ``skft.datasets.load_mnist(2000, seed=seed)``) at 64 px, 3 epochs.
- ``text``: all-MiniLM-L6-v2, Rotten Tomatoes fresh vs rotten, 2,000 training and 1,000 held-out
  reviews per seed (``load_movie_reviews``, shuffled with the seed), 3 epochs. Beside the modes:
  TF-IDF (word 1-2-grams, sublinear tf, ``min_df=2``) + LogisticRegression and frozen MiniLM
  embeddings + LogisticRegression, each with C chosen by 3-fold CV on the training set; zero-shot
  prompting with its prompt chosen by ``GridSearchCV`` over the issue's six candidates (the chosen
  candidate's held-out accuracy against the best candidate's there), and prompt tuning.
  ``--cv`` also cross-validates (3-fold, on the training set only) every fine-tuning candidate:
  the candidate with the best CV score is what ``GridSearchCV`` over these candidates would pick,
  and its held-out accuracy is the "skft, best by CV" row.

Each (seed, row) is appended to ``benchmarks/results_modes_<data>.jsonl`` as it finishes; rows
already there are skipped, so an interrupted run resumes. Every fit starts from an empty cache.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from skft import BackboneFeatures, FineTunedClassifier, clear_cache
from skft._compare import mean_drift, saved_file_bytes
from skft.datasets import load_mnist, load_movie_reviews

MINILM = "all-MiniLM-L6-v2"
C_VALUES = np.logspace(-2, 3, 11)
EPOCHS = 3

#: Row name -> estimator parameters. Learning rates: the image rows use lr="auto" (measured for
#: Lite0 by benchmarks/defaults_sweep.py); the text rows use values tried on seed 0 of this split.
MNIST_ROWS = {
    "feature_extraction": {"mode": "feature_extraction"},
    "repurpose (3 blocks)": {"mode": "repurpose", "trainable_layers": 3},
    "lora (3 blocks)": {"mode": "lora", "trainable_layers": 3, "lr": 1e-3},
    "lora (every block)": {"mode": "lora", "trainable_layers": None, "lr": 1e-3},
    "full": {"mode": "full"},
}
TEXT_ROWS = {
    "feature_extraction": {"mode": "feature_extraction", "lr": 1e-2, "max_epochs": 10, "batch_size": 64},
    "repurpose (2 layers)": {"mode": "repurpose", "trainable_layers": 2, "lr": 5e-4, "head_lr_scale": 10.0},
    "lora (every layer)": {"mode": "lora", "trainable_layers": None, "lr": 1e-3, "batch_size": 32},
    "full": {"mode": "full", "lr": 5e-5, "head_lr_scale": 10.0},
}
PROMPT_GRID = {
    "prompt_template": ["{label}", "A {label} movie review."],
    "label_prompts": [
        None,
        {"fresh": "a positive review", "rotten": "a negative review"},
        {"fresh": "I loved this movie.", "rotten": "I hated this movie."},
    ],
}
ZERO_SHOT = "prompt (zero-shot, chosen by CV)"
PROMPT_TUNING = {"mode": "prompt", "prompt_tokens": 8, "lr": 3e-2, "batch_size": 32}


def mnist_split(seed):
    images, labels = load_mnist(2000, seed=seed)
    return images[:1000], labels[:1000], images[1000:], labels[1000:]


def text_split(seed):
    texts, labels = load_movie_reviews()
    order = np.random.default_rng(seed).permutation(len(texts))
    train, test = order[:2000], order[2000:3000]
    return texts[train], labels[train], texts[test], labels[test]


def measure_fit(estimator, X_train, y_train, X_test, y_test):
    """Fit from an empty cache, score on held-out data; time, size and drift of the fitted model."""
    clear_cache()
    start = time.perf_counter()
    estimator.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = float(estimator.score(X_test, y_test))
    return {
        "accuracy": accuracy,
        "fit_time": fit_time,
        "predict_time": time.perf_counter() - start,
        "trainable_params": estimator.n_trainable_params_,
        "file_bytes": saved_file_bytes(estimator),
        "file_bytes_full": saved_file_bytes(estimator, full=True),
        "drift": mean_drift(estimator),
        "epochs": len(estimator.history_),
    }


def linear_baselines(X_train, y_train, X_test, y_test):
    """(name, function measuring it): TF-IDF and frozen embeddings, each into LogisticRegression, C by 3-fold CV."""
    baselines = {
        "TF-IDF + LogisticRegression": TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        "frozen MiniLM + LogisticRegression": BackboneFeatures(MINILM, device="cpu"),
    }
    for name, features in baselines.items():

        def measure(features=features):
            model = make_pipeline(features, LogisticRegressionCV(Cs=C_VALUES, cv=3, max_iter=5000))
            start = time.perf_counter()
            model.fit(X_train, y_train)
            return {"accuracy": float(model.score(X_test, y_test)), "fit_time": time.perf_counter() - start}

        yield name, measure


def zero_shot_prompting(seed, X_train, y_train, X_test, y_test):
    """GridSearchCV over the prompt candidates; every candidate's held-out accuracy beside the chosen one's."""
    base = FineTunedClassifier(MINILM, mode="prompt", batch_size=64, random_state=seed, device="cpu")
    clear_cache()
    start = time.perf_counter()
    search = GridSearchCV(base, PROMPT_GRID, cv=3).fit(X_train, y_train)
    search_time = time.perf_counter() - start
    held_out = [
        float(base.set_params(**params).fit(X_train, y_train).score(X_test, y_test))
        for params in search.cv_results_["params"]
    ]
    return {
        "accuracy": float(search.score(X_test, y_test)),
        "fit_time": search.refit_time_,
        "search_time": search_time,
        "chosen_params": search.best_params_,
        "best_held_out": max(held_out),
        "candidates": [
            {"params": repr(p), "cv": float(cv), "held_out": score}
            for p, cv, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"], held_out)
        ],
    }


def rows_for_seed(data, seed, with_cv, recorded):
    """(row name, function returning the row's measurements) for one seed, in the order they run.

    ``recorded`` maps the names of this seed's rows already measured to their measurements (prompt
    tuning starts from the zero-shot row's chosen prompt).
    """
    if data == "mnist":
        X_train, y_train, X_test, y_test = mnist_split(seed)
        common = {"image_size": 64, "max_epochs": EPOCHS, "batch_size": 32}
        candidates = MNIST_ROWS
    else:
        X_train, y_train, X_test, y_test = text_split(seed)
        common = {"backbone": MINILM, "max_epochs": EPOCHS, "batch_size": 16}
        candidates = TEXT_ROWS
        # Each row is measured only when called: rows already in the results file are skipped unfitted.
        yield from linear_baselines(X_train, y_train, X_test, y_test)
        yield ZERO_SHOT, lambda: zero_shot_prompting(seed, X_train, y_train, X_test, y_test)
        yield (
            "prompt tuning (8 tokens)",
            lambda: measure_fit(
                make(common, PROMPT_TUNING, recorded[ZERO_SHOT]["chosen_params"], seed),
                X_train,
                y_train,
                X_test,
                y_test,
            ),
        )
    for name, params in candidates.items():

        def fit_row(params=params):
            row = measure_fit(make(common, params, {}, seed), X_train, y_train, X_test, y_test)
            if with_cv:
                clear_cache()
                scores = cross_val_score(make(common, params, {}, seed), X_train, y_train, cv=3)
                row["cv"] = float(np.mean(scores))
            return row

        yield name, fit_row


def make(common, params, extra, seed):
    return FineTunedClassifier(**(common | params | extra), random_state=seed, device="cpu")


def load_rows(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def print_table(data, rows):
    """A markdown table, one line per row name: means (and spread) over the recorded seeds."""
    print("| row | seeds | held-out accuracy (mean ± std) | fit time | trained parameters | file (`save`) | drift |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in dict.fromkeys(row["row"] for row in rows):
        runs = [row for row in rows if row["row"] == name]
        accuracy = np.array([row["accuracy"] for row in runs])
        line = f"| {name} | {len(runs)} | {accuracy.mean():.3f} ± {accuracy.std():.3f} | "
        line += f"{np.mean([row['fit_time'] for row in runs]):.0f} s |"
        if "trainable_params" in runs[0]:
            drift = np.mean([row["drift"] for row in runs])
            line += f" {runs[0]['trainable_params']:,} | {runs[0]['file_bytes'] / 1e6:.2f} MB | {drift:.3f} |"
        else:
            line += " | | |"
        print(line)
    with_cv = [row for row in rows if "cv" in row]
    seeds = sorted({row["seed"] for row in with_cv})
    if data == "text" and seeds:
        picked = []
        for seed in seeds:
            best = max((row for row in with_cv if row["seed"] == seed), key=lambda row: row["cv"])
            picked.append(best["accuracy"])
            print(f"seed {seed}: best by CV {best['row']} (CV {best['cv']:.3f}), held-out {best['accuracy']:.3f}")
        print(f"skft, best by CV on the training set: {np.mean(picked):.3f} (mean of {len(picked)} seeds)")
    for row in rows:
        if row["row"] == ZERO_SHOT:
            print(f"seed {row['seed']}: prompt chosen by CV {row['chosen_params']}: held-out {row['accuracy']:.3f}, "
                  f"best candidate there {row['best_held_out']:.3f}")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=["mnist", "text"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cv", action="store_true", help="also cross-validate each fine-tuning row (text)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="ROW", help="rows not to measure, by name")
    parser.add_argument("--table", action="store_true", help="only print the tables from the results file")
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results_modes_<data>.jsonl)")
    args = parser.parse_args()
    path = args.out or Path(__file__).with_name(f"results_modes_{args.data}.jsonl")
    if not args.table:
        for seed in args.seeds:
            recorded = {row["row"]: row for row in load_rows(path) if row["seed"] == seed}
            for name, measure in rows_for_seed(args.data, seed, args.cv, recorded):
                if name in recorded or name in args.skip:
                    continue
                row = {"row": name, "seed": seed} | measure()
                recorded[name] = row
                with path.open("a") as out:
                    out.write(json.dumps(row) + "\n")
                print(f"seed {seed} {name}: accuracy {row['accuracy']:.3f}, fit {row['fit_time']:.1f} s", flush=True)
    print_table(args.data, load_rows(path))


if __name__ == "__main__":
    main()
