"""The same grid search with ``n_jobs=1`` and on a local Dask cluster of worker processes.

EfficientNet-Lite0 with its ImageNet weights in ``repurpose`` mode on ~200 real MNIST digits
(image_size 64 by default), a 2x2 grid over lr and batch_size, 3-fold CV, 2 epochs. Prints the
wall time of each search, their ratio and both best parameters. The cluster's start-up is timed
apart; each worker runs torch on one thread (Dask sets ``OMP_NUM_THREADS=1``), while the serial
search uses this process's torch threads (printed).

Run: ``python benchmarks/bench_dask.py [--n 200] [--image-size 64] [--workers 2]``
"""

import argparse
import os
import time

import joblib
import torch
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV

from skft import FineTunedClassifier
from skft.datasets import load_mnist

GRID = {"lr": [1e-3, 3e-3], "batch_size": [16, 32]}


def timed_search(estimator, X, y):
    start = time.perf_counter()
    search = GridSearchCV(estimator, GRID, cv=3).fit(X, y)
    return time.perf_counter() - start, search


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    X, y = load_mnist(args.n)
    estimator = FineTunedClassifier(
        mode="repurpose", image_size=args.image_size, max_epochs=2, device="cpu", random_state=0
    )
    print(
        f"{args.n} MNIST digits, {args.image_size} px, repurpose, grid {GRID}, 3-fold, 2 epochs; "
        f"{os.cpu_count()} CPUs, serial search on {torch.get_num_threads()} torch thread(s)",
        flush=True,
    )
    serial_time, serial = timed_search(estimator, X, y)
    print(
        f"n_jobs=1:            {serial_time:6.1f} s  best {serial.best_params_} ({serial.best_score_:.3f})", flush=True
    )
    start = time.perf_counter()
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(args.workers)
        startup = time.perf_counter() - start
        with joblib.parallel_backend("dask"):
            dask_time, on_dask = timed_search(estimator, X, y)
    print(
        f"Dask, {args.workers} workers:     {dask_time:6.1f} s  best {on_dask.best_params_} "
        f"({on_dask.best_score_:.3f})  (cluster start-up {startup:.1f} s, not included)"
    )
    print(f"ratio n_jobs=1 / Dask: {serial_time / dask_time:.2f}x")


if __name__ == "__main__":
    main()
