"""Digests of networks as built: what a module *is*, never what it is called.

A digest covers, for every submodule in order: its path, its class by qualified name, its
``extra_repr`` (the hyper-parameters torch's layers print: kernel size, stride, ...), every other
attribute in its ``__dict__`` and its forward hooks (described by :func:`skft.backbones._describing.describe_value`:
numbers, strings, tensors and NumPy values by value, functions, ``functools.partial``, enums,
dataclasses, containers of those), and the name, shape and dtype of each of its parameters and
buffers; with ``tensors=True`` also their bytes. A ReLU swapped for a Tanh, a changed stride, a
``self.scale = torch.tensor(2.0)`` set to 5.0 or a changed weight all change it; the names a
network is registered or saved under never enter it. An attribute that cannot be described (an
arbitrary object) raises :class:`UndescribableAttribute`: no digest, so nothing is keyed on it.

Limit: the Python code of a ``forward`` is not read. A user's own module class whose ``forward``
was edited, with nothing else changed, keeps its digest (so, in one process, its cached
activations); give it a new class name, or restart the process and clear ``cache_dir``.

Hashing tensors costs a pass over their bytes, so the bytes' digest is remembered per module,
together with a token of every tensor it was computed from (the tensor object, its version
counter, data pointer, dtype, shape, strides and device). The token changes with every in-place
operation through the tensor or a ``detach()`` of it (optimizer steps, ``copy_``,
``load_state_dict``, ``torch.nn.init``), and with every replacement (``.half()``, ``.to()``,
assigning a new ``Parameter``): the digest is then computed again. Writes through ``.data`` or a
NumPy view bypass torch's version counter and cannot be seen; skft itself never writes that way,
and the pretrained modules a process keeps are not reachable from a fitted estimator.
"""

import hashlib
import threading
import weakref

import torch

from ._describing import UndescribableValue, describe_value, qualified_name, tensor_bytes

#: What every ``nn.Module`` keeps in its ``__dict__``: its parameters, buffers, children and hooks (described on
#: their own) and ``training`` (the frozen prefix always runs in eval mode).
_MODULE_BOOKKEEPING = frozenset(vars(torch.nn.Module()))

_TENSOR_DIGESTS = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class UndescribableAttribute(TypeError):
    """A module holds an attribute its digest cannot describe, so nothing may be keyed on that digest.

    Parameters
    ----------
    path : str
        The module's path in the digested network (e.g. ``"backbone.block_0.conv"``).
    attribute : str
        The attribute's name (or ``"_forward_hooks"`` / ``"_forward_pre_hooks"`` for a hook).
    what : str
        What the value is.
    """

    def __init__(self, path, attribute, what):
        super().__init__(path, attribute, what)
        self.path, self.attribute, self.what = path, attribute, what

    def __str__(self):
        return (
            f"module {self.path!r} holds attribute {self.attribute!r} ({self.what}), which skft cannot describe, so "
            "it cannot tell whether two such networks compute alike. To make it cacheable, register a tensor as a "
            f"buffer (self.register_buffer({self.attribute!r}, tensor)) or hold a plain value (number, str, tensor, "
            "tuple, dict, functools.partial of a function) instead"
        )


def module_digest(named_modules, *, tensors=True):
    """Digest of modules as built: structure and, with ``tensors``, the bytes of every tensor.

    Parameters
    ----------
    named_modules : iterable of (str, nn.Module)
        The modules, in the order they compute (e.g. blocks).
    tensors : bool, default=True
        Include the parameters' and buffers' values (else only their names, shapes and dtypes).

    Returns
    -------
    str
        32 lowercase hex digits.

    Raises
    ------
    UndescribableAttribute
        When a module holds an attribute (or forward hook) that cannot be described.
    """
    digest = hashlib.blake2b(digest_size=16)
    for top_name, top in named_modules:
        for path, module in top.named_modules(prefix=top_name):
            digest.update(repr(_describe(path, module)).encode())
            if tensors:
                digest.update(_tensor_digest(module).encode())
    return digest.hexdigest()


