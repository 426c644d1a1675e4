"""GPU checks for a machine with CUDA: throughput of full fine-tuning and memory over consecutive fits.

Prints images/second for ``full`` fine-tuning at 224 px with the default backbone (and
``resnet50`` with ``weights=None`` when asked) in each ``precision`` (and through Accelerate in one process
with ``--accelerate``), and the peak and left-over GPU memory after each
of 5 consecutive fits (what a grid search does). Needs CUDA; exits with a message otherwise.

Run: ``python benchmarks/gpu_checks.py [--n 512] [--epochs 2] [--backbones efficientnet_lite0 resnet50]
[--precisions fp32 bf16 fp16] [--accelerate]``
"""

import argparse
import gc
import sys
import time

import numpy as np
import torch

from skft import FineTunedClassifier


def throughput(backbone, images, labels, epochs, precision, device="cuda"):
    weights = "DEFAULT" if backbone == "efficientnet_lite0" else None
    clf = FineTunedClassifier(
        backbone=backbone,
        weights=weights,
        mode="full",
        image_size=224,
        max_epochs=1,
        batch_size=64,
        device=device,
        random_state=0,
        precision=precision,
    )
    clf.fit(images[:64], labels[:64])
    torch.cuda.synchronize()
    clf.set_params(max_epochs=epochs)
    start = time.perf_counter()
    clf.fit(images, labels)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    print(
        f"{backbone:<20} full fine-tuning, 224 px, {precision}, device={device!r}: "
        f"{epochs * len(images) / elapsed:8.0f} images/s "
        f"({elapsed:.1f} s for {epochs} epochs of {len(images)} images; last train loss "
        f"{clf.history_[-1, 'train_loss']:.3f})",
        flush=True,
    )


def memory_over_fits(images, labels, n_fits=5):
    for index in range(n_fits):
        torch.cuda.reset_peak_memory_stats()
        clf = FineTunedClassifier(
            mode="repurpose",
            trainable_layers=3,
            image_size=224,
            max_epochs=1,
            batch_size=64,
            device="cuda",
            random_state=index,
        ).fit(images, labels)
        clf.predict(images[:128])
        peak = torch.cuda.max_memory_allocated() / 2**20
        del clf
        gc.collect()
        print(
            f"fit {index + 1}: peak {peak:7.1f} MiB, allocated after the estimator is gone "
            f"{torch.cuda.memory_allocated() / 2**20:7.1f} MiB",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument(
        "--accelerate",
        action="store_true",
        help="also time device='accelerate' (one process) for the first backbone and precision",
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_checks.py needs CUDA.")
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.n, 64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.n)
    for backbone in args.backbones:
        for precision in args.precisions:
            throughput(backbone, images, labels, args.epochs, precision)
    if args.accelerate:
        throughput(args.backbones[0], images, labels, args.epochs, args.precisions[0], device="accelerate")
    memory_over_fits(images, labels)


if __name__ == "__main__":
    main()
