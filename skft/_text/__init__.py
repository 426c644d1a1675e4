"""Text input: validating texts, tokenising each at its own length, digests for the cache, padding batches."""

from ._collate import TextCollate, pad_activations, pad_text_inputs, pad_token_ids, unpad_activations
from ._source import TokenizedTexts, object_array, tokenized_texts
from ._tokenize import TextTruncationWarning, text_digests, tokenize_texts
from ._validation import check_texts

__all__ = [
    "TextCollate",
    "TextTruncationWarning",
    "TokenizedTexts",
    "object_array",
    "pad_text_inputs",
    "tokenized_texts",
    "check_texts",
    "pad_activations",
    "pad_token_ids",
    "text_digests",
    "tokenize_texts",
    "unpad_activations",
]
