"""timm's image models as skft backbones: names, weights read offline, blocks, preprocessing.

``backbone="timm:<model name>"`` (``"timm:convnext_tiny.fb_in22k"``: an architecture and, after the dot,
a pretrained tag) or ``"timm:hf-hub:<repo id>"`` (a timm model published on the Hugging Face Hub, its
``config.json`` naming the architecture). timm builds the network (``timm.create_model(...,
pretrained=False, num_classes=0)``: no classifier); skft reads the weights itself, offline:

- ``weights="DEFAULT"``: the ``model.safetensors`` of the model's Hub repository, from the Hugging Face
  cache (``pretrained_cfg["hf_hub_id"]``, or the ``hf-hub:`` repository). Nothing is downloaded; a
  missing file raises :class:`~skft.backbones.PretrainedWeightsMissing` saying how to put it there.
- ``weights=<file>``: a state dict of timm's own model (``.safetensors``, or a ``weights_only`` pickle).
- ``weights=None``: timm's own random initialisation.

The classifier's tensors (``pretrained_cfg["classifier"]``) are dropped from the weights: the features are
timm's pre-logits, ``model.forward_head(model.forward_features(x), pre_logits=True)``.

Blocks, per family (timm names the stages in ``feature_info``):

- ResNet, ResNeXt, SE-ResNet, ... (timm's ``ResNet``, 5): ``stem`` (conv1, bn1, act1, maxpool),
  ``layer1``-``layer4``.
- EfficientNet, EfficientNetV2, MobileNetV2-style (timm's ``EfficientNet``, stages + 2): ``stem`` (conv_stem,
  bn1), ``stage1``-``stageN`` (the children of ``blocks``), ``head_conv`` (conv_head, bn2).
- ConvNeXt (5): ``stem``, ``stage1``-``stage4`` (the last with ``norm_pre``).
- ViT, DeiT, ... (timm's ``VisionTransformer``, depth + 1): ``patch_embedding`` (patch projection, class
  and register tokens, position embedding, ``norm_pre``), ``block_0``, ... (the last with ``norm``).

The last block ends with timm's own ``forward_head(..., pre_logits=True)`` (global pooling, and the head's
norm where the family has one: ConvNeXt's ``head.norm``, ViT's ``fc_norm``), so the features at the full
depth are exactly timm's pre-logits; an earlier ``feature_layer`` is pooled by skft (spatial mean; ViT: the
class token, or the mean of the tokens for a model pooled by average).

Preprocessing is timm's data config, resolved as ``timm.data.resolve_data_config`` resolves it from the
model's ``pretrained_cfg``: input size, mean, std, interpolation and centre-crop fraction.
"""

import json
import os
from collections import OrderedDict

from torch import nn

from ._model_part import ModelPart
from ._types import BackboneParts, Preprocessing, PretrainedWeightsMissing
from ._weights_file import is_weights_path, load_into, read_state_dict

PREFIX = "timm:"
HUB_PREFIX = "hf-hub:"
TIMM_EXTRA_HINT = "backbone='timm:...' needs the timm extra: pip install \"skft[timm]\"."
_WEIGHTS_FILE = "model.safetensors"
_FLOOR_MIN_SIZE = 32


def import_timm():
    """Import and return ``timm``, or raise an ImportError naming the ``timm`` extra.

    Returns
    -------
    module
    """
    try:
        import timm
    except ImportError as error:
        raise ImportError(TIMM_EXTRA_HINT) from error
    return timm


def is_timm_backbone(backbone):
    """Whether ``backbone`` names a timm model (``"timm:<name>"``).

    Parameters
    ----------
    backbone : object

    Returns
    -------
    bool
    """
    return isinstance(backbone, str) and backbone.startswith(PREFIX)


#: timm's modules whose models are of the families skft splits (see :func:`split_timm_model`).
_SPLIT_MODULES = ("resnet", "efficientnet", "convnext", "vision_transformer")


def timm_backbone_names():
    """The timm models with pretrained weights of the families skft splits, as ``"timm:<name>.<tag>"``.

    Returns
    -------
    list of str
        Empty without timm.
    """
    return sorted({name for names in timm_backbone_families().values() for name in names})


def timm_backbone_families():
    """:func:`timm_backbone_names` by the timm module that defines them (``"resnet"``, ``"convnext"``, ...).

    Returns
    -------
    dict of str to list of str
        Module -> its ``"timm:..."`` names, sorted; empty without timm.
    """
    try:
        timm = import_timm()
    except ImportError:
        return {}
    return {
        module: sorted({PREFIX + name for name in timm.list_models(module=module, pretrained=True)})
        for module in _SPLIT_MODULES
    }


