"""Test-time augmentation measured: held-out accuracy and predict time without and with ``tta``, one run, CPU.

Two offline sets, Lite0 at 64 px, the shipped defaults otherwise (mode="repurpose", lr="auto"),
one fit per set (``tta`` changes prediction only, so the same fitted model predicts every row):

- scikit-image's ``lfw_subset``: 100 faces and 100 non-faces (natural images, where a mirror
  image is as likely as the image), half for training, half held out, stratified;
- 1,000 MNIST digits for training, 1,000 held out (digits are not mirror-symmetric: "flip" is
  expected to hurt there; crops are what may help).

Predict time is the best of 3 calls, as a ratio to ``tta=None`` measured in the same run.

Run: ``python benchmarks/bench_tta.py`` (results appended to results_tta_cpu.txt).
"""

import pathlib
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from skft import FineTunedClassifier
from skft.datasets import load_mnist

RESULTS = pathlib.Path(__file__).with_name("results_tta_cpu.txt")
TTAS = (None, "flip", 4, 8)


def lfw():
    from skimage.data import lfw_subset

    images = (lfw_subset() * 255).round().astype(np.uint8)
    labels = np.array(["face"] * 100 + ["not a face"] * 100)
    return train_test_split(images, labels, test_size=0.5, stratify=labels, random_state=0)


def mnist():
    images, labels = load_mnist(2000, seed=0)
    return images[:1000], images[1000:], labels[:1000], labels[1000:]


def best_time(predict, X):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        predict(X)
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    torch.set_num_threads(2)
    lines = ["Lite0 64 px, repurpose, defaults; one fit per set; accuracy on held-out images; predict time / tta=None"]
    for name, (X_train, X_test, y_train, y_test) in (("lfw_subset", lfw()), ("MNIST", mnist())):
        clf = FineTunedClassifier(image_size=64, random_state=0, device="cpu").fit(X_train, y_train)
        base = None
        for tta in TTAS:
            clf.set_params(tta=tta)
            accuracy = clf.score(X_test, y_test)
            seconds = best_time(clf.predict, X_test)
            base = base or seconds
            lines.append(f"  {name:10s} tta={tta!s:5s} accuracy {accuracy:.3f}   predict time x{seconds / base:5.2f}")
    print("\n".join(lines))
    with RESULTS.open("a") as results:
        results.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
