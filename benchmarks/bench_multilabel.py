"""Multi-label benchmark: skft against a per-label LogisticRegression on frozen Lite0 features.

The data are real MNIST digits composed offline: every image is a 2 x 2 grid of cells, 1 to 3
of which hold a digit (the rest stay black), and its labels are the set of digits it shows
(10 labels, a binary indicator matrix). Train and test images are built from disjoint digits.

Contenders, same images, one run, CPU:
- skft: ``FineTunedClassifier`` (shipped defaults: mode="repurpose", lr="auto") with ``threshold``
  0.5 and ``"auto"``;
- the peer: ``BackboneFeatures`` (the frozen network's pooled features) then one
  ``LogisticRegression`` per label (``MultiOutputClassifier``), standardised features, C=1.

Run: ``python benchmarks/bench_multilabel.py`` (results appended to results_multilabel_cpu.txt).
"""

import json
import pathlib
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skft import BackboneFeatures, FineTunedClassifier
from skft.datasets import load_mnist

RESULTS = pathlib.Path(__file__).with_name("results_multilabel_cpu.txt")
N_TRAIN, N_TEST, IMAGE_SIZE, SEED = 1000, 500, 64, 0


def composed_digits(images, labels, n, rng):
    """``n`` 56 x 56 images of 1 to 3 digits in a 2 x 2 grid, and the indicator matrix of the digits they show."""
    digits = np.array([int(label.split()[-1]) for label in labels])
    composed = np.zeros((n, 56, 56), dtype=np.uint8)
    indicator = np.zeros((n, 10), dtype=int)
    for index in range(n):
        cells = rng.choice(4, size=rng.integers(1, 4), replace=False)
        for cell in cells:
            pick = rng.integers(len(images))
            rows, cols = divmod(int(cell), 2)
            composed[index, rows * 28 : (rows + 1) * 28, cols * 28 : (cols + 1) * 28] = images[pick]
            indicator[index, digits[pick]] = 1
    return composed, indicator


def main():
    torch.set_num_threads(2)
    rng = np.random.default_rng(SEED)
    images, labels = load_mnist(5000, seed=SEED)
    X_train, Y_train = composed_digits(images[:2500], labels[:2500], N_TRAIN, rng)
    X_test, Y_test = composed_digits(images[2500:], labels[2500:], N_TEST, rng)
    rows = {}
    for name, threshold in (("skft threshold=0.5", 0.5), ("skft threshold='auto'", "auto")):
        start = time.perf_counter()
        clf = FineTunedClassifier(image_size=IMAGE_SIZE, threshold=threshold, random_state=SEED, device="cpu")
        clf.fit(X_train, Y_train)
        rows[name] = (f1_score(Y_test, clf.predict(X_test), average="samples"), time.perf_counter() - start)
    start = time.perf_counter()
    features = BackboneFeatures(image_size=IMAGE_SIZE, device="cpu")
    peer = make_pipeline(features, StandardScaler(), MultiOutputClassifier(LogisticRegression(max_iter=2000)))
    peer.fit(X_train, Y_train)
    rows["frozen features + per-label LogisticRegression"] = (
        f1_score(Y_test, peer.predict(X_test), average="samples"),
        time.perf_counter() - start,
    )
    lines = [
        f"MNIST digits composed 1-3 per 2x2 grid, 10 labels; {N_TRAIN} train / {N_TEST} test images, "
        f"Lite0 at {IMAGE_SIZE} px, CPU, seed {SEED}"
    ]
    lines += [
        f"  {name:48s} f1_samples {f1:.3f}   fit+predict {seconds:6.1f} s" for name, (f1, seconds) in rows.items()
    ]
    print("\n".join(lines))
    with RESULTS.open("a") as results:
        results.write("\n".join(lines) + "\n" + json.dumps({k: v[0] for k, v in rows.items()}) + "\n")


if __name__ == "__main__":
    main()
