"""What the identity costs per fit: the prefix key, the feature-size memo's key and the base record.

For EfficientNet-Lite0 (300 MNIST digits, 64 px) and all-MiniLM-L6-v2 (300 reviews), in
``feature_extraction`` and ``repurpose`` mode, it times one warm fit (weights read and activations
cached before the clock starts, as in every grid-search fit after the first), then, on a network
built as that fit builds it, each digest the fit takes: the prefix key (warm: tensor digests
remembered; cold: a network of its own, every byte hashed), the key of the feature-size memo, and the
record of the pretrained base a changes-only file leaves out (where this skft has one). Each is
printed in milliseconds and as a fraction of the warm fit, measured in this one run. Run it on two
versions of skft (``PYTHONPATH=<checkout>``) to compare them.

Run: ``python benchmarks/bench_key_cost.py [--n 300] [--repeats 20]``
"""

import argparse
import statistics
import time

import torch

from skft import FineTunedClassifier
from skft._cache import prefix_key
from skft._nn.assembly import feature_size

try:
    from skft._nn.pretrained_base import base_digests
except ImportError:  # an skft before the base record
    base_digests = None

from bench_text import reviews

from _peers import digits


def _median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def costs(backbone, mode, X, y, repeats, **params):
    clf = FineTunedClassifier(
        backbone, mode=mode, trainable_layers=1, max_epochs=5, random_state=0, device="cpu", **params
    )
    clf.fit(X, y)
    fit = _median_seconds(lambda: clf.fit(X, y), 3)
    shared = clf._build_network(share_modules=True)
    timings = {
        "prefix key (warm)": _median_seconds(lambda: prefix_key(shared, "fp32"), repeats),
        "prefix key (cold)": _median_seconds(lambda: prefix_key(clf._build_network(), "fp32"), 3)
        - _median_seconds(clf._build_network, 3),
        "feature-size key": _median_seconds(lambda: feature_size(shared), repeats),
    }
    if base_digests is not None:
        timings["base record"] = _median_seconds(lambda: base_digests(shared), repeats)
    shown = "  ".join(f"{name} {seconds * 1e3:7.2f} ms ({seconds / fit:6.2%})" for name, seconds in timings.items())
    print(f"{backbone:<18} {mode:<18} warm fit {fit:6.2f} s  {shown}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads, {args.n} samples, medians of {args.repeats} (fits: of 3)")
    images, labels = digits(args.n)
    texts, text_labels = reviews(args.n)
    for mode in ("feature_extraction", "repurpose"):
        costs("efficientnet_lite0", mode, images, labels, args.repeats, image_size=64)
        costs("all-MiniLM-L6-v2", mode, texts, text_labels, args.repeats)


if __name__ == "__main__":
    main()
