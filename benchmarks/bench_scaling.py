"""Fit time per mode as the data grows: the per-image cost must stay flat (linear growth).

Run: ``python benchmarks/bench_scaling.py [--sizes 500 1000 2000 4000] [--image-size 64] [--epochs 2]``
"""

import argparse
import time

from skft import FineTunedClassifier, clear_cache

from _peers import digits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["feature_extraction", "repurpose", "full"])
    args = parser.parse_args()
    images, labels = digits(max(args.sizes))
    print(f"EfficientNet-Lite0, {args.image_size} px, {args.epochs} epochs, one fit per cell (cold cache)")
    print(f"{'mode':<20}" + "".join(f"{n:>16}" for n in args.sizes))
    for mode in args.modes:
        cells = []
        for n in args.sizes:
            clear_cache()
            start = time.perf_counter()
            FineTunedClassifier(mode=mode, image_size=args.image_size, max_epochs=args.epochs, random_state=0).fit(
                images[:n], labels[:n]
            )
            elapsed = time.perf_counter() - start
            cells.append(f"{elapsed:6.1f}s {1000 * elapsed / n:5.1f}ms")
        print(f"{mode:<20}" + "".join(f"{cell:>16}" for cell in cells), flush=True)
    print("each cell: fit time and time per image")


if __name__ == "__main__":
    main()
