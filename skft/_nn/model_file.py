"""The model-file format: one safetensors file that loading can never run code from.

A model file holds a network's state dict as tensors and, under the metadata key ``"skft"``, a JSON
document (format version, skft version and whatever the estimator stores: its class, parameters,
fitted attributes, preprocessing, training history). Reading it parses a fixed binary header, JSON and
raw tensor bytes; no pickle is involved, so a file from a stranger cannot run code. Values are
stored as plain JSON data (:func:`to_json`); what is not plain data is refused at save time rather
than dropped. What an estimator stores and how it rebuilds itself is the estimator's business
(:mod:`skft._saving`); this module only writes and reads the file.
"""

import json
import os
from importlib.metadata import PackageNotFoundError, version
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import atomic_write

FORMAT = "skft-model"
#: Bumped whenever a file written by this version cannot be read by older ones.
#: 2: a file may store only the tensors a fit changed, with the digest of the pretrained weights.
#: 3: such a file records, per block, the digest of the pretrained tensors it leaves out, taken when the fit started.
FORMAT_VERSION = 3
METADATA_KEY = "skft"


def write_model_file(path, tensors, document):
    """Write ``tensors`` and ``document`` to ``path`` atomically (a failed write keeps any previous file).

    Parameters
    ----------
    path : str or path-like
    tensors : dict of str to Tensor
        Each with storage of its own (see :func:`plain_tensors`).
    document : dict
        JSON data; the format, its version and the skft version are added.
    """
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "skft_version": skft_version(), **document}
    with atomic_write(path) as tmp:
        save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(document)})


def skft_version():
    """The installed skft's version, as written into model files.

    Returns
    -------
    str
    """
    try:
        return version("skft")
    except PackageNotFoundError:
        return "unknown"


def to_json(value, name, fix=None):
    """Encode a parameter or fitted attribute as JSON data, refusing anything that is not plain data.

    Parameters
    ----------
    value : object
    name : str
        The parameter or attribute, for the message.
    fix : str, optional
        What the message tells the user to pass instead.

    Returns
    -------
    object
        JSON data; tuples, dicts, arrays, paths and optimizer classes become one-key tagged dicts.

    Raises
    ------
    TypeError
        Naming ``name`` and saying what to pass instead.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, list):
        return [to_json(item, name, fix) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [to_json(item, name, fix) for item in value]}
    if isinstance(value, dict):
        return {"dict": [[to_json(key, name, fix), to_json(item, name, fix)] for key, item in value.items()]}
    if isinstance(value, np.ndarray):
        return {"ndarray": to_json(value.tolist(), name, fix), "dtype": value.dtype.str}
    if isinstance(value, os.PathLike):
        return {"path": os.fspath(value)}
    if isinstance(value, torch.device):
        return str(value)
    if _is_torch_optimizer(value):
        return {"torch_optimizer": value.__name__}
    fix = fix or "Pass a plain value (str, number, bool, tuple, list or None)"
    shown = repr(value).splitlines()[0] + (" ...)" if "\n" in repr(value) else "")
    raise TypeError(
        f"{name}={shown} cannot be saved: a model file stores plain values only, never objects or code, so "
        f"that loading it cannot run code. {fix}; or use pickle/joblib for files you trust."
    )


def _is_torch_optimizer(value):
    return (
        isinstance(value, type)
        and getattr(torch.optim, value.__name__, None) is value
        and issubclass(value, torch.optim.Optimizer)
        and value is not torch.optim.Optimizer
    )


def history_to_json(history):
    """A skorch history as JSON data, refusing values that are not plain numbers or strings.

    Parameters
    ----------
    history : skorch.History

    Returns
    -------
    list of dict
    """

    def plain(value):
        if isinstance(value, (np.generic, np.ndarray)):
            return value.tolist()
        raise TypeError(
            f"history_ holds {value!r} ({type(value).__name__}), which cannot be saved: a model file stores plain "
            "values only. Record numbers or strings in the history from your callbacks."
        )

    return json.loads(json.dumps(list(history), default=plain))


def plain_tensors(state_dict):
    """Detached CPU tensors, each with storage of its own (safetensors refuses shared storage)."""
    tensors, seen = {}, set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu")
        storage = tensor.untyped_storage().data_ptr()
        shares = storage in seen and tensor.numel() > 0
        tensors[name] = tensor.clone() if shares or not tensor.is_contiguous() else tensor
        seen.add(storage)
    return tensors


def read_model_file(path):
    """Read a model file: its tensors and its validated JSON document; nothing in it can run code.

    Parameters
    ----------
    path : str

    Returns
    -------
    tensors : dict of str to Tensor
    config : dict
        The document, whose ``format`` and ``format_version`` were checked.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not an skft model file, is damaged, or was written in a newer format.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist. Pass the path given to save().")
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except SafetensorError as error:
        raise ValueError(
            f"model file {path!r} was refused: it is not an skft model file (skft reads models only from the "
            f"safetensors files that save() writes, and never unpickles; {error}). If you trust it and it is a "
            "pickle or joblib file, load it with joblib.load."
        ) from None
    if METADATA_KEY not in metadata:
        raise ValueError(
            f"model file {path!r} holds tensors but no skft metadata: it is not a file written by save(). A plain "
            "weights file goes in weights=path when fitting."
        )
    return tensors, _parse_config(metadata[METADATA_KEY], path)


def _parse_config(text, path):
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        config = None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"model file {path!r} has damaged skft metadata. Save the model again.")
    version = config.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"model file {path!r} was written by skft {config.get('skft_version')!r} in model format {version!r}; "
            f"this skft {skft_version()} reads format 1 to {FORMAT_VERSION}. Upgrade skft to load it."
        )
    return config


def from_json(value):
    """Decode what :func:`to_json` wrote; only plain data, never code, comes out.

    Parameters
    ----------
    value : object
        JSON data.

    Returns
    -------
    object

    Raises
    ------
    ValueError
        For a tagged dict this version does not write (a damaged or forged file).
    """
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"tuple"}:
        return tuple(from_json(item) for item in value["tuple"])
    if set(value) == {"dict"}:
        return {from_json(key): from_json(item) for key, item in value["dict"]}
    if set(value) == {"ndarray", "dtype"}:
        return np.array(from_json(value["ndarray"]), dtype=np.dtype(value["dtype"]))
    if set(value) == {"path"}:
        return Path(value["path"])
    if set(value) == {"torch_optimizer"}:
        optimizer = getattr(torch.optim, str(value["torch_optimizer"]), None)
        if _is_torch_optimizer(optimizer):
            return optimizer
    raise ValueError(f"unknown stored value {value!r}")