class TimmModel:
    """Where one ``"timm:..."`` backbone comes from: its architecture, pretrained config and weights.

    Reading it reads no weights: a ``timm:<name>`` needs nothing on disk, a ``timm:hf-hub:<repo>``
    reads the repository's ``config.json`` from the Hugging Face cache.

    Parameters
    ----------
    backbone : str
        ``"timm:<model name>"`` or ``"timm:hf-hub:<repo id>"``.
    """

    def __init__(self, backbone):
        timm = import_timm()
        self.name = backbone[len(PREFIX) :]
        if self.name.startswith(HUB_PREFIX):
            self.hub_id = self.name[len(HUB_PREFIX) :]
            config = _read_hub_config(self.hub_id)
            self.architecture = config["architecture"]
            self.model_args = dict(config.get("model_args", {}))
            self.pretrained_cfg = dict(config.get("pretrained_cfg", {}), hf_hub_id=self.hub_id)
        else:
            if not timm.is_model(self.name):
                close = timm.list_models(f"*{self.name.split('.')[0][:12]}*", pretrained=True)[:5]
                raise ValueError(
                    f"backbone={backbone!r}: {self.name!r} is not a timm model. Close names: {close}. See "
                    "timm.list_models(pretrained=True), or pass 'timm:hf-hub:<repo id>' for a model on the Hub."
                )
            self.architecture = self.name
            self.model_args = {}
            self.pretrained_cfg = (timm.models.get_pretrained_cfg(self.name) or _no_cfg()).to_dict()
            self.hub_id = self.pretrained_cfg.get("hf_hub_id")

    def skeleton(self, weights):
        """The network the weights are loaded into, with timm's random initialisation (buildable on ``meta``).

        Parameters
        ----------
        weights : {"DEFAULT", None} or path

        Returns
        -------
        nn.Module
            timm's model without its classifier (``num_classes=0``).
        """
        _check_weights(weights, self.name)
        timm = import_timm()
        return timm.create_model(
            self.architecture, pretrained=False, num_classes=0, pretrained_cfg=self.pretrained_cfg, **self.model_args
        )

    def build(self, weights):
        """The network with its weights: the skeleton, and the Hub weights for ``"DEFAULT"``.

        Parameters
        ----------
        weights : {"DEFAULT", None}

        Returns
        -------
        nn.Module
        """
        model = self.skeleton(weights)
        if weights is not None:
            path = self.weights_file(weights)
            if path is None or not os.path.isfile(path):
                raise PretrainedWeightsMissing(self._missing_message())
            load_into(model, self.without_classifier(read_state_dict(path)), path)
        return model

    def split(self, model):
        """Split a network built here into its blocks (:func:`split_timm_model`).

        Parameters
        ----------
        model : nn.Module

        Returns
        -------
        BackboneParts
        """
        return split_timm_model(PREFIX + self.name, model)

    def without_classifier(self, state_dict):
        """``state_dict`` without the classifier's tensors (``pretrained_cfg["classifier"]``).

        Parameters
        ----------
        state_dict : dict of str to Tensor

        Returns
        -------
        dict of str to Tensor
        """
        classifiers = self.pretrained_cfg.get("classifier") or ()
        prefixes = tuple(f"{name}." for name in ([classifiers] if isinstance(classifiers, str) else classifiers))
        return {key: value for key, value in state_dict.items() if not prefixes or not key.startswith(prefixes)}

    def weights_file(self, weights):
        """Where the ``"DEFAULT"`` weights are in the Hugging Face cache (None when they are not there).

        Parameters
        ----------
        weights : {"DEFAULT", None} or path

        Returns
        -------
        str or None
        """
        if weights != "DEFAULT" or not self.hub_id:
            return None
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = self.hub_id.partition("@")
        path = try_to_load_from_cache(repo_id, _WEIGHTS_FILE, revision=revision or None)
        return path if isinstance(path, str) else None

    def preprocessing(self, weights):
        """What the model expects of its input: timm's data config for its ``pretrained_cfg``.

        Parameters
        ----------
        weights : {"DEFAULT", None} or path
            Unused: the preprocessing belongs to the architecture and tag named.

        Returns
        -------
        Preprocessing
        """
        timm = import_timm()
        config = timm.data.resolve_data_config({}, pretrained_cfg=self.pretrained_cfg)
        size = int(config["input_size"][-1])
        fixed = bool(self.pretrained_cfg.get("fixed_input_size", False))
        return Preprocessing(
            image_size=size,
            mean=tuple(config["mean"]),
            std=tuple(config["std"]),
            min_size=size if fixed else _FLOOR_MIN_SIZE,
            fixed_size=fixed,
            interpolation=config["interpolation"],
            crop_pct=float(config["crop_pct"]),
        )

    def _missing_message(self):
        if not self.hub_id:
            return (
                f"backbone='timm:{self.name}' has no weights on the Hugging Face Hub that skft can read offline. "
                "Pass weights=<path of a .safetensors state dict of this timm model>, or weights=None."
            )
        from huggingface_hub import constants

        return (
            f"The weights of backbone='timm:{self.name}' are not in the Hugging Face cache ({constants.HF_HUB_CACHE}), "
            f"and skft never downloads. On a machine with internet run `hf download {self.hub_id} {_WEIGHTS_FILE} "
            f"config.json`, then copy its cache folder here (set HF_HOME or HF_HUB_CACHE to where it is), or pass "
            "weights=<path of the .safetensors file>."
        )


def _no_cfg():
    from timm.models import PretrainedCfg

    return PretrainedCfg()


