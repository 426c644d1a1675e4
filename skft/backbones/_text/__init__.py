"""Text encoders from Hugging Face ``transformers``: blocks, pooling, tokenizer, sources.

``transformers`` is imported only when a model is read, so importing this package is cheap and works
without the ``text`` extra.
"""

from ._blocks import (
    TEXT_POOLINGS,
    EmbeddingBlock,
    MPNetLayerBlock,
    RelativePositionBias,
    TextPool,
    TextState,
    TransformerLayerBlock,
)
from ._huggingface import (
    FAMILIES,
    TEXT_EXTRA_HINT,
    build_text_model,
    quiet_transformers,
    read_text_preprocessing,
    split_text_model,
    text_pooling,
    tokenizer_digest,
)
from ._preprocessing import TextPreprocessing
from ._sources import (
    MINILM,
    TextBackboneSpec,
    huggingface_model_dir,
    is_text_backbone,
    minilm_model_dir,
    text_backbone_names,
    text_backbone_spec,
)

__all__ = [
    "FAMILIES",
    "MINILM",
    "TEXT_EXTRA_HINT",
    "TEXT_POOLINGS",
    "EmbeddingBlock",
    "MPNetLayerBlock",
    "RelativePositionBias",
    "TextBackboneSpec",
    "TextPool",
    "TextPreprocessing",
    "TextState",
    "TransformerLayerBlock",
    "build_text_model",
    "huggingface_model_dir",
    "is_text_backbone",
    "minilm_model_dir",
    "quiet_transformers",
    "read_text_preprocessing",
    "split_text_model",
    "text_backbone_names",
    "text_backbone_spec",
    "text_pooling",
    "tokenizer_digest",
]
