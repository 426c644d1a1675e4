"""A folder of image files: write PNGs of digits, fit with ``skft fit``, predict new files with ``skft predict``.

The commands run exactly as in a terminal (here through ``python -m skft``). Offline, about two
minutes on CPU (``SKFT_QUICK=1``: well under a minute).
"""

import csv
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from skft.datasets import load_mnist


def write_pngs(folder, images, names):
    """Write each image as ``folder/<name>.png`` (names may contain a class subfolder)."""
    for image, name in zip(images, names):
        path = Path(folder) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def skft(*args):
    """Run the ``skft`` command, echo it, and return what it prints on stdout."""
    print("$ skft " + " ".join(map(str, args)))
    return subprocess.run(
        [sys.executable, "-m", "skft", *map(str, args)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout


def main(quick=False):
    """Fit on a folder of digit PNGs (one subfolder per class), predict a folder of new ones; return the accuracy."""
    images, labels = load_mnist(200 if quick else 1000)
    digits = [label.split()[-1] for label in labels]  # "digit 7" -> "7": the class subfolder
    n_train = len(images) * 3 // 4
    with tempfile.TemporaryDirectory() as tmp:
        train, new, model = Path(tmp, "train"), Path(tmp, "new"), Path(tmp, "digits.model")
        write_pngs(train, images[:n_train], [f"{digit}/{i}" for i, digit in enumerate(digits[:n_train])])
        write_pngs(new, images[n_train:], [f"{i}" for i in range(n_train, len(images))])
        print(
            skft(
                "fit",
                train,
                "-o",
                model,
                "--image-size",
                32 if quick else 64,
                "--epochs",
                3 if quick else 4,
                "--grid",
                "lr=1e-3,3e-3",
                "--cv",
                2,
            )
        )
        predictions = list(csv.DictReader(io.StringIO(skft("predict", model, new))))
    truth = {f"{i}.png": digit for i, digit in enumerate(digits)}
    correct = [row["label"] == truth[Path(row["path"]).name] for row in predictions]
    first = [(Path(row["path"]).name, row["label"], row["probability"]) for row in predictions[:3]]
    print(f"first predictions (file, label, probability): {first}")
    print(f"accuracy on {len(correct)} new files: {sum(correct) / len(correct):.3f}")
    return sum(correct) / len(correct)


if __name__ == "__main__":
    main(quick=os.environ.get("SKFT_QUICK") == "1")
