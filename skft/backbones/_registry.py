"""One registry for every backbone: the shipped EfficientNet-Lite0, torchvision's models, users' own."""

import copy
import difflib
import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from . import _efficientnet_lite
from ._digest import module_digest, qualified_name
from ._splitting import split_children
from ._types import IMAGENET_MEAN, IMAGENET_STD, POOLINGS, BackboneParts, Preprocessing
from ._weights_file import is_weights_path, load_into, read_state_dict


@dataclass(frozen=True)
class BackboneSpec:
    """How to build, split and preprocess for one registered backbone.

    Parameters
    ----------
    name : str
    build : callable
        ``build(weights) -> nn.Module`` for ``weights`` in ``{"DEFAULT", <weights name>, None}``: the
        network with its weights.
    split : callable
        ``split(model) -> BackboneParts``.
    preprocessing : callable
        ``preprocessing(weights) -> Preprocessing``.
    source : str
        ``"shipped"``, ``"torchvision"`` or ``"user"``.
    weights_file : callable, optional
        ``weights_file(weights) -> str or None``: where the weights live on disk, if anywhere.
    registration : dict, optional
        For user registrations: the arguments of :func:`register_backbone`.
    skeleton : callable, optional
        ``skeleton(weights) -> nn.Module``: the network ``build(weights)`` returns, built with the same
        arguments but without reading the weights (freshly initialised; buildable on the ``meta``
        device). ``build(weights)`` is this skeleton with the weights' state dict loaded. ``None``
        (user registrations, whose builder returns its weights): ``build`` itself.
    """

    name: str
    build: Callable
    split: Callable
    preprocessing: Callable
    source: str
    weights_file: Callable = field(default=lambda weights: None)
    registration: dict = None
    skeleton: Callable = None


@dataclass
class ResolvedBackbone:
    """A backbone built with its weights and split into blocks, ready for a network.

    Parameters
    ----------
    name : str
        Registry name, or the class name of a user's module.
    parts : BackboneParts
    preprocessing : Preprocessing
    weights : object
        The ``weights`` value it was built with.
    """

    name: str
    parts: BackboneParts
    preprocessing: Preprocessing
    weights: object


_USER_SPECS = {}


def _shipped_specs():
    lite = _efficientnet_lite
    return {
        lite.NAME: BackboneSpec(
            name=lite.NAME,
            build=lite.build,
            skeleton=lite.skeleton,
            split=lite.split,
            preprocessing=lambda weights: lite.PREPROCESSING,
            source="shipped",
            weights_file=lambda weights: lite.weights_file() if weights is not None else None,
        )
    }


def _torchvision_spec(name):
    from . import _torchvision as tv

    return BackboneSpec(
        name=name,
        build=lambda weights: tv.build_torchvision_model(name, weights),
        skeleton=lambda weights: tv.torchvision_skeleton(name, weights),
        split=lambda model: tv.split_torchvision_model(name, model),
        preprocessing=lambda weights: tv.torchvision_preprocessing(name, weights),
        source="torchvision",
        weights_file=lambda weights: tv.torchvision_weights_file(name, weights),
    )


def _torchvision_names():
    from . import _torchvision as tv

    return tv.torchvision_model_names()


def list_backbones():
    """List every registered backbone name.

    Returns
    -------
    list of str
        ``"efficientnet_lite0"`` (shipped with its ImageNet weights, works offline), every
        torchvision classification model, and the names added with :func:`register_backbone`.

    Examples
    --------
    >>> from skft import list_backbones
    >>> "efficientnet_lite0" in list_backbones() and "resnet18" in list_backbones()
    True
    """
    return sorted(set(_shipped_specs()) | set(_torchvision_names()) | set(_USER_SPECS))


