"""Saving and loading fitted estimators as files that can never run code.

A model file is one safetensors file: the network's state dict as tensors, and under the metadata
key ``"skft"`` a JSON document with everything else (format version, skft version, estimator class,
parameters, fitted attributes, preprocessing, training history). Reading it parses a fixed binary
header, JSON and raw tensor bytes; no pickle is involved, so a file from a stranger cannot run code.
Loading rebuilds the network from the registry as the fit built it, from the backbone's skeleton for
the saved ``weights`` (the architecture those weights need; nothing is read or downloaded), and
copies the saved tensors into it.

Parameters are stored as plain values. What is not one (an ``nn.Module`` backbone, callbacks, a
``RandomState``, an optimizer class outside ``torch.optim``) is refused at save time with a
``TypeError`` naming the parameter, rather than dropped: nothing a user saved is silently lost.
Tuples stay tuples, paths stay paths and ``torch.optim`` classes are stored by name.

A file is untrusted input: nothing read from it becomes a cache key or a path, and no number in it
may exhaust the machine. Loading restores ``cache_dir`` as None (a file cannot choose where skft
writes; set it again with ``set_params``), ``num_workers`` as 0, and refuses a ``batch_size`` above
:data:`MAX_BATCH_SIZE` or an image size above :data:`MAX_IMAGE_SIZE`. The activation-cache key of
a loaded model is computed from its rebuilt network, never read from the file (the ``prefix_key_``
that files of earlier versions hold is ignored).
"""

import dataclasses
import json
import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ..backbones import describe_mismatch, resolve_backbone
from .assembly import build_network
from .atomic import atomic_write

FORMAT = "skft-model"
#: Bumped whenever a file written by this version cannot be read by older ones.
FORMAT_VERSION = 1
METADATA_KEY = "skft"

#: Fitted attributes saved besides ``net_`` (as tensors) and ``history_``. Older files also hold
#: ``prefix_key_``, which is ignored: a loaded model's cache key is computed from its network.
COMMON_FITTED = ("image_size_", "backbone_name_", "block_names_", "n_frozen_blocks_", "drift_")
#: The largest ``batch_size`` a model file may set.
MAX_BATCH_SIZE = 4096
#: The largest ``image_size`` or ``image_size_`` (pixels per side) a model file may set.
MAX_IMAGE_SIZE = 2048
#: Parameters a file cannot set: restored as these values.
RESET_AT_LOAD = {"cache_dir": None, "num_workers": 0}
FITTED = {
    "FineTunedClassifier": ("classes_",),
    "FineTunedRegressor": ("target_mean_", "target_scale_", "n_targets_", "target_ndim_"),
}

_FIXES = {
    "backbone": "Register your network with skft.register_backbone(name, builder) and fit with backbone=name",
    "callbacks": "They only act during fit: remove them before saving, est.set_params(callbacks=None).save(path)",
    "random_state": "Pass an int or None",
    "optimizer": "Pass 'adamw', 'adam', 'sgd' or a class from torch.optim (stored by name)",
}


# -- saving ----------------------------------------------------------------------------------------


def save_model(estimator, path):
    """Write a fitted estimator to ``path`` atomically; see :meth:`FineTunedClassifier.save`.

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor
        Fitted.
    path : str or path-like
    """
    check_is_fitted(estimator)
    name = type(estimator).__name__
    if _estimator_classes().get(name) is not type(estimator):
        raise TypeError(
            f"save supports {sorted(FITTED)}, not subclasses of them. Got {type(estimator).__qualname__}. Use "
            "pickle or joblib for files you trust."
        )
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skft_version": _skft_version(),
        "estimator": name,
        "params": {key: to_json(value, key) for key, value in estimator.get_params(deep=False).items()},
        "fitted": {key: to_json(getattr(estimator, key), key) for key in COMMON_FITTED + FITTED[name]},
        "preprocessing": _normalisation(estimator.net_.module_),
        "history": _history_to_json(estimator.history_),
    }
    tensors = _plain_tensors(estimator.net_.module_.state_dict())
    with atomic_write(path) as tmp:
        save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(config)})


