"""open_clip's image-text models as skft backbones: the image tower's blocks, the text tower for prompts.

``backbone="open_clip:<model name>"`` (``"open_clip:ViT-B-32"``, see ``open_clip.list_models()``) with
``weights=`` a pretrained tag (``"openai"``, ``"laion2b_s34b_b79k"``; ``"DEFAULT"`` is the first tag
open_clip lists for the model), a state-dict file of open_clip's own model, or None. open_clip builds the
network (with the tag's architecture options, e.g. QuickGELU for OpenAI's weights); skft reads the weights
itself, from the Hugging Face cache only (``open_clip_model.safetensors``, else open_clip's
``open_clip_pytorch_model.bin`` read with ``weights_only``), never downloading.

Blocks (ViT image towers): ``embeddings`` (patch projection, class token, position embedding,
``ln_pre``), then ``block_0``, ... (the residual attention blocks); the last ends with open_clip's own
pooling and projection (``ln_post``, the class token or the mean of the tokens, ``proj``), so the features
equal ``model.encode_image``. The text tower embeds class prompts for ``mode="prompt"``
(``model.encode_text`` with open_clip's tokenizer, whose vocabulary ships with the package).
Preprocessing: the tag's mean, std and interpolation; ``resize_mode="shortest"`` resizes the shorter
side and crops the centre.
"""

import contextlib
import logging
from collections import OrderedDict

from torch import nn

from ._model_part import ModelPart
from ._types import BackboneParts, Preprocessing, PretrainedWeightsMissing
from ._weights_file import is_weights_path, load_into, read_state_dict

PREFIX = "open_clip:"
CLIP_EXTRA_HINT = "backbone='open_clip:...' needs the clip extra: pip install \"skft[clip]\"."
_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_EMBEDDING = ("conv1", "class_embedding", "positional_embedding", "patch_dropout", "ln_pre")
_POOLING = ("attn_pool", "attn_pool_contrastive", "ln_post", "proj")


def import_open_clip():
    """Import and return ``open_clip``, or raise an ImportError naming the ``clip`` extra.

    Returns
    -------
    module
    """
    try:
        import open_clip
    except ImportError as error:
        raise ImportError(CLIP_EXTRA_HINT) from error
    return open_clip


def is_open_clip_backbone(backbone):
    """Whether ``backbone`` names an open_clip model (``"open_clip:<name>"``).

    Parameters
    ----------
    backbone : object

    Returns
    -------
    bool
    """
    return isinstance(backbone, str) and backbone.startswith(PREFIX)