def _check_weights(weights, name):
    if weights is not None and weights != "DEFAULT" and not is_weights_path(weights):
        raise ValueError(
            f"weights={weights!r} is not available for backbone 'timm:{name}'. Use 'DEFAULT' (the weights of the tag "
            "in the name, read from the Hugging Face cache), None, or a path to a .safetensors/.pth state dict."
        )


def _read_hub_config(repo_id):
    """The ``config.json`` of a timm model on the Hub, from the Hugging Face cache only."""
    from huggingface_hub import constants, hf_hub_download

    try:
        path = hf_hub_download(repo_id, "config.json", local_files_only=True)
    except Exception as error:  # huggingface_hub raises several types for "not in the cache"
        raise FileNotFoundError(
            f"backbone='timm:hf-hub:{repo_id}': the model is not in the Hugging Face cache ({constants.HF_HUB_CACHE}), "
            f"and skft never downloads. On a machine with internet run `hf download {repo_id} config.json "
            f"{_WEIGHTS_FILE}`, then copy its cache folder here (set HF_HOME or HF_HUB_CACHE to where it is)."
        ) from error
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise ValueError(f"{path} is not a timm model config (no 'architecture'). Is {repo_id!r} a timm model?")
    return config


def pre_logits(view, x):
    """timm's ``forward_head(x, pre_logits=True)``: global pooling and the head's norm, no classifier."""
    return view.forward_head(x, pre_logits=True)


def vit_embedding(view, x):
    """The first steps of a timm ViT's ``forward_features``: patches, tokens, position embedding, ``norm_pre``."""
    return view.norm_pre(view.patch_drop(view._pos_embed(view.patch_embed(x))))


def _sequential(model, names):
    return nn.Sequential(OrderedDict((name, getattr(model, name)) for name in names))


def _with_pre_logits(blocks, model, keep, extra=()):
    """``blocks`` with the last one followed by ``extra`` modules and timm's pre-logits (pooling, head norm)."""
    last_name, last = blocks[-1]
    tail = OrderedDict([(last_name, last), *extra, ("pre_logits", ModelPart(model, keep, pre_logits))])
    return [*blocks[:-1], (last_name, nn.Sequential(tail))]


def _split_resnet(model):
    blocks = [("stem", _sequential(model, ["conv1", "bn1", "act1", "maxpool"]))]
    blocks += [(f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]
    return _with_pre_logits(blocks, model, ("global_pool",)), "avg"


def _split_efficientnet(model):
    blocks = [("stem", _sequential(model, ["conv_stem", "bn1"]))]
    blocks += [(f"stage{i}", stage) for i, stage in enumerate(model.blocks, 1)]
    blocks.append(("head_conv", _sequential(model, ["conv_head", "bn2"])))
    return _with_pre_logits(blocks, model, ("global_pool",)), "avg"


def _split_convnext(model):
    blocks = [("stem", model.stem)] + [(f"stage{i}", stage) for i, stage in enumerate(model.stages, 1)]
    return _with_pre_logits(blocks, model, ("head",), extra=[("norm_pre", model.norm_pre)]), "avg"


_VIT_EMBEDDING = ("patch_embed", "cls_token", "reg_token", "pos_embed", "pos_drop", "patch_drop", "norm_pre")
_VIT_HEAD = ("attn_pool", "fc_norm", "head_drop")


def _split_vit(model):
    blocks = [("patch_embedding", ModelPart(model, _VIT_EMBEDDING, vit_embedding))]
    blocks += [(f"block_{i}", block) for i, block in enumerate(model.blocks)]
    pooling = "class_token" if model.global_pool == "token" else "avg_channels_last"
    return _with_pre_logits(blocks, model, _VIT_HEAD, extra=[("norm", model.norm)]), pooling


def _splitters():
    from timm.models.convnext import ConvNeXt
    from timm.models.efficientnet import EfficientNet
    from timm.models.resnet import ResNet
    from timm.models.vision_transformer import VisionTransformer

    return {
        ResNet: _split_resnet,
        EfficientNet: _split_efficientnet,
        ConvNeXt: _split_convnext,
        VisionTransformer: _split_vit,
    }


def split_timm_model(name, model):
    """Split a timm model into its blocks (see the module docstring for each family).

    The blocks hold the model's own modules and tensors, not copies.

    Parameters
    ----------
    name : str
        The backbone's name, for messages.
    model : nn.Module
        Built by :meth:`TimmModel.build` or :meth:`TimmModel.skeleton`.

    Returns
    -------
    BackboneParts

    Raises
    ------
    ValueError
        For a timm family skft does not split yet.
    """
    splitters = _splitters()
    splitter = splitters.get(type(model))
    if splitter is not None:
        blocks, pooling = splitter(model)
        return BackboneParts(blocks=blocks, pooling=pooling)
    known = sorted(family.__name__ for family in splitters)
    raise ValueError(
        f"Cannot split backbone={name!r}: timm's {type(model).__name__} is not a family skft splits yet ({known}). "
        "Build it with timm yourself and pass the module as backbone=<nn.Module>, or register it with "
        "skft.register_backbone."
    )
