"""Why ``bn_trainable=False`` is the default: test accuracy with BatchNorm statistics kept or updated.

Real MNIST digits (600 train, 200 test), 64 px, EfficientNet-Lite0 (BatchNorm momentum 0.01),
``repurpose`` with 3 trainable blocks and ``full``, 5 epochs, the same seed.

Run: ``python benchmarks/bench_batchnorm.py``
"""

from skft import FineTunedClassifier
from skft.datasets import load_mnist


def main():
    images, labels = load_mnist(800, seed=1)
    train, test = slice(0, 600), slice(600, 800)
    print(f"{'mode':<28}{'bn_trainable=False':>20}{'bn_trainable=True':>20}")
    for mode, extra in (("repurpose", {"trainable_layers": 3}), ("full", {"lr": 3e-4})):
        scores = []
        for bn_trainable in (False, True):
            clf = FineTunedClassifier(
                mode=mode, image_size=64, max_epochs=5, random_state=0, bn_trainable=bn_trainable, **extra
            )
            scores.append(clf.fit(images[train], labels[train]).score(images[test], labels[test]))
        name = mode + (" (trainable_layers=3)" if "trainable_layers" in extra else " (lr=3e-4)")
        print(f"{name:<28}{scores[0]:>20.3f}{scores[1]:>20.3f}", flush=True)


if __name__ == "__main__":
    main()
