"""Checking that ``X`` is what a text backbone reads: a sequence of str, one per sample."""

import math
import numbers
import os

import numpy as np

_FIX = "A text backbone takes X as a sequence of str, one text per sample (a list, a 1-D array or a pandas Series)."


def check_texts(X, name="X"):
    """Validate texts and return them as a list of str.

    Parameters
    ----------
    X : sequence of str
        A list, tuple, 1-D numpy array (of str or object) or pandas Series of str. Empty strings
        are allowed.
    name : str, default="X"
        The argument's name, used in error messages.

    Returns
    -------
    list of str

    Raises
    ------
    TypeError
        For a single str, bytes, or items that are not str.
    ValueError
        For an array of numbers (images, a table), a 2-D array or DataFrame of str, missing values
        (None, NaN), a text that is not valid Unicode (a lone surrogate), or no texts at all.
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} is a single {type(X).__name__} ({_shorten(X)}). {_FIX} E.g. {name}=[text].")
    if hasattr(X, "columns") and hasattr(X, "iloc"):
        raise ValueError(
            f"{name} is a DataFrame with columns {list(X.columns)[:5]}. {_FIX} Pass one column, e.g. "
            f"{name}[{_first_column(X)!r}]."
        )
    if hasattr(X, "to_numpy"):
        X = X.to_numpy(dtype=object)
    array = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if array.ndim != 1 or array.dtype.kind in "biufc":
        _raise_for_shape(array, name)
    texts = [_check_item(item, index, name) for index, item in enumerate(array.tolist())]
    if not texts:
        raise ValueError(f"{name} holds no texts. {_FIX}")
    return texts


def _raise_for_shape(array, name):
    if array.dtype.kind in "US" or (array.dtype == object and array.size and isinstance(array.flat[0], str)):
        raise ValueError(
            f"{name} is a {array.ndim}-D array of str with shape {array.shape}. {_FIX} Pass one column, e.g. "
            f"{name}[:, 0], or join each row's texts into one str."
        )
    if array.dtype.kind in "biufc" or array.ndim >= 3:
        # A ValueError, as scikit-learn raises for an array of the wrong shape or dtype.
        raise ValueError(
            f"{name} looks like images or numbers (an array of shape {array.shape}, dtype {array.dtype}), but the "
            f"backbone is a text encoder. {_FIX} For images, choose an image backbone (see skft.list_backbones())."
        )
    raise ValueError(f"{name} has shape {array.shape}. {_FIX}")


def _check_item(item, index, name):
    if isinstance(item, str):
        _check_encodable(item, index, name)
        return str(item)
    if item is None or (isinstance(item, numbers.Real) and math.isnan(item)) or _is_pandas_na(item):
        raise ValueError(
            f"{name}[{index}] is missing ({item!r}). Texts cannot be missing: drop those samples or replace them "
            "with '' (an empty text)."
        )
    if isinstance(item, (bytes, bytearray)):
        raise TypeError(
            f"{name}[{index}] is bytes ({_shorten(item)}), not str. Decode the texts first, e.g. "
            f"[b.decode('utf-8') for b in {name}]."
        )
    looks_like_image = isinstance(item, (os.PathLike, np.ndarray)) or type(item).__module__.startswith("PIL")
    hint = " For images, choose an image backbone (see skft.list_backbones())." if looks_like_image else ""
    raise TypeError(f"{name}[{index}] is of type {type(item).__name__} ({_shorten(item)}), not str. {_FIX}{hint}")


def _check_encodable(text, index, name):
    """Refuse a str that is no valid Unicode (a lone surrogate): tokenizers cannot read it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{name}[{index}] holds a lone surrogate ({text[error.start : error.end]!r} at character {error.start}), "
            "which is not valid Unicode text (the trace of bytes decoded with errors='surrogateescape', or of a "
            "broken decode). Read the texts with their right encoding, or replace what cannot be encoded, e.g. "
            "text.encode('utf-8', 'replace').decode('utf-8')."
        ) from None


def _is_pandas_na(item):
    return type(item).__name__ in ("NAType", "NaTType")


def _shorten(item):
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_column(frame):
    return frame.columns[0] if len(frame.columns) else "text"
