"""Reading a weights file a user points to, without ever running code from it."""

import pickle
from pathlib import Path

import torch

WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")


def is_weights_path(weights):
    """Tell whether a ``weights`` value names a file rather than a weights name.

    Parameters
    ----------
    weights : object

    Returns
    -------
    bool
    """
    if isinstance(weights, Path):
        return True
    return isinstance(weights, str) and weights.lower().endswith(WEIGHTS_SUFFIXES)


def read_state_dict(path):
    """Read a state dict from ``.pth``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors``.

    A checkpoint dict that holds the state dict under ``state_dict`` or ``model`` is unwrapped,
    and a ``module.`` prefix (from ``DataParallel``) is stripped.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of str to Tensor

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When the file carries code (pickled objects other than tensors) or is no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist. Pass an existing .pth/.safetensors path.")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = load_tensors_only(path)
    return _normalise_state_dict(state, path)


def load_tensors_only(path):
    """``torch.load`` with ``weights_only=True``, turning a refusal into a clear ``ValueError``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    object
        Whatever plain containers of tensors the file holds.
    """
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as error:
        raise ValueError(
            f"weights file {str(path)!r} was refused: it is not a plain file of tensors (it may carry code, "
            f"which skft never runs, or be damaged). Save a state dict with torch.save(model.state_dict(), path) "
            f"or safetensors. Detail: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None


def _normalise_state_dict(state, path):
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(
            f"weights file {str(path)!r} does not hold a state dict (a mapping of names to tensors), nor one under "
            f"{' / '.join(_WRAPPER_KEYS)}."
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def describe_mismatch(expected, state_dict, *, source="the file", target="the network"):
    """Describe the first way ``state_dict`` does not fit a network whose state dict is ``expected``.

    Parameters
    ----------
    expected : dict of str to Tensor
        The network's own ``state_dict()``.
    state_dict : dict of str to Tensor
        The tensors to load.
    source, target : str
        How the message names where ``state_dict`` and ``expected`` come from.

    Returns
    -------
    str or None
        ``None`` when every name and shape agree, else e.g. ``"tensor 'head.0.weight' has shape (2, 8) in
        the file but (3, 8) in the network"`` or ``"missing tensor 'x' (1 missing, 0 unexpected)"``.
    """
    for name, tensor in state_dict.items():
        if name in expected and expected[name].shape != tensor.shape:
            return (
                f"tensor {name!r} has shape {tuple(tensor.shape)} in {source} but {tuple(expected[name].shape)} in "
                f"{target}"
            )
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    if missing or unexpected:
        first = f"missing tensor {missing[0]!r}" if missing else f"unexpected tensor {unexpected[0]!r}"
        return f"{first} ({len(missing)} missing, {len(unexpected)} unexpected)"
    return None


def load_into(model, state_dict, source):
    """Copy ``state_dict`` into ``model``, naming the first mismatch when they disagree.

    Parameters
    ----------
    model : nn.Module
    state_dict : dict of str to Tensor
    source : str
        Where the tensors came from, for the message.
    """
    problem = describe_mismatch(model.state_dict(), state_dict)
    if problem is not None:
        raise ValueError(
            f"weights {source!r} do not fit the backbone: {problem}. Check that the file was saved from the same "
            "architecture."
        )
    model.load_state_dict(state_dict)
