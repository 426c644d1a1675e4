"""Hugging Face vision encoders (transformers) as skft backbones: blocks, pooling, preprocessing.

``backbone="hf:<model id>"`` (from the Hugging Face cache, never downloaded) or the path of a model
directory whose ``config.json`` names a vision family: ViT, DINOv2, ConvNeXt, Swin, and the vision tower
of CLIP and SigLIP. A whole CLIP/SigLIP checkpoint gives its ``vision_model`` as the blocks and its text
tower for ``mode="prompt"`` (class prompts embedded in the image features' space). Weights are read from
``model.safetensors`` only (or ``weights=<file>``: a state dict of transformers' own model).

Blocks: ``embeddings`` (CLIP: with ``pre_layrnorm``), then each encoder layer (``layer_0``, ...; ConvNeXt
and Swin: ``stage_0``, ... as transformers names their stages). The last block ends with the model's own
pooling, as its model card and transformers' ``pooler_output`` give it:

- ViT: the final ``layernorm``, then the class token (as ``ViTForImageClassification`` reads it; the
  ``pooler``'s dense + tanh is not used);
- DINOv2: the final ``layernorm``, then the class token (``pooler_output``);
- CLIP: the class token, then ``post_layernorm`` (``pooler_output``); a whole CLIP checkpoint then its
  ``visual_projection`` (``get_image_features``: the space its texts are embedded in);
- SigLIP: ``post_layernorm``, then the attention-pooling ``head`` (``pooler_output``);
- ConvNeXt: the spatial mean, then ``layernorm`` (``pooler_output``);
- Swin: ``layernorm``, then the mean over tokens (``pooler_output``).

An earlier ``feature_layer`` is pooled by skft: the class token (ViT, DINOv2, CLIP), the mean over tokens
(SigLIP, Swin) or the spatial mean (ConvNeXt).

Preprocessing comes from the directory's ``preprocessor_config.json``: ``image_mean``, ``image_std``, the
size (the crop size when ``do_center_crop``), ``resample`` (bilinear or bicubic) and the crop fraction.
"""

import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from ._text._huggingface import import_transformers, quiet_transformers
from ._text._sources import HF_PREFIX, huggingface_model_dir
from ._types import IMAGENET_MEAN, IMAGENET_STD, BackboneParts, Preprocessing

#: PIL's resampling codes (``resample`` in an image processor's config) -> skft's interpolation.
_RESAMPLE = {2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True)
class _VisionFamily:
    """How one family's model is built and split: where its layers are, its pooling, its input."""

    layers: str
    pooling: str
    fixed_size: bool = True
    tower: str = None
    model_kwargs: tuple = ()


#: ``config.model_type`` -> family.
VISION_FAMILIES = {
    "vit": _VisionFamily(layers="layers", pooling="class_token", model_kwargs=(("add_pooling_layer", False),)),
    "dinov2": _VisionFamily(layers="encoder.layer", pooling="class_token", fixed_size=False),
    "convnext": _VisionFamily(layers="encoder.stages", pooling="avg", fixed_size=False),
    "swin": _VisionFamily(layers="encoder.layers", pooling="avg_channels_last", fixed_size=False),
    "clip_vision_model": _VisionFamily(layers="encoder.layers", pooling="class_token"),
    "clip": _VisionFamily(layers="encoder.layers", pooling="class_token", tower="vision_model"),
    "siglip_vision_model": _VisionFamily(layers="encoder.layers", pooling="avg_channels_last"),
    "siglip": _VisionFamily(layers="encoder.layers", pooling="avg_channels_last", tower="vision_model"),
}


def model_type(model_dir):
    """The ``model_type`` a model directory's ``config.json`` names (read as JSON; nothing is imported).

    Parameters
    ----------
    model_dir : str

    Returns
    -------
    str or None
    """
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    return config.get("model_type") if isinstance(config, dict) else None


def is_vision_model_dir(model_dir):
    """Whether a model directory holds one of the vision families skft splits.

    Parameters
    ----------
    model_dir : str

    Returns
    -------
    bool
    """
    return model_type(model_dir) in VISION_FAMILIES


def vision_model_source(backbone):
    """Where a vision encoder named by ``backbone`` lives: ``(model_dir, source)``, or None for no vision encoder.

    Parameters
    ----------
    backbone : object
        ``"hf:<model id>"`` (looked up in the Hugging Face cache only) or a model directory's path.

    Returns
    -------
    tuple of (str, str) or None
        The directory and ``"huggingface"`` or ``"local"``.
    """
    if not isinstance(backbone, (str, os.PathLike)):
        return None
    text = os.fspath(backbone)
    if text.startswith(HF_PREFIX):
        try:
            model_dir, source = huggingface_model_dir(text[len(HF_PREFIX) :]), "huggingface"
        except (FileNotFoundError, ImportError):
            return None  # the text path says how to get it
    else:
        model_dir, source = os.path.abspath(text), "local"
    return (model_dir, source) if is_vision_model_dir(model_dir) else None


