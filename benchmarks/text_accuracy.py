"""Accuracy on Rotten Tomatoes fresh vs rotten: skft's best mode (chosen by CV) vs the usual text baselines.

Per seed: 2,000 training and 1,000 test reviews drawn from ``load_movie_reviews``. Baselines:
TF-IDF (word 1-2-grams, sublinear tf, min_df=2) + LogisticRegression, and frozen MiniLM
embeddings (``BackboneFeatures``) + LogisticRegression, each with C chosen by 3-fold CV on the
training set. skft: ``GridSearchCV`` (3-fold, on the training set only) over the modes and
learning rates of ``--grid``; the winner, refitted on the training set, is scored on the test set.
Prints one row per seed and the mean, with the winning candidate and its cost (search and refit time).

Run: ``nice -n 5 python benchmarks/text_accuracy.py [--seeds 0 1 2] [--grid issue|small]``
"""

import argparse
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skft import BackboneFeatures, FineTunedClassifier, clear_cache
from skft.datasets import load_movie_reviews

MINILM = "all-MiniLM-L6-v2"
C_VALUES = np.logspace(-2, 3, 11)
#: The issue's search: feature extraction, the last 1-2 layers (lr 1e-4..1e-3), all layers (2e-5..1e-4).
GRIDS = {
    "issue": [
        {"mode": ["feature_extraction"], "lr": [1e-3, 1e-2], "max_epochs": [10]},
        {"mode": ["repurpose"], "trainable_layers": [1, 2], "lr": [1e-4, 1e-3]},
        {"mode": ["full"], "lr": [2e-5, 1e-4]},
    ],
    # What fits a shared 2-core CPU: one lr for feature extraction and for the last two layers.
    "small": [
        {"mode": ["feature_extraction"], "lr": [1e-2], "max_epochs": [10]},
        {"mode": ["repurpose"], "trainable_layers": [2], "lr": [5e-4]},
    ],
}


def split(seed, n_train, n_test):
    texts, labels = load_movie_reviews()
    order = np.random.default_rng(seed).permutation(len(texts))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return list(texts[train]), labels[train], list(texts[test]), labels[test]


def tfidf():
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    return make_pipeline(vectorizer, LogisticRegressionCV(Cs=C_VALUES, cv=3, max_iter=5000))


def frozen_embeddings():
    return make_pipeline(BackboneFeatures(MINILM, device="cpu"), LogisticRegressionCV(Cs=C_VALUES, cv=3, max_iter=5000))


def skft_search(seed, grid, epochs, head_lr_scale):
    estimator = FineTunedClassifier(
        MINILM, max_epochs=epochs, batch_size=16, head_lr_scale=head_lr_scale, random_state=seed, device="cpu"
    )
    return GridSearchCV(estimator, grid, cv=3)


def run_seed(seed, args):
    X_train, y_train, X_test, y_test = split(seed, args.n_train, args.n_test)
    row = {}
    for name, make in [("tfidf", tfidf), ("frozen", frozen_embeddings)]:
        start = time.perf_counter()
        row[name] = make().fit(X_train, y_train).score(X_test, y_test)
        row[f"{name}_time"] = time.perf_counter() - start
        print(f"seed {seed}: {name} {row[name]:.3f} ({row[f'{name}_time']:.0f} s)", flush=True)
    clear_cache()
    search = skft_search(seed, GRIDS[args.grid], args.epochs, args.head_lr_scale)
    start = time.perf_counter()
    search.fit(X_train, y_train)
    row["skft_time"] = time.perf_counter() - start
    row["skft"] = search.score(X_test, y_test)
    row["winner"] = {k: v for k, v in search.best_params_.items()}
    row["refit_time"] = search.refit_time_
    row["cv"] = search.best_score_
    table = sorted(zip(search.cv_results_["mean_test_score"], map(str, search.cv_results_["params"])), reverse=True)
    print(
        f"seed {seed}: TF-IDF {row['tfidf']:.3f} ({row['tfidf_time']:.0f} s)  frozen MiniLM + LR {row['frozen']:.3f} "
        f"({row['frozen_time']:.0f} s)  skft {row['skft']:.3f} (CV {row['cv']:.3f}; winner {row['winner']}; "
        f"search {row['skft_time']:.0f} s, refit {row['refit_time']:.0f} s)",
        flush=True,
    )
    for score, params in table:
        print(f"    CV {score:.3f}  {params}", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="issue")
    parser.add_argument("--epochs", type=int, default=3, help="max_epochs of the skft candidates (default: 3)")
    parser.add_argument(
        "--head-lr-scale", type=float, default=10.0, help="head_lr_scale of the skft candidates (default: %(default)s)"
    )
    args = parser.parse_args()
    print(
        f"Rotten Tomatoes fresh vs rotten, {args.n_train} train / {args.n_test} test, seeds {args.seeds}, "
        f"skft grid {args.grid!r} {GRIDS[args.grid]}, max_epochs={args.epochs}, batch_size=16, "
        f"head_lr_scale={args.head_lr_scale}",
        flush=True,
    )
    rows = [run_seed(seed, args) for seed in args.seeds]
    means = {name: np.mean([row[name] for row in rows]) for name in ["tfidf", "frozen", "skft"]}
    print(
        f"mean of {len(rows)} seed(s): TF-IDF + LR {means['tfidf']:.3f}  frozen MiniLM + LR {means['frozen']:.3f}  "
        f"skft (best by CV) {means['skft']:.3f}  (+{100 * (means['skft'] - means['tfidf']):.1f} points over TF-IDF, "
        f"+{100 * (means['skft'] - means['frozen']):.1f} over frozen embeddings)",
        flush=True,
    )


if __name__ == "__main__":
    main()
