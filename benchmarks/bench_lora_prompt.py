"""LoRA and prompting beside the other modes (issue 16's measurements), small enough for a shared CPU.

    python benchmarks/bench_lora_prompt.py mnist    # EfficientNet-Lite0, MNIST 1,000 / 1,000 at 64 px
    python benchmarks/bench_lora_prompt.py prompts  # MiniLM, Rotten Tomatoes 2,000 / 1,000

Prints one row per configuration: accuracy, fit time, trainable parameters, and (mnist) the size of
the saved model file.
"""

import os
import sys
import tempfile
import time

import numpy as np
from sklearn.model_selection import GridSearchCV

import skft
from skft import FineTunedClassifier
from skft.datasets import load_mnist, load_movie_reviews


def trainable_params(clf):
    network = clf.net_.module_
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def file_bytes(clf, **save_kwargs):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.skft")
        clf.save(path, **save_kwargs)
        return os.path.getsize(path)


def mnist(epochs=3, seed=0):
    X, y = load_mnist(2000, seed=seed)
    train, test = slice(0, 1000), slice(1000, 2000)
    configs = [
        ("feature_extraction", {"mode": "feature_extraction", "lr": 1e-3}),
        ("repurpose tl=3", {"mode": "repurpose", "trainable_layers": 3, "lr": 1e-3}),
        ("lora tl=3", {"mode": "lora", "trainable_layers": 3, "lr": 1e-3}),
        ("lora every block", {"mode": "lora", "trainable_layers": None, "lr": 1e-3}),
        ("full", {"mode": "full", "lr": 3e-4}),
    ]
    print("config | accuracy | fit_s | trainable_params | file_bytes (changed only) | file_bytes full=True")
    for name, params in configs:
        skft.clear_cache()
        clf = FineTunedClassifier(
            image_size=64, max_epochs=epochs, batch_size=32, device="cpu", random_state=seed, **params
        )
        start = time.perf_counter()
        clf.fit(X[train], y[train])
        fit_s = time.perf_counter() - start
        accuracy = clf.score(X[test], y[test])
        sizes = [file_bytes(clf)]
        try:
            sizes.append(file_bytes(clf, full=True))
        except TypeError:
            sizes.append(None)
        print(f"{name} | {accuracy:.3f} | {fit_s:.1f} | {trainable_params(clf)} | {sizes[0]} | {sizes[1]}", flush=True)


def prompts(seed=0):
    texts, labels = load_movie_reviews(download=False)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    train, test = order[:2000], order[2000:3000]
    grid = {
        "prompt_template": ["{label}", "A {label} movie review."],
        "label_prompts": [
            None,
            {"fresh": "a positive review", "rotten": "a negative review"},
            {"fresh": "I loved this movie.", "rotten": "I hated this movie."},
        ],
    }
    base = dict(backbone="all-MiniLM-L6-v2", mode="prompt", device="cpu", random_state=seed, batch_size=64)
    start = time.perf_counter()
    search = GridSearchCV(FineTunedClassifier(**base), grid, cv=3).fit(texts[train], labels[train])
    print(f"grid search: {time.perf_counter() - start:.1f} s; chosen {search.best_params_}", flush=True)
    print("candidate | cv mean | held-out accuracy")
    held_out = []
    for params, cv_score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        score = FineTunedClassifier(**base, **params).fit(texts[train], labels[train]).score(texts[test], labels[test])
        held_out.append(score)
        print(f"{params} | {cv_score:.3f} | {score:.3f}", flush=True)
    print(f"CV-chosen on held-out: {search.score(texts[test], labels[test]):.3f}; best there: {max(held_out):.3f}")
    best = search.best_params_
    for name, params in [
        ("prompt tuning k=8", dict(base, **best, prompt_tokens=8, max_epochs=3, lr=3e-2, batch_size=32)),
        ("feature_extraction", dict(base, mode="feature_extraction", max_epochs=10, lr=1e-2)),
        ("lora every block", dict(base, mode="lora", trainable_layers=None, max_epochs=3, lr=1e-3, batch_size=32)),
    ]:
        skft.clear_cache()
        start = time.perf_counter()
        clf = FineTunedClassifier(**params).fit(texts[train], labels[train])
        fit_s = time.perf_counter() - start
        print(
            f"{name} | {clf.score(texts[test], labels[test]):.3f} | {fit_s:.1f} s | {trainable_params(clf)} params",
            flush=True,
        )


if __name__ == "__main__":
    {"mnist": mnist, "prompts": prompts}[sys.argv[1]]()
