"""A Pipeline: crop the empty border of MNIST digits, then fine-tune; set a step's parameter by name.

Offline, about a minute on CPU (``SKFT_QUICK=1``: a few seconds).
"""

import os

from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skft import FineTunedClassifier
from skft.datasets import load_mnist


def crop_border(images, border=4):
    """Cut ``border`` pixels off every side (MNIST digits sit inside a 20 x 20 box)."""
    return images[:, border:-border, border:-border]


def main(quick=False):
    """Fit the pipeline on real digits; print and return its held-out accuracy."""
    images, labels = load_mnist(200 if quick else 1000)
    X_train, X_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, stratify=labels, random_state=0)
    pipeline = make_pipeline(
        FunctionTransformer(crop_border),
        FineTunedClassifier(mode="repurpose", image_size=64, max_epochs=2 if quick else 4, random_state=0),
    )
    pipeline.set_params(finetunedclassifier__batch_size=16)  # <step name>__<parameter>, as for any sklearn pipeline
    accuracy = pipeline.fit(X_train, y_train).score(X_test, y_test)
    print(
        f"crop 28 -> {crop_border(X_test[:1]).shape[1]} px, then fine-tune: held-out accuracy {accuracy:.3f} "
        f"on {len(X_test)} digits"
    )
    return accuracy


if __name__ == "__main__":
    main(quick=os.environ.get("SKFT_QUICK") == "1")