def tensor_values_digest(named_modules):
    """Digest of the values of the given modules' own parameters and buffers (not of their children's).

    Covers each module's path and each of its own tensors' name, shape, dtype and bytes; the bytes'
    digest is remembered per module as for :func:`module_digest`.

    Parameters
    ----------
    named_modules : iterable of (str, nn.Module)

    Returns
    -------
    str
        32 lowercase hex digits.
    """
    digest = hashlib.blake2b(digest_size=16)
    for path, module in named_modules:
        shapes = [(name, tuple(tensor.shape), str(tensor.dtype)) for name, tensor in own_tensors(module)]
        digest.update(repr((path, shapes)).encode())
        digest.update(_tensor_digest(module).encode())
    return digest.hexdigest()


def _describe(path, module):
    attributes = sorted(
        (name, _describe_attribute(path, name, value))
        for name, value in vars(module).items()
        if name not in _MODULE_BOOKKEEPING
    )
    hooks = [
        (kind, _describe_attribute(path, kind, hook))
        for kind in ("_forward_pre_hooks", "_forward_hooks")
        for hook in getattr(module, kind, {}).values()
    ]
    tensor_shapes = [
        (kind, name, tuple(tensor.shape), str(tensor.dtype))
        for kind, named in (("parameter", module._parameters), ("buffer", module._buffers))
        for name, tensor in named.items()
        if tensor is not None
    ]
    return path, qualified_name(type(module)), module.extra_repr(), attributes, hooks, tensor_shapes


def _describe_attribute(path, name, value):
    try:
        return describe_value(value)
    except UndescribableValue as error:
        raise UndescribableAttribute(path, name, str(error)) from None


def _tensor_digest(module):
    named = own_tensors(module)
    token = _token(named)
    with _LOCK:
        remembered = _TENSOR_DIGESTS.get(module)
    if token is not None and remembered is not None and _same_token(remembered[0], token):
        return remembered[1]
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in named:
        digest.update(name.encode())
        digest.update(tensor_bytes(tensor))
    value = digest.hexdigest()
    if token is not None:
        with _LOCK:
            _TENSOR_DIGESTS[module] = (token, value)
    return value


def remember_copied_digests(original, copied):
    """Let ``copied``, a deep copy of ``original`` made just now, reuse the tensor digests known for ``original``.

    A copy holds the same bytes, so the digest of each submodule's tensors is the original's, as
    long as the original's tensors are still those it was computed from (their token matches).
    Saves the pass over every byte at the copy's first digest.

    Parameters
    ----------
    original, copied : nn.Module
    """
    for source, target in zip(original.modules(), copied.modules()):
        with _LOCK:
            remembered = _TENSOR_DIGESTS.get(source)
        source_token, target_token = _token(own_tensors(source)), _token(own_tensors(target))
        if remembered is None or source_token is None or target_token is None:
            continue
        if _same_token(remembered[0], source_token) and [t[0] for t in source_token] == [t[0] for t in target_token]:
            with _LOCK:
                _TENSOR_DIGESTS[target] = (target_token, remembered[1])


def own_tensors(module):
    """A module's own parameters and buffers (not its children's), as ``(name, tensor)`` pairs.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    list of (str, Tensor)
    """
    # The module's own registries: what named_parameters / named_buffers(recurse=False) yield, without their overhead.
    return [
        (name, tensor)
        for named in (module._parameters, module._buffers)
        for name, tensor in named.items()
        if tensor is not None
    ]


def _token(named):
    try:
        return [
            (
                name,
                weakref.ref(tensor),
                tensor._version,
                tensor.data_ptr(),
                tensor.dtype,
                tuple(tensor.shape),
                tensor.stride(),
                tensor.storage_offset(),
                tensor.device,
            )
            for name, tensor in named
        ]
    except RuntimeError:  # inference tensors keep no version counter: never remembered
        return None


def _same_token(remembered, token):
    return len(remembered) == len(token) and all(
        old[0] == new[0] and old[1]() is new[1]() and old[2:] == new[2:] for old, new in zip(remembered, token)
    )
