"""Canonical texts of the values a module's forward can read: what enters a network's digest.

:func:`describe_value` gives one text per value such that two values with the same text compute
alike: numbers, strings, dtypes and devices by ``repr``; tensors and NumPy arrays and scalars by
value (dtype, shape and a digest of their bytes); functions and classes by qualified name (a
function also by its default arguments and the values its closure captured); ``functools.partial``
by its function, arguments and keywords; enums by class and member; dataclasses by the fields
their equality compares; lists, tuples, sets and dicts by their items, recursively. Anything else
(an arbitrary object) cannot be described: :class:`UndescribableValue` is raised, and a caller
that keys a cache on the description must not cache.

The Python source of a function is not read: two functions with one qualified name, captured values
and defaults are taken to compute alike.
"""

import dataclasses
import enum
import functools
import hashlib
import types

import numpy as np
import torch

_PLAIN = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)
_EXACTLY_PLAIN = frozenset({type(None), bool, int, float, str})
#: How deep containers, partials and closures are followed before a value counts as undescribable.
_MAX_DEPTH = 16


class UndescribableValue(TypeError):
    """A value :func:`describe_value` has no canonical text for (an arbitrary object)."""


def describe_value(value, depth=0):
    """A canonical text for ``value``: equal texts mean values that compute alike.

    Parameters
    ----------
    value : object
    depth : int, default=0
        How deep in a container the value is (internal: bounds recursion).

    Returns
    -------
    str

    Raises
    ------
    UndescribableValue
        For a value of a type not listed in the module's description.
    """
    if type(value) in _EXACTLY_PLAIN:  # the common case first: most attributes are numbers and strings
        return f"{type(value).__name__}:{value!r}"
    if depth > _MAX_DEPTH:
        raise UndescribableValue(f"nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, enum.Enum):  # before the plain types: IntEnum is an int
        return f"{qualified_name(type(value))}.{value.name}"
    if isinstance(value, _PLAIN):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, torch.Tensor):
        return _describe_array("tensor", value.dtype, value.shape, tensor_bytes(value))
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.ascontiguousarray(value)
        if array.dtype.hasobject:
            raise UndescribableValue(f"a NumPy array of Python objects ({type(value).__name__})")
        return _describe_array(type(value).__name__, array.dtype, array.shape, array.view(np.uint8).reshape(-1))
    inner = depth + 1
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}({', '.join(describe_value(item, inner) for item in value)})"
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({', '.join(sorted(describe_value(item, inner) for item in value))})"
    if isinstance(value, dict):
        items = sorted(f"{describe_value(key, inner)}: {describe_value(item, inner)}" for key, item in value.items())
        return f"{type(value).__name__}({', '.join(items)})"
    if isinstance(value, functools.partial):
        parts = [describe_value(part, inner) for part in (value.func, value.args, value.keywords)]
        return f"partial({', '.join(parts)})"
    if isinstance(value, types.FunctionType):
        return _describe_function(value, inner)
    if isinstance(value, (types.BuiltinFunctionType, type)):
        return qualified_name(value)
    if dataclasses.is_dataclass(value):
        fields = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare]
        return f"{qualified_name(type(value))}({describe_value(fields, inner)})"
    raise UndescribableValue(f"an object of type {qualified_name(type(value))}")


def qualified_name(obj):
    """``module.qualname`` of a class, function or other callable (its type's name otherwise).

    Parameters
    ----------
    obj : object

    Returns
    -------
    str
    """
    if not hasattr(obj, "__qualname__"):
        obj = type(obj)
    return f"{getattr(obj, '__module__', None)}.{obj.__qualname__}"


def _describe_function(function, depth):
    """A function by qualified name, default arguments and the values its closure captured."""
    cells = [cell.cell_contents for cell in function.__closure__ or () if _cell_is_set(cell)]
    # A recursive closure captures itself: its name already says it.
    captured = [value for value in cells if value is not function]
    parts = (function.__defaults__, function.__kwdefaults__, captured)
    return f"{qualified_name(function)}{describe_value(parts, depth)}"


def _cell_is_set(cell):
    try:
        cell.cell_contents  # noqa: B018 -- an empty cell raises
    except ValueError:
        return False
    return True


def tensor_bytes(tensor):
    """The bytes of a dense tensor, as a flat ``uint8`` NumPy array (on the CPU).

    Parameters
    ----------
    tensor : Tensor

    Returns
    -------
    ndarray of uint8

    Raises
    ------
    UndescribableValue
        For a sparse or quantized tensor.
    """
    if tensor.layout != torch.strided or tensor.is_quantized:
        raise UndescribableValue(f"a {tensor.layout} tensor" + (" (quantized)" if tensor.is_quantized else ""))
    return tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()


def _describe_array(kind, dtype, shape, data):
    return f"{kind}({dtype}, {tuple(shape)}, {hashlib.blake2b(data, digest_size=16).hexdigest()})"
