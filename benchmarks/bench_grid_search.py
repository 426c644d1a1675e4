"""Grid search with a frozen backbone: skft vs plain skorch vs compute-once-then-skorch.

The same 300 real MNIST digits, EfficientNet-Lite0 with its ImageNet weights, the same grid
(lr x batch_size, 3-fold CV, 5 epochs), at 64 px and 128 px, for ``feature_extraction`` and
``repurpose`` with the last block trainable. Prints wall time, best CV accuracy and ratios
measured in this one run. Then skft's ``full`` mode against a hand-written PyTorch loop.

Like with like: every contender runs on one device (``--device``, CUDA when available), and each
reads the pretrained weights once per process, before the clock starts (skft keeps them; the
peers copy the blocks they read once). The headline is ``skft/reference``: skft against the
compute-once reference (frozen activations computed once by hand, then plain skorch on them),
the floor a careful user reaches by hand; ``peer/skft`` is skft against plain skorch.

Run: ``python benchmarks/bench_grid_search.py [--sizes 64 128] [--n 300] [--device cpu]``
"""

import argparse
import time

import torch
from sklearn.model_selection import GridSearchCV

from skft import FineTunedClassifier, clear_cache

from _peers import (
    PeerNetwork,
    RestNetwork,
    digits,
    frozen_features,
    hand_written_fit,
    preprocess,
    read_pretrained_weights,
    skorch_peer,
)

GRID = {"lr": [1e-3, 3e-3], "batch_size": [16, 32]}
EPOCHS = 5
N_BLOCKS = 9


def _timed_search(estimator, X, y, grid):
    start = time.perf_counter()
    search = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    return time.perf_counter() - start, search.best_score_


def _skorch(module, device, **kwargs):
    return skorch_peer(module, max_epochs=EPOCHS, device=device, **kwargs)


def compare(images, labels, size, mode, device):
    n_frozen = N_BLOCKS if mode == "feature_extraction" else N_BLOCKS - 1
    torch.manual_seed(0)
    clear_cache()
    skft_time, skft_score = _timed_search(
        FineTunedClassifier(
            mode=mode, trainable_layers=1, image_size=size, max_epochs=EPOCHS, random_state=0, device=device
        ),
        images,
        labels,
        GRID,
    )
    X = preprocess(images, size)
    peer_time, peer_score = _timed_search(_skorch(PeerNetwork, device, module__n_frozen=n_frozen), X, labels, GRID)
    start = time.perf_counter()
    if mode == "feature_extraction":
        features = frozen_features(n_frozen, X, device).mean(dim=(2, 3))
        ref_module = torch.nn.Linear(1280, 10)
        ref_time, ref_score = _timed_search(_skorch(ref_module, device), features, labels, GRID)
    else:
        features = frozen_features(n_frozen, X, device)
        ref_time, ref_score = _timed_search(
            _skorch(RestNetwork, device, module__n_frozen=n_frozen), features, labels, GRID
        )
    ref_time = time.perf_counter() - start
    print(
        f"{size:>4} px  {mode:<18} skft {skft_time:6.1f} s ({skft_score:.3f})  peer {peer_time:6.1f} s "
        f"({peer_score:.3f})  reference {ref_time:6.1f} s ({ref_score:.3f})  skft/reference "
        f"{skft_time / ref_time:4.2f}x  peer/skft {peer_time / skft_time:5.1f}x",
        flush=True,
    )


def compare_full(images, labels, size, device, epochs=2):
    X = preprocess(images, size)
    start = time.perf_counter()
    hand_written_fit(X, labels, n_frozen=0, lr=1e-4, batch_size=32, epochs=epochs, seed=0, device=device)
    hand = time.perf_counter() - start
    start = time.perf_counter()
    FineTunedClassifier(
        mode="full", image_size=size, max_epochs=epochs, batch_size=32, lr=1e-4, random_state=0, device=device
    ).fit(images, labels)
    ours = time.perf_counter() - start
    print(
        f"{size:>4} px  full mode, {epochs} epochs: skft {ours:.1f} s, hand-written loop {hand:.1f} s, "
        f"overhead {ours / hand:.2f}x",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--modes", nargs="+", default=["feature_extraction", "repurpose"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    images, labels = digits(args.n)
    read_pretrained_weights(images[:8], labels[:8], args.device)
    print(
        f"{args.n} MNIST digits, EfficientNet-Lite0, grid {GRID}, 3-fold CV, {EPOCHS} epochs, "
        f"{torch.get_num_threads()} threads, device {args.device}"
    )
    for size in args.sizes:
        for mode in args.modes:
            compare(images, labels, size, mode, args.device)
    compare_full(images, labels, args.sizes[0], args.device)


if __name__ == "__main__":
    main()