def get_spec(name):
    """Return the :class:`BackboneSpec` registered under ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    BackboneSpec

    Raises
    ------
    ValueError
        For an unknown name, listing the closest registered names.
    """
    if name in _USER_SPECS:
        return _USER_SPECS[name]
    shipped = _shipped_specs()
    if name in shipped:
        return shipped[name]
    if name in _torchvision_names():
        return _torchvision_spec(name)
    close = difflib.get_close_matches(str(name), list_backbones(), n=5, cutoff=0.5)
    hint = f" Did you mean one of {close}?" if close else ""
    raise ValueError(f"backbone={name!r} is not a registered backbone.{hint} See skft.list_backbones().")


def register_backbone(
    name,
    builder,
    *,
    blocks=None,
    pooling="avg",
    image_size=224,
    min_image_size=32,
    fixed_image_size=False,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    overwrite=False,
):
    """Register a network under ``name`` so that every estimator can use it as ``backbone=name``.

    Parameters
    ----------
    name : str
    builder : callable
        ``builder()`` returns the network (an ``nn.Module``) with its pretrained weights; it is
        called on every fit, so it should be cheap (load from local disk, not the network).
        ``weights=None`` re-initialises the parameters it returns; ``weights=<path>`` loads a
        state dict over them.
    blocks : list of list of str, optional
        The blocks as lists of the network's top-level child names. ``None`` makes one block per
        child with parameters (parameter-free children join the block before them). The
        children must compute the network's features when applied in order.
    pooling : {"avg", "avg_channels_last", "class_token"}
        How a block's output becomes one feature vector per image.
    image_size : int
        The size the weights were trained at (the default input size).
    min_image_size : int
        The smallest input side the network accepts.
    fixed_image_size : bool
        True when only ``image_size`` works.
    mean, std : tuple of float
        The normalisation the weights expect for RGB values in ``[0, 1]``.
    overwrite : bool
        Allow replacing an existing user registration.

    Examples
    --------
    >>> import torch
    >>> from skft import register_backbone
    >>> def tiny():
    ...     return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3))
    >>> register_backbone("tiny_doc_example", tiny, image_size=32, overwrite=True)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str. Got {name!r} instead.")
    if not callable(builder):
        raise TypeError(f"builder must be a callable that returns an nn.Module. Got {builder!r} instead.")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}. Got {pooling!r} instead.")
    if not overwrite and (name in _USER_SPECS or name in _shipped_specs()):
        raise ValueError(f"backbone {name!r} is already registered. Pass overwrite=True to replace it.")
    registration = dict(
        builder=builder, blocks=blocks, pooling=pooling, image_size=image_size, min_image_size=min_image_size,
        fixed_image_size=fixed_image_size, mean=tuple(mean), std=tuple(std),
    )
    _USER_SPECS[name] = _user_spec(name, registration)


def _user_spec(name, registration):
    preprocessing = Preprocessing(
        image_size=registration["image_size"], mean=registration["mean"], std=registration["std"],
        min_size=registration["min_image_size"], fixed_size=registration["fixed_image_size"],
    )

    def split(model):
        parts = split_children(model, registration["blocks"])
        return BackboneParts(blocks=parts.blocks, pooling=registration["pooling"])

    return BackboneSpec(
        name=name,
        build=lambda weights: _build_user_network(registration["builder"], weights),
        split=split,
        preprocessing=lambda weights: preprocessing,
        source="user",
        registration=registration,
    )


class RegistrationTravelsMixin:
    """Carry a user-registered backbone's registration, and its digest, inside the pickled estimator.

    Worker processes (``GridSearchCV(n_jobs=2)``, Dask) unpickle estimators without having run
    the user's ``register_backbone`` call; the registration travels with the estimator and is
    replayed there when the name is unknown, or known with another spec: a reused worker that
    registered the name earlier, differently, gets the carried registration (which replaces its
    own). Specs are compared by :func:`registration_digest`.
    """

    def __getstate__(self):
        state = super().__getstate__()
        spec = _USER_SPECS.get(self.backbone) if isinstance(self.backbone, str) else None
        if spec is not None:
            state["_backbone_registration"] = spec.registration
            state["_backbone_registration_digest"] = registration_digest(self.backbone)
        return state

    def __setstate__(self, state):
        registration = state.pop("_backbone_registration", None)
        digest = state.pop("_backbone_registration_digest", None)
        super().__setstate__(state)
        if registration is not None:
            _replay_registration(self.backbone, registration, digest)


_REGISTRATION_DIGESTS = {}


def registration_digest(name):
    """Digest of the spec registered under ``name`` by :func:`register_backbone`.

    It covers the builder by qualified name, the registration's values (blocks, pooling, sizes,
    normalisation) and the digest of the network the builder returns, structure and tensors
    (:func:`skft.backbones._digest.module_digest`). The builder is called once per registration
    and process to compute it.

    Parameters
    ----------
    name : str
        A user-registered backbone name.

    Returns
    -------
    str
        32 lowercase hex digits.
    """
    registration = _USER_SPECS[name].registration
    remembered = _REGISTRATION_DIGESTS.get(name)
    if remembered is not None and remembered[0] is registration:
        return remembered[1]
    values = {key: value for key, value in registration.items() if key != "builder"}
    network = _build_user_network(registration["builder"], "DEFAULT")
    text = repr((qualified_name(registration["builder"]), sorted(values.items()), module_digest([("", network)])))
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    _REGISTRATION_DIGESTS[name] = (registration, digest)
    return digest


def _replay_registration(name, registration, digest):
    """Register a carried registration unless ``name`` already holds the same spec."""
    known = _USER_SPECS.get(name)
    if known is not None and (
        known.registration == registration or (digest is not None and registration_digest(name) == digest)
    ):
        return
    _USER_SPECS[name] = _user_spec(name, registration)
    if digest is not None:
        _REGISTRATION_DIGESTS[name] = (registration, digest)


def _build_user_network(builder, weights):
    model = builder()
    if not isinstance(model, nn.Module):
        raise TypeError(f"the backbone builder must return an nn.Module. It returned {type(model).__name__}.")
    if weights is None:
        reset_parameters(model)
    return model


_PRISTINE_MODELS = OrderedDict()
_PRISTINE_LIMIT = 4
_PRISTINE_LOCK = threading.Lock()


def _pretrained_model(spec, weights, share_modules):
    """Build a registered backbone with its weights, reading the weights once per process.

    The first request reads the weights and keeps a model built with them. With
    ``share_modules`` later requests get that same model (its frozen blocks are then shared by
    every network built from it, at no cost); otherwise they get a new model, the skeleton for
    ``weights`` built on the ``meta`` device, that *assigns* the kept tensors. Either way, blocks
    that train are copied before training (:class:`skft._nn.network.FineTuneNetwork`), so the kept
    model never changes. The last few distinct (backbone, weights file) pairs are kept, under a lock:
    threads that ask for the same weights at once read them once.

    Building the kept model draws random initial values (overwritten by the weights); it draws
    them from a forked RNG, so that a seeded fit gets the same head whether or not the weights were
    read before in this process.
    """
    if weights is None or spec.source == "user":
        return _build_with_weights(spec, weights)
    with _PRISTINE_LOCK:
        key = (spec.name, weights_identity(weights, spec))
        if key not in _PRISTINE_MODELS:
            with torch.random.fork_rng(devices=[]):
                pristine = _build_with_weights(spec, weights)
            key = (spec.name, weights_identity(weights, spec))  # the build may have downloaded the file
            _PRISTINE_MODELS[key] = pristine
            while len(_PRISTINE_MODELS) > _PRISTINE_LIMIT:
                _PRISTINE_MODELS.popitem(last=False)
        _PRISTINE_MODELS.move_to_end(key)
        pristine = _PRISTINE_MODELS[key]
    return pristine if share_modules else _model_sharing_state(spec, weights, pristine.state_dict())


def _build_with_weights(spec, weights, *, read_weights=True):
    """The one way to build a registered backbone for ``weights``.

    The network is the skeleton for ``weights`` (for a weights file or None: the ``None`` build),
    with the weights loaded unless ``read_weights`` is False. Every path builds through here: the
    first build with weights, the models that assign the kept tensors, and ``load``'s rebuild.
    """
    if is_weights_path(weights):
        model = _build_with_weights(spec, None, read_weights=False)
        if read_weights:
            load_into(model, read_state_dict(weights), str(weights))
        return model
    if read_weights or spec.skeleton is None:
        return spec.build(weights)
    return spec.skeleton(weights)


def _model_sharing_state(spec, weights, state):
    """The skeleton for ``weights``, built on the ``meta`` device, assigned the tensors of ``state``."""
    with torch.device("meta"):
        model = _build_with_weights(spec, weights, read_weights=False)
    model.load_state_dict(state, assign=True)
    if any(tensor.is_meta for tensor in itertools.chain(model.parameters(), model.buffers())):
        model = _build_with_weights(spec, weights, read_weights=False)
        model.load_state_dict(state)
    return model


def weights_identity(weights, spec=None):
    """A hashable identity of a ``weights`` argument: the file its values are read from.

    Used to decide whether the weights must be read again into the process's kept pretrained
    models, not as a cache key (those are digests of the built network, see
    :func:`skft._cache.prefix_key`).

    Parameters
    ----------
    weights : str, path or None
    spec : BackboneSpec, optional
        The backbone the weights are for. With it, a weights name (``"DEFAULT"``, ``"IMAGENET1K_V2"``)
        is resolved to the file it reads (for torchvision, the file named by the resolved weights'
        URL), so two names for the same weights share one identity and a changed file gets a new one.

    Returns
    -------
    tuple
        ``("file", absolute path, size, mtime)`` for a file (``("file", absolute path)`` while it is
        not on disk yet), ``("name", weights)`` for a name no file is known for, or for ``None``.
    """
    path = weights if is_weights_path(weights) else None
    if path is None and spec is not None and weights is not None:
        path = spec.weights_file(weights)
    if path is None:
        return ("name", weights)
    path = os.path.abspath(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return ("file", path)
    return ("file", path, stat.st_size, stat.st_mtime_ns)


def reset_parameters(model):
    """Re-initialise every submodule that knows how (``reset_parameters``), in place.

    Parameters
    ----------
    model : nn.Module
    """
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model:
            module.reset_parameters()


def resolve_backbone(backbone, weights, *, image_size=None, share_modules=False, read_weights=True):
    """Build a backbone with its weights and split it into blocks.

    Parameters
    ----------
    backbone : str or nn.Module
        A registry name, or a user's network (used as is; it must then be given ``image_size``).
    weights : {"DEFAULT", None} or str or path
        ``"DEFAULT"``, a weights name (torchvision), ``None`` for random initialisation, or a path to a
        ``.pth``/``.pt``/``.safetensors`` state dict for the unsplit network.
    image_size : int, optional
        Needed for a user's ``nn.Module``, whose expected size skft cannot know.
    share_modules : bool, default=False
        Return blocks made of the process's kept pretrained modules (for registered backbones with
        weights). Only for networks that stay on the CPU and copy the blocks they train: moving a
        shared block to another device would move it for every network.
    read_weights : bool, default=True
        False: build the network ``weights`` are loaded into, without reading (or downloading)
        them: a registered backbone's skeleton for ``weights``, or a user's network as given. For
        a caller that copies tensors of its own into it afterwards (:func:`skft.load`).

    Returns
    -------
    ResolvedBackbone
    """
    from_file = is_weights_path(weights)
    if isinstance(backbone, nn.Module):
        if image_size is None:
            raise ValueError(
                f"image_size=None cannot be used with a user's network ({type(backbone).__name__}): skft cannot "
                "know its input size. Pass image_size=<int>, e.g. 224."
            )
        model = copy.deepcopy(backbone)
        if weights is None:
            reset_parameters(model)
        if from_file and read_weights:
            load_into(model, read_state_dict(weights), str(weights))
        preprocessing = Preprocessing(image_size=image_size, min_size=1)
        name, parts = type(backbone).__name__, split_children(model)
    else:
        spec = get_spec(backbone)
        if read_weights:
            model = _pretrained_model(spec, weights, share_modules)
        else:
            model = _build_with_weights(spec, weights, read_weights=False)
        preprocessing = spec.preprocessing(None if from_file else weights)
        name, parts = spec.name, spec.split(model)
    return ResolvedBackbone(name=name, parts=parts, preprocessing=preprocessing, weights=weights)


@dataclass
class BackboneSummary:
    """What :func:`describe_backbone` reports, as data.

    Parameters
    ----------
    name : str
    blocks : list of (str, int)
        Block names with their parameter counts.
    preprocessing : Preprocessing
    weights_file : str or None
        Where the default weights live (or are expected) on disk.
    weights_available : bool
        Whether the default weights can be loaded without a download.
    """

    name: str
    blocks: list
    preprocessing: Preprocessing
    weights_file: str
    weights_available: bool

    def to_text(self):
        """Format the summary as the table :func:`describe_backbone` prints.

        Returns
        -------
        str
        """
        pre = self.preprocessing
        size = f"exactly {pre.image_size} px" if pre.fixed_size else f"{pre.image_size} px (at least {pre.min_size} px)"
        total = sum(count for _, count in self.blocks)
        lines = [
            f"backbone: {self.name}",
            f"input size: {size}",
            f"normalisation: mean={tuple(round(v, 4) for v in pre.mean)}, std={tuple(round(v, 4) for v in pre.std)}",
            f"default weights: {'available offline' if self.weights_available else 'not on disk'}"
            + (f" ({self.weights_file})" if self.weights_file else ""),
            f"{len(self.blocks)} blocks, {total:,} parameters:",
        ]
        width = max(len(name) for name, _ in self.blocks)
        lines += [f"  {index:>2}  {name:<{width}}  {count:>12,}" for index, (name, count) in enumerate(self.blocks)]
        return "\n".join(lines)


def summarize_backbone(name):
    """Build a :class:`BackboneSummary` without downloading or allocating weights.

    The network is built on PyTorch's ``meta`` device, so even a large model costs no memory.

    Parameters
    ----------
    name : str
        A registered backbone name.

    Returns
    -------
    BackboneSummary
    """
    spec = get_spec(name)
    with torch.device("meta"):
        parts = spec.split(spec.build(None))
    blocks = [(block_name, sum(p.numel() for p in block.parameters())) for block_name, block in parts.blocks]
    weights_file = spec.weights_file("DEFAULT")
    return BackboneSummary(
        name=name,
        blocks=blocks,
        preprocessing=spec.preprocessing("DEFAULT" if spec.source != "user" else None),
        weights_file=weights_file,
        weights_available=spec.source == "user" or bool(weights_file and os.path.isfile(weights_file)),
    )


def describe_backbone(name):
    """Print a backbone's blocks with parameter counts, its input size and its normalisation.

    Nothing is downloaded and no weights are allocated (parameters are counted on the ``meta`` device).

    Parameters
    ----------
    name : str
        A registered backbone name (see :func:`list_backbones`).

    Returns
    -------
    BackboneSummary
        The same information as data (``.blocks``, ``.preprocessing``, ...).

    Examples
    --------
    >>> from skft import describe_backbone
    >>> summary = describe_backbone("efficientnet_lite0")  # doctest: +ELLIPSIS
    backbone: efficientnet_lite0
    ...
    >>> len(summary.blocks)
    9
    """
    summary = summarize_backbone(name)
    print(summary.to_text())
    return summary