@contextlib.contextmanager
def _quiet():
    """Silence open_clip's warning that a model was built without pretrained weights (skft loads them)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


class OpenClipModel:
    """One ``"open_clip:<name>"`` backbone: building, weights, blocks, preprocessing, text tower.

    Parameters
    ----------
    backbone : str
    """

    def __init__(self, backbone):
        open_clip = import_open_clip()
        self.name = backbone[len(PREFIX) :]
        if self.name not in open_clip.list_models():
            raise ValueError(
                f"backbone={backbone!r}: {self.name!r} is not an open_clip model. See open_clip.list_models()."
            )

    def _tag(self, weights):
        open_clip = import_open_clip()
        tags = open_clip.list_pretrained_tags_by_model(self.name)
        if weights is None or is_weights_path(weights):
            return None
        if weights == "DEFAULT":  # a model open_clip lists no weights for has none to read
            return tags[0] if tags else None
        if weights not in tags:
            raise ValueError(
                f"weights={weights!r} is not a pretrained tag of open_clip model {self.name!r}. Valid tags: {tags} "
                "(or 'DEFAULT' for the first, None, or the path of a state dict file)."
            )
        return weights

    def _tag_config(self, weights):
        tag = self._tag(weights)
        return import_open_clip().get_pretrained_cfg(self.name, tag) if tag else {}

    def skeleton(self, weights):
        """open_clip's model with the tag's architecture options, randomly initialised (buildable on ``meta``).

        Parameters
        ----------
        weights : str, path or None

        Returns
        -------
        nn.Module
        """
        import torch

        open_clip = import_open_clip()
        config = self._tag_config(weights)
        with _quiet():
            model = open_clip.create_model(
                self.name,
                pretrained=None,
                force_quick_gelu=bool(config.get("quick_gelu", False)),
                device=torch.get_default_device(),
            )
        return model.eval()

    def weights_file(self, weights):
        """Where the tag's weights are in the Hugging Face cache (None when not there, or not a tag).

        Parameters
        ----------
        weights : str, path or None

        Returns
        -------
        str or None
        """
        from huggingface_hub import try_to_load_from_cache

        repo_id = self._tag_config(weights).get("hf_hub", "").strip("/")
        for filename in _HUB_FILES if repo_id else ():
            path = try_to_load_from_cache(repo_id, filename)
            if isinstance(path, str):
                return path
        return None

    def build(self, weights):
        """The model with the tag's weights, read from the Hugging Face cache.

        Parameters
        ----------
        weights : str or None

        Returns
        -------
        nn.Module
        """
        model = self.skeleton(weights)
        if weights is not None:
            path = self.weights_file(weights)
            if path is None:
                raise PretrainedWeightsMissing(self._missing_message(weights))
            load_into(model, read_state_dict(path), path)
        return model

    def _missing_message(self, weights):
        from huggingface_hub import constants

        repo_id = self._tag_config(weights).get("hf_hub", "").strip("/")
        if not repo_id:
            return (
                f"The weights {weights!r} of backbone='open_clip:{self.name}' are not on the Hugging Face Hub, which "
                "is where skft reads them from offline. Pass weights=<path of a state dict of this open_clip model>."
            )
        return (
            f"The weights {weights!r} of backbone='open_clip:{self.name}' are not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}), and skft never downloads. On a machine with internet run `hf download "
            f"{repo_id} {_HUB_FILES[0]}` (or {_HUB_FILES[1]}), then copy its cache folder here (set HF_HOME or "
            "HF_HUB_CACHE to where it is), or pass weights=<path of the file>."
        )

    def preprocessing(self, weights):
        """The tag's mean, std and interpolation at the image tower's size.

        Parameters
        ----------
        weights : str, path or None

        Returns
        -------
        Preprocessing
        """
        import torch

        open_clip = import_open_clip()
        config = self._tag_config(weights)
        with torch.device("meta"):
            model = self.skeleton(weights)
        settings = dict(open_clip.get_model_preprocess_cfg(model))
        settings.update({key: config[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in config})
        size = int(settings["size"][-1] if isinstance(settings["size"], (tuple, list)) else settings["size"])
        return Preprocessing(
            image_size=size,
            mean=tuple(settings["mean"]),
            std=tuple(settings["std"]),
            min_size=size,
            fixed_size=True,
            interpolation=settings.get("interpolation", "bicubic"),
            crop_pct=1.0 if settings.get("resize_mode", "shortest") == "shortest" else None,
        )

    def split(self, model):
        """The image tower's blocks, the last ending with open_clip's pooling and projection.

        Parameters
        ----------
        model : nn.Module

        Returns
        -------
        BackboneParts
        """
        from open_clip.transformer import VisionTransformer

        visual = model.visual
        if type(visual) is not VisionTransformer or not visual.transformer.batch_first:
            raise ValueError(
                f"Cannot split backbone='open_clip:{self.name}': its image tower is {type(visual).__name__}; skft "
                "splits open_clip's VisionTransformer towers (ViT-*, batch first)."
            )
        blocks = [("embeddings", ModelPart(visual, _EMBEDDING, embed_patches))]
        blocks += [(f"block_{i}", _ResidualBlock(block)) for i, block in enumerate(visual.transformer.resblocks)]
        last_name, last = blocks[-1]
        tail = OrderedDict([(last_name, last), ("pool", ModelPart(visual, _POOLING, pool_and_project))])
        blocks[-1] = (last_name, nn.Sequential(tail))
        pooling = "class_token" if visual.pool_type == "tok" else "avg_channels_last"
        return BackboneParts(blocks=blocks, pooling=pooling, embed_texts=_TextTower(model, self.name))


def embed_patches(view, x):
    """open_clip's ``VisionTransformer._embeds``: patches, class token, position embedding, ``ln_pre``."""
    return view._embeds(x)


def pool_and_project(view, x):
    """The end of open_clip's ``VisionTransformer.forward``: its pooling, then ``proj``."""
    pooled, _ = view._pool(x)
    return pooled @ view.proj if view.proj is not None else pooled


class _ResidualBlock(nn.Module):
    """One residual attention block of the image tower, on ``(N, L, D)`` tokens."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x)


class _TextTower:
    """Texts embedded by the model's text tower (``encode_text``, open_clip's tokenizer)."""

    def __init__(self, model, name):
        self.model = model
        self.name = name

    def __call__(self, texts):
        import torch

        tokens = import_open_clip().get_tokenizer(self.name)(list(texts))
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            return self.model.encode_text(tokens.to(device)).float().cpu().clone()
