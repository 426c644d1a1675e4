"""One full fine-tuning fit: plain, through Accelerate in one process, and on two processes.

EfficientNet-Lite0 with its ImageNet weights, ``mode="full"``, on real MNIST digits (image_size 64
by default), 3 epochs. Three runs of the same fit:

1. ``device="cpu"`` in this process (its torch threads, printed);
2. ``device="accelerate"`` in this process: the overhead of the AccelerateMixin path, which must
   train the same model (the largest difference of predicted probabilities is printed);
3. ``device="accelerate"`` on ``--processes`` CPU processes started by ``torchrun`` (one torch
   thread each, gloo DistributedDataParallel), each with ``batch_size / processes`` images per
   step, so the global batch is the same. Whether every process ends with the same model is printed.

On CPUs this measures the cost and the correctness of the distributed path, not GPU speed-ups: the
processes share this machine's cores. Ratios, not absolute times, are the evidence.

Run: ``python benchmarks/bench_accelerate.py [--n 512] [--image-size 64] [--processes 2] [--epochs 3] [--lr 3e-4]``
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from skft import FineTunedClassifier
from skft.datasets import load_mnist

N_TEST = 256
WORKER_ENV = "SKFT_BENCH_ACCELERATE_WORKER"


def timed_fit(args, digits, device, batch_size):
    """Fit the benchmark's classifier on ``digits``; return seconds, test accuracy and test probabilities."""
    X, y = digits
    clf = FineTunedClassifier(
        mode="full",
        image_size=args.image_size,
        max_epochs=args.epochs,
        batch_size=batch_size,
        lr=args.lr,
        device=device,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(X[: args.n], y[: args.n])
    seconds = time.perf_counter() - start
    proba = clf.predict_proba(X[args.n :])
    return seconds, float(np.mean(clf.classes_[proba.argmax(1)] == y[args.n :])), proba


def worker(args):
    """One process of the torchrun launch: fit, then write this rank's results."""
    digits = load_mnist(args.n + N_TEST)
    seconds, accuracy, proba = timed_fit(args, digits, "accelerate", args.batch_size // args.processes)
    with open(os.path.join(args.worker, f"rank_{os.environ['RANK']}.json"), "w") as handle:
        json.dump({"seconds": seconds, "accuracy": accuracy, "proba": proba.tolist()}, handle)


def launch(args):
    """Run the fit on ``args.processes`` CPU processes; return the ranks' results and the launch's wall time."""
    with tempfile.TemporaryDirectory() as out_dir:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(args.processes),
            os.path.abspath(__file__),
        ]
        # The worker's settings travel in the environment: torchrun would read options such as --n.
        worker_args = {**vars(args), "worker": out_dir}
        env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", WORKER_ENV: json.dumps(worker_args)}
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        ranks = [json.load(open(os.path.join(out_dir, f"rank_{rank}.json"))) for rank in range(args.processes)]
    return ranks, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-4)
    if WORKER_ENV in os.environ:
        return worker(argparse.Namespace(**json.loads(os.environ[WORKER_ENV])))
    args = parser.parse_args()
    os.environ["ACCELERATE_USE_CPU"] = "1"
    print(
        f"{args.n} MNIST digits ({N_TEST} held out), {args.image_size} px, efficientnet_lite0 full, "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}; {os.cpu_count()} CPUs, this process on "
        f"{torch.get_num_threads()} torch thread(s)",
        flush=True,
    )
    digits = load_mnist(args.n + N_TEST)
    plain_time, plain_accuracy, plain_proba = timed_fit(args, digits, "cpu", args.batch_size)
    print(f"device='cpu':                      fit {plain_time:6.1f} s  accuracy {plain_accuracy:.3f}", flush=True)
    one_time, one_accuracy, one_proba = timed_fit(args, digits, "accelerate", args.batch_size)
    print(
        f"device='accelerate', 1 process:    fit {one_time:6.1f} s  accuracy {one_accuracy:.3f}  "
        f"max |proba - plain| {np.abs(one_proba - plain_proba).max():.1e}",
        flush=True,
    )
    ranks, wall = launch(args)
    fit_time = max(rank["seconds"] for rank in ranks)
    same = all(rank["proba"] == ranks[0]["proba"] for rank in ranks)
    print(
        f"device='accelerate', {args.processes} processes: fit {fit_time:6.1f} s  "
        f"accuracy {ranks[0]['accuracy']:.3f}  (launch incl. start-up {wall:.1f} s; "
        f"every process has the same model: {same})"
    )
    print(f"overhead of the Accelerate path in one process: {one_time / plain_time:.2f}x")
    print(f"speed-up of {args.processes} processes over device='cpu': {plain_time / fit_time:.2f}x")


if __name__ == "__main__":
    main()