def has_text_tower(backbone):
    """Whether ``backbone`` is a transformers CLIP or SigLIP checkpoint (an image backbone with a text tower).

    Parameters
    ----------
    backbone : object

    Returns
    -------
    bool
    """
    source = vision_model_source(backbone)
    return source is not None and VISION_FAMILIES[model_type(source[0])].tower is not None


class HuggingFaceVisionModel:
    """One transformers vision encoder in a local directory: building, splitting, preprocessing.

    Parameters
    ----------
    model_dir : str
        A directory with ``config.json``, ``model.safetensors`` and ``preprocessor_config.json``.
    """

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.family = VISION_FAMILIES[model_type(model_dir)]

    def _config(self):
        transformers = import_transformers()
        with quiet_transformers():
            return transformers.AutoConfig.from_pretrained(self.model_dir, local_files_only=True)

    def skeleton(self, weights):
        """The encoder randomly initialised, as transformers initialises it (buildable on ``meta``).

        Parameters
        ----------
        weights : {"DEFAULT", None} or path

        Returns
        -------
        nn.Module
            The vision model (a CLIP/SigLIP checkpoint: its ``vision_model``), in eval mode.
        """
        import torch

        transformers = import_transformers()
        with quiet_transformers():
            model = transformers.AutoModel.from_config(
                self._config(), dtype=torch.float32, **dict(self.family.model_kwargs)
            )
        return model.eval()

    def build(self, weights):
        """The encoder with the directory's ``model.safetensors``.

        Parameters
        ----------
        weights : {"DEFAULT", None}

        Returns
        -------
        nn.Module
        """
        import torch

        transformers = import_transformers()
        if weights is None:
            return self.skeleton(None)
        if weights != "DEFAULT":
            raise ValueError(
                f"weights={weights!r} is not available for the vision model in {self.model_dir!r}. Use 'DEFAULT' "
                "(the directory's model.safetensors), None, or a path to a .safetensors state dict."
            )
        if not os.path.isfile(self.weights_file("DEFAULT")):
            raise FileNotFoundError(
                f"No model.safetensors in {self.model_dir!r}: skft reads weights from safetensors only (never a "
                "pickle). Convert them: AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)."
            )
        with quiet_transformers():
            model = transformers.AutoModel.from_pretrained(
                self.model_dir,
                local_files_only=True,
                use_safetensors=True,
                dtype=torch.float32,
                **dict(self.family.model_kwargs),
            )
        return model.eval()

    def weights_file(self, weights):
        """The directory's ``model.safetensors`` for ``"DEFAULT"``, else None.

        Parameters
        ----------
        weights : {"DEFAULT", None} or path

        Returns
        -------
        str or None
        """
        return os.path.join(self.model_dir, "model.safetensors") if weights == "DEFAULT" else None

    def split(self, model):
        """Split the encoder into ``embeddings`` and its layers, the last ending with the model's pooling.

        Parameters
        ----------
        model : nn.Module

        Returns
        -------
        BackboneParts
        """
        tower = getattr(model, self.family.tower) if self.family.tower else model
        kind = model_type_of(tower)
        layers = list(tower.get_submodule(self.family.layers))
        prefix = "stage" if kind in ("convnext", "swin") else "layer"
        layer_block = _LAYERS.get(kind, _TransformerLayer)
        blocks = [("embeddings", _EMBEDDINGS.get(kind, _Embeddings)(tower))]
        blocks += [(f"{prefix}_{i}", layer_block(layer)) for i, layer in enumerate(layers)]
        tail = [(blocks[-1][0], blocks[-1][1]), ("pooler", _POOLERS[kind](tower))]
        if hasattr(model, "visual_projection"):
            tail.append(("visual_projection", model.visual_projection))
        blocks[-1] = (blocks[-1][0], nn.Sequential(OrderedDict(tail)))
        embed_texts = _TextTower(model, self.model_dir) if self.family.tower else None
        return BackboneParts(blocks=blocks, pooling=self.family.pooling, embed_texts=embed_texts)

    def preprocessing(self, weights):
        """What the encoder expects of its input, from ``preprocessor_config.json``.

        Parameters
        ----------
        weights : {"DEFAULT", None} or path
            Unused: the preprocessing belongs to the directory.

        Returns
        -------
        Preprocessing
        """
        path = os.path.join(self.model_dir, "preprocessor_config.json")
        settings = {}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as file:
                settings = json.load(file)
        size, crop_pct = _image_size_and_crop(settings, self._vision_config())
        fixed = self.family.fixed_size
        return Preprocessing(
            image_size=size,
            mean=tuple(settings.get("image_mean", IMAGENET_MEAN)),
            std=tuple(settings.get("image_std", IMAGENET_STD)),
            min_size=size if fixed else 32,
            fixed_size=fixed,
            interpolation=_RESAMPLE.get(settings.get("resample"), "bilinear"),
            crop_pct=crop_pct,
        )

    def _vision_config(self):
        config = self._config()
        return getattr(config, "vision_config", None) or config


