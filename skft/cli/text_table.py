"""Texts (and labels) read from a CSV file for ``skft fit`` and ``skft predict`` with a text backbone.

Bad files raise ``ValueError`` with a one-line message, which the command reports as a usage error.
"""

import difflib
from pathlib import Path

import numpy as np


def read_csv_columns(path, columns, option_names):
    """Read the named columns of a CSV file as str (empty cells stay empty strings).

    Parameters
    ----------
    path : str or Path
    columns : list of str
        The columns to read.
    option_names : list of str
        The option that named each column (``--text-column``, ...), for the messages.

    Returns
    -------
    list of numpy.ndarray of str (object dtype)
        One per column, in file order.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file; a text backbone reads a CSV file with a text column")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise ValueError(f"cannot read {str(path)!r} as CSV ({type(error).__name__}: {error})") from None
    present = [str(name) for name in frame.columns]
    for column, option in zip(columns, option_names):
        if column not in present:
            close = difflib.get_close_matches(column, present, n=1, cutoff=0.6)
            hint = f"; did you mean {option} {close[0]}?" if close else f"; choose one with {option}"
            raise ValueError(f"{option} {column!r} is not a column of {str(path)!r}, whose columns are {present}{hint}")
    if frame.empty:
        raise ValueError(f"{str(path)!r} has no rows")
    return [frame[column].to_numpy(dtype=object) for column in columns]


def texts_and_labels(path, text_column, label_column, min_per_class):
    """The texts and labels of a CSV file, checked for a cross-validated search.

    Parameters
    ----------
    path : str or Path
    text_column, label_column : str
    min_per_class : int
        The fewest rows a label may have (the number of cross-validation folds).

    Returns
    -------
    texts : numpy.ndarray of str, shape (N,)
    labels : numpy.ndarray of str, shape (N,)
    """
    texts, labels = read_csv_columns(path, [text_column, label_column], ["--text-column", "--label-column"])
    empty = np.flatnonzero(labels == "")
    if len(empty):
        raise ValueError(
            f"{len(empty)} row(s) of {str(path)!r} have no label in column {label_column!r} (first: data row "
            f"{empty[0] + 1}); fill them in or remove those rows"
        )
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"column {label_column!r} of {str(path)!r} holds {len(classes)} label(s); it needs at least 2")
    small = {str(name): int(count) for name, count in zip(classes, counts) if count < min_per_class}
    if small:
        raise ValueError(f"labels {small} have fewer rows than the {min_per_class} cross-validation folds")
    return texts, labels
