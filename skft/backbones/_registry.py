"""One registry for every backbone: the shipped EfficientNet-Lite0, torchvision's models, users' own."""

import difflib
import hashlib
import os
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from . import _efficientnet_lite
from . import _torchvision as tv
from ._digest import UndescribableAttribute, module_digest, qualified_name
from ._hf_vision import HuggingFaceVisionModel, has_text_tower, vision_model_source
from ._open_clip import OpenClipModel, is_open_clip_backbone
from ._splitting import split_children
from ._text import is_text_backbone, text_backbone_names, text_backbone_spec
from ._timm import TimmModel, is_timm_backbone, timm_backbone_names
from ._types import IMAGENET_MEAN, IMAGENET_STD, POOLINGS, BackboneParts, Preprocessing


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
        ``"shipped"``, ``"torchvision"``, ``"timm"``, ``"open_clip"``, ``"huggingface"``, ``"local"`` or
        ``"user"``.
    weights_file : callable, optional
        ``weights_file(weights) -> str or None``: where the weights live on disk, if anywhere.
    registration : dict, optional
        For user registrations: the arguments of :func:`register_backbone`.
    skeleton : callable, optional
        ``skeleton(weights) -> nn.Module``: the network ``build(weights)`` returns, built with the same
        arguments but without reading the weights (freshly initialised; buildable on the ``meta``
        device). ``build(weights)`` is this skeleton with the weights' state dict loaded. ``None``
        (user registrations, whose builder returns its weights): ``build`` itself.
    modality : str
        ``"image"``; text encoders come as :class:`skft.backbones._text.TextBackboneSpec` (``"text"``),
        which has the same fields.
    weights_filter : callable, optional
        ``weights_filter(state_dict) -> state_dict``: the tensors of a ``weights=<file>`` the network
        holds (timm: without the classifier's). Default: all of them.
    """

    name: str
    build: Callable
    split: Callable
    preprocessing: Callable
    source: str
    weights_file: Callable = field(default=lambda weights: None)
    registration: dict = None
    skeleton: Callable = None
    modality: str = "image"
    weights_filter: Callable = field(default=lambda state_dict: state_dict)


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
    return BackboneSpec(
        name=name,
        build=lambda weights: tv.build_torchvision_model(name, weights),
        skeleton=lambda weights: tv.torchvision_skeleton(name, weights),
        split=lambda model: tv.split_torchvision_model(name, model),
        preprocessing=lambda weights: tv.torchvision_preprocessing(name, weights),
        source="torchvision",
        weights_file=lambda weights: tv.torchvision_weights_file(name, weights),
    )


def _family_spec(name, model, source, **fields):
    """The spec of a backbone whose family object builds, splits and preprocesses it (timm, transformers, open_clip)."""
    return BackboneSpec(
        name=name,
        build=model.build,
        skeleton=model.skeleton,
        split=model.split,
        preprocessing=model.preprocessing,
        source=source,
        weights_file=model.weights_file,
        **fields,
    )


def image_backbone_reads_prompts(backbone):
    """Whether ``backbone`` is an image backbone with a text tower, so that ``mode="prompt"`` can use it.

    Parameters
    ----------
    backbone : object

    Returns
    -------
    bool
        True for ``"open_clip:<name>"`` and for transformers CLIP or SigLIP checkpoints.
    """
    return is_open_clip_backbone(backbone) or has_text_tower(backbone)


def _torchvision_names():
    return tv.torchvision_model_names()


def list_backbones():
    """List every registered backbone name.

    Returns
    -------
    list of str
        ``"efficientnet_lite0"`` (shipped with its ImageNet weights, works offline), every
        torchvision classification model, every timm model with pretrained weights (``"timm:<name>"``,
        when timm is installed), the shipped text encoder ``"all-MiniLM-L6-v2"`` and the names added
        with :func:`register_backbone`. Any Hugging Face encoder also works without
        being listed: ``"hf:<model id>"`` (from the Hugging Face cache) or a model directory's path.

    Examples
    --------
    >>> from skft import list_backbones
    >>> "efficientnet_lite0" in list_backbones() and "resnet18" in list_backbones()
    True
    """
    names = set(_shipped_specs()) | set(_torchvision_names()) | set(text_backbone_names()) | set(_USER_SPECS)
    return sorted(names | set(timm_backbone_names()))


def get_spec(name):
    """Return the :class:`BackboneSpec` registered under ``name``.

    Registry names come first; then text encoders: ``"all-MiniLM-L6-v2"``, ``"hf:<model id>"``
    or the path of a model directory (see :func:`skft.backbones._text.text_backbone_spec`).

    Parameters
    ----------
    name : str or path

    Returns
    -------
    BackboneSpec or TextBackboneSpec

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
    if is_timm_backbone(name):
        timm_model = TimmModel(name)
        return _family_spec(name, timm_model, "timm", weights_filter=timm_model.without_classifier)
    if is_open_clip_backbone(name):
        return _family_spec(name, OpenClipModel(name), "open_clip")
    vision = vision_model_source(name)
    if vision is not None:
        model_dir, source = vision
        return _family_spec(os.fspath(name), HuggingFaceVisionModel(model_dir), source)
    if is_text_backbone(name):
        return text_backbone_spec(name)
    close = difflib.get_close_matches(str(name), list_backbones(), n=5, cutoff=0.5)
    hint = f" Did you mean one of {close}?" if close else ""
    raise ValueError(f"backbone={name!r} is not a registered backbone.{hint} See skft.list_backbones().")


def backbone_modality(backbone):
    """What a ``backbone`` argument reads: ``"text"`` for a text encoder, else ``"image"``.

    Decided without building anything: registry names are image backbones; a text encoder is
    ``"all-MiniLM-L6-v2"``, ``"hf:<model id>"`` or a directory holding ``config.json``, unless that
    ``config.json`` names a vision family (ViT, DINOv2, ConvNeXt, Swin, CLIP, SigLIP).

    Parameters
    ----------
    backbone : str, path or nn.Module

    Returns
    -------
    {"image", "text"}
    """
    if isinstance(backbone, str) and (backbone in _USER_SPECS or backbone in _shipped_specs()):
        return "image"
    return "text" if is_text_backbone(backbone) and vision_model_source(backbone) is None else "image"


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
        builder=builder,
        blocks=blocks,
        pooling=pooling,
        image_size=image_size,
        min_image_size=min_image_size,
        fixed_image_size=fixed_image_size,
        mean=tuple(mean),
        std=tuple(std),
    )
    _USER_SPECS[name] = _user_spec(name, registration)


def _user_spec(name, registration):
    preprocessing = Preprocessing(
        image_size=registration["image_size"],
        mean=registration["mean"],
        std=registration["std"],
        min_size=registration["min_image_size"],
        fixed_size=registration["fixed_image_size"],
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
    and process to compute it. None when that network holds an attribute the digest cannot
    describe: a carried registration then always replaces a worker's own.

    Parameters
    ----------
    name : str
        A user-registered backbone name.

    Returns
    -------
    str or None
        32 lowercase hex digits.
    """
    registration = _USER_SPECS[name].registration
    remembered = _REGISTRATION_DIGESTS.get(name)
    if remembered is not None and remembered[0] is registration:
        return remembered[1]
    values = {key: value for key, value in registration.items() if key != "builder"}
    network = _build_user_network(registration["builder"], "DEFAULT")
    try:
        text = repr((qualified_name(registration["builder"]), sorted(values.items()), module_digest([("", network)])))
    except UndescribableAttribute:
        return None
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


def reset_parameters(model):
    """Re-initialise every submodule that knows how (``reset_parameters``), in place.

    Parameters
    ----------
    model : nn.Module
    """
    for module in model.modules():
        if hasattr(module, "reset_parameters") and module is not model:
            module.reset_parameters()