def model_type_of(model):
    """The ``model_type`` of a built vision model (a CLIP/SigLIP tower: its vision config's).

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    str
    """
    kind = model.config.model_type
    return {"clip": "clip_vision_model", "siglip": "siglip_vision_model"}.get(kind, kind)


def _image_size_and_crop(settings, config):
    """Input side and crop fraction from an image processor's settings (the model's ``image_size`` else)."""
    size = settings.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    resized = size.get("shortest_edge") or size.get("height") or getattr(config, "image_size", 224)
    crop = settings.get("crop_size") if settings.get("do_center_crop") else None
    if isinstance(crop, dict):
        crop = crop.get("height")
    if crop:  # as a fraction whose floor(crop / fraction) is ``resized`` despite rounding
        return int(crop), min(1.0, crop / (resized + 0.5))
    if "crop_pct" in settings and resized < 384:  # ConvNeXt's processor: resize to side / crop_pct, crop side
        return int(resized), float(settings["crop_pct"])
    return int(resized), None


class _TextTower:
    """Texts embedded by a CLIP/SigLIP checkpoint's text tower, in the space of its image features.

    Parameters
    ----------
    model : transformers.CLIPModel or transformers.SiglipModel
    model_dir : str
        Where the tokenizer is read from.
    """

    def __init__(self, model, model_dir):
        self.model = model
        self.model_dir = model_dir

    def __call__(self, texts):
        """Embed ``texts`` (``get_text_features``; SigLIP pads to the length it was trained at).

        Parameters
        ----------
        texts : list of str

        Returns
        -------
        Tensor of shape (len(texts), dim)
        """
        import torch

        transformers = import_transformers()
        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        padding = "max_length" if self.model.config.model_type == "siglip" else True
        batch = tokenizer(list(texts), padding=padding, truncation=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            features = self.model.get_text_features(**{key: value.to(device) for key, value in batch.items()})
        features = features if isinstance(features, torch.Tensor) else features.pooler_output
        return features.float().cpu().clone()


class _Embeddings(nn.Module):
    """A model's ``embeddings`` (and CLIP's ``pre_layrnorm``): images to tokens or a feature map."""

    def __init__(self, model):
        super().__init__()
        self.embeddings = model.embeddings
        self.pre_layrnorm = getattr(model, "pre_layrnorm", nn.Identity())

    def forward(self, x):
        return self.pre_layrnorm(self.embeddings(x))


class _SwinEmbeddings(_Embeddings):
    """Swin's embeddings return the patch grid's dimensions too; the tokens alone go on (the grid is square)."""

    def forward(self, x):
        return self.embeddings(x)[0]


class _Layer(nn.Module):
    """One ConvNeXt stage (and the base of the other layer blocks), called on the hidden states alone."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


class _TransformerLayer(_Layer):
    """One transformer layer, with no attention mask (every image token attends to every other)."""

    def forward(self, x):
        return self.layer(x, None)


class _SwinStage(_Layer):
    """A Swin stage, given its square patch grid's dimensions; its tokens out."""

    def forward(self, x):
        side = math.isqrt(x.shape[1])
        return self.layer(x, (side, side))[0]


class _ClassTokenPooler(nn.Module):
    """The final norm (``norm_first``: before the token is taken, ViT and DINOv2; else after, CLIP)."""

    def __init__(self, norm, norm_first):
        super().__init__()
        self.norm = norm
        self.norm_first = norm_first

    def forward(self, x):
        return self.norm(x)[:, 0] if self.norm_first else self.norm(x[:, 0])


class _MeanPooler(nn.Module):
    """ConvNeXt: the spatial mean of ``(N, C, H, W)``, then the norm; Swin: the norm, then the mean over tokens."""

    def __init__(self, norm, channels_first):
        super().__init__()
        self.norm = norm
        self.channels_first = channels_first

    def forward(self, x):
        return self.norm(x.mean(dim=(-2, -1))) if self.channels_first else self.norm(x).mean(dim=1)


class _HeadPooler(nn.Module):
    """SigLIP: ``post_layernorm``, then the attention-pooling head (the mean over tokens without one)."""

    def __init__(self, model):
        super().__init__()
        self.post_layernorm = model.post_layernorm
        self.head = model.head if getattr(model, "use_head", True) and hasattr(model, "head") else None

    def forward(self, x):
        x = self.post_layernorm(x)
        return self.head(x) if self.head is not None else x.mean(dim=1)


_EMBEDDINGS = {"swin": _SwinEmbeddings}
_LAYERS = {"swin": _SwinStage, "convnext": _Layer}
_POOLERS = {
    "vit": lambda model: _ClassTokenPooler(model.layernorm, norm_first=True),
    "dinov2": lambda model: _ClassTokenPooler(model.layernorm, norm_first=True),
    "clip_vision_model": lambda model: _ClassTokenPooler(model.post_layernorm, norm_first=False),
    "siglip_vision_model": _HeadPooler,
    "convnext": lambda model: _MeanPooler(model.layernorm, channels_first=True),
    "swin": lambda model: _MeanPooler(model.layernorm, channels_first=False),
}