def to_json(value, name):
    """Encode a parameter or fitted attribute as JSON data, refusing anything that is not plain data.

    Parameters
    ----------
    value : object
    name : str
        The parameter or attribute, for the message.

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
        return [to_json(item, name) for item in value]
    if isinstance(value, tuple):
        return {"tuple": [to_json(item, name) for item in value]}
    if isinstance(value, dict):
        return {"dict": [[to_json(key, name), to_json(item, name)] for key, item in value.items()]}
    if isinstance(value, np.ndarray):
        return {"ndarray": to_json(value.tolist(), name), "dtype": value.dtype.str}
    if isinstance(value, os.PathLike):
        return {"path": os.fspath(value)}
    if isinstance(value, torch.device):
        return str(value)
    if _is_torch_optimizer(value):
        return {"torch_optimizer": value.__name__}
    fix = _FIXES.get(name, "Pass a plain value (str, number, bool, tuple, list or None)")
    shown = repr(value).splitlines()[0] + (" ...)" if "\n" in repr(value) else "")
    raise TypeError(
        f"{name}={shown} cannot be saved: a model file stores plain values only, never objects or code, so "
        f"that loading it cannot run code. {fix}; or use pickle/joblib for files you trust."
    )


def _is_torch_optimizer(value):
    return isinstance(value, type) and getattr(torch.optim, value.__name__, None) is value and issubclass(
        value, torch.optim.Optimizer
    )


def _normalisation(network):
    normalizer = network.normalizer
    return {"mean": normalizer.mean.flatten().tolist(), "std": normalizer.std.flatten().tolist()}


def _history_to_json(history):
    def plain(value):
        if isinstance(value, (np.generic, np.ndarray)):
            return value.tolist()
        raise TypeError(
            f"history_ holds {value!r} ({type(value).__name__}), which cannot be saved: a model file stores plain "
            "values only. Record numbers or strings in the history from your callbacks."
        )

    return json.loads(json.dumps(list(history), default=plain))


def _plain_tensors(state_dict):
    """Detached CPU tensors, each with storage of its own (safetensors refuses shared storage)."""
    tensors, seen = {}, set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu")
        storage = tensor.untyped_storage().data_ptr()
        shares = storage in seen and tensor.numel() > 0
        tensors[name] = tensor.clone() if shares or not tensor.is_contiguous() else tensor
        seen.add(storage)
    return tensors


# -- loading -----------------------------------------------------------------------------------------


def load(path, *, device=None):
    """Load an estimator saved with ``save``; the file is never unpickled, so it cannot run code.

    Parameters
    ----------
    path : str or path-like
        A file written by :meth:`FineTunedClassifier.save` or :meth:`FineTunedRegressor.save`.
    device : str or None, default=None
        Where the loaded network runs: ``None`` follows the saved estimator's ``device`` parameter
        (a model saved with ``device="cpu"`` loads on the CPU); ``"auto"`` uses CUDA when available.
        The estimator's own ``device`` parameter is restored as saved and applies to later fits.
        ``cache_dir`` and ``num_workers`` are not taken from the file: they load as None and 0.

    Returns
    -------
    FineTunedClassifier or FineTunedRegressor
        Fitted: it predicts exactly as the saved one, and ``warm_start=True`` continues training it.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not an skft model file (a pickle, a torch zip, a plain weights file, a damaged
        file), was written by a newer, incompatible skft, does not fit its backbone as built here, or
        sets ``batch_size`` above :data:`MAX_BATCH_SIZE` or an image size above :data:`MAX_IMAGE_SIZE`.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import skft
    >>> X = np.random.default_rng(0).integers(0, 255, size=(8, 32, 32), dtype=np.uint8)
    >>> clf = skft.FineTunedClassifier(mode="feature_extraction", image_size=32, max_epochs=1, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skft")
    >>> clf.fit(X, [0, 1] * 4).save(path)  # doctest: +ELLIPSIS
    FineTunedClassifier(...)
    >>> bool((skft.load(path).predict(X) == clf.predict(X)).all())
    True
    """
    from .._base import resolve_device
    from .regularizers import snapshot_trainable

    path = os.fspath(path)
    tensors, config = _read_model_file(path)
    estimator = _estimator_from_config(config, path)
    network = _rebuild_network(estimator, config, path)
    _load_weights(network, tensors, estimator, path)
    estimator.prefix_key_ = estimator._prefix_key(network)
    device = resolve_device(estimator.device if device is None else device)
    net = estimator._make_net(network, None, 0, device, snapshot_trainable(network))
    net.initialize()
    net.history = History(config.get("history", []))
    estimator.net_ = net
    estimator.history_ = net.history
    return estimator


def _read_model_file(path):
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
            f"this skft {_skft_version()} reads format 1 to {FORMAT_VERSION}. Upgrade skft to load it."
        )
    return config


def _estimator_from_config(config, path):
    name = config.get("estimator")
    classes = _estimator_classes()
    if name not in classes:
        raise ValueError(f"model file {path!r} names estimator {name!r}; skft loads only {sorted(classes)}.")
    try:
        params = {key: from_json(value) for key, value in config["params"].items()}
        estimator = classes[name](**{**params, **RESET_AT_LOAD})
        estimator._validate_params()
        for key in COMMON_FITTED + FITTED[name]:
            setattr(estimator, key, from_json(config["fitted"][key]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"model file {path!r} has damaged or foreign parameters ({type(error).__name__}: {error}). Save the "
            "model again."
        ) from None
    _check_sizes(estimator, path)
    return estimator


def _check_sizes(estimator, path):
    """Refuse numbers a file could use to exhaust memory at predict time."""
    limits = (("batch_size", MAX_BATCH_SIZE), ("image_size", MAX_IMAGE_SIZE), ("image_size_", MAX_IMAGE_SIZE))
    for field, limit in limits:
        value = getattr(estimator, field)
        if value is not None and not (isinstance(value, Integral) and 1 <= value <= limit):
            raise ValueError(
                f"model file {path!r} sets {field}={value!r}; skft loads models with {field} from 1 to {limit}. "
                "The file is damaged or was crafted; save the model again."
            )


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


def _rebuild_network(estimator, config, path):
    """The fitted network's architecture, with the saved normalisation; the saved tensors go in next.

    It is built as the fit built it (``FineTunedEstimatorBase._build_network``: every parameter that
    shapes the network), from the backbone's skeleton for the estimator's ``weights``: the
    architecture those weights need, without reading or downloading them.
    """
    backbone = estimator.backbone
    try:
        resolved = resolve_backbone(backbone, estimator.weights, image_size=estimator.image_size, read_weights=False)
        saved = config["preprocessing"]
        preprocessing = dataclasses.replace(
            resolved.preprocessing, mean=tuple(saved["mean"]), std=tuple(saved["std"])
        )
        network = build_network(
            dataclasses.replace(resolved, preprocessing=preprocessing),
            image_size=estimator.image_size_,
            feature_layer=estimator.feature_layer,
            n_frozen_for=lambda n_blocks: estimator.n_frozen_blocks_,
            head=estimator.head,
            n_outputs=estimator._n_outputs(),
            dropout=estimator.dropout,
            bn_trainable=estimator.bn_trainable,
            precision=estimator.precision,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"model file {path!r} needs backbone {backbone!r}, which cannot be built here: {error}. Register the "
            "backbone (skft.register_backbone) as it was when the model was saved, then load again."
        ) from None
    blocks = [name for name, _ in network.backbone.named_children()]
    if blocks != list(estimator.block_names_):
        raise ValueError(
            f"model file {path!r} was made for another backbone: it has blocks {list(estimator.block_names_)} but "
            f"backbone {backbone!r} builds {blocks} here. Register {backbone!r} as it was when the model was saved."
        )
    return network


def _load_weights(network, tensors, estimator, path):
    problem = describe_mismatch(
        network.state_dict(), tensors, source="the file", target=f"backbone {estimator.backbone!r} as built here"
    )
    if problem is not None:
        raise ValueError(
            f"model file {path!r} was made for another backbone: {problem}. Register {estimator.backbone!r} as it was "
            "when the model was saved."
        )
    network.load_state_dict(tensors)


# -- shared --------------------------------------------------------------------------------------------


def _estimator_classes():
    """The only classes a model file may name (imported here: they import this module)."""
    from .._classification import FineTunedClassifier
    from .._regression import FineTunedRegressor

    return {cls.__name__: cls for cls in (FineTunedClassifier, FineTunedRegressor)}


def _skft_version():
    from .. import __version__

    return __version__
