"""Cross-validation: score a fine-tuned classifier on stratified folds, with fit times.

Offline, about a minute on CPU (``SKFT_QUICK=1``: a few seconds).
"""

import os

from sklearn.model_selection import StratifiedKFold, cross_validate

from skft import FineTunedClassifier
from skft.datasets import load_mnist


def main(quick=False):
    """Cross-validate ``mode="feature_extraction"`` on real digits; print and return the per-fold scores."""
    images, labels = load_mnist(150 if quick else 1000)
    folds = StratifiedKFold(n_splits=3 if quick else 5, shuffle=True, random_state=0)
    clf = FineTunedClassifier(
        mode="feature_extraction", image_size=64, max_epochs=3 if quick else 5, lr=3e-3, random_state=0
    )
    results = cross_validate(clf, images, labels, cv=folds, scoring="accuracy")
    for fold, (score, seconds) in enumerate(zip(results["test_score"], results["fit_time"])):
        print(f"fold {fold}: accuracy {score:.3f}, fit {seconds:.1f} s")
    print(
        f"mean accuracy {results['test_score'].mean():.3f} +/- {results['test_score'].std():.3f} "
        f"({folds.get_n_splits()} folds of {len(images)} digits)"
    )
    return results["test_score"]


if __name__ == "__main__":
    main(quick=os.environ.get("SKFT_QUICK") == "1")
