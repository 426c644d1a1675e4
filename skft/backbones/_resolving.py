"""Building a registered backbone with its weights, once per process, and splitting it into blocks.

The weights of a shipped or torchvision backbone are read once per process and kept; networks built
later either share the kept modules (CPU fits, which copy the blocks they train) or assign the kept
tensors to a skeleton of their own. Every path builds through :func:`_build_with_weights`.
"""

import copy
import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ._registry import get_spec, reset_parameters
from ._splitting import split_children
from ._types import BackboneParts, Preprocessing
from ._weights_file import is_weights_path, load_into, read_state_dict


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
            load_into(model, spec.weights_filter(read_state_dict(weights)), str(weights))
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
