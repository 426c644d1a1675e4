"""Text input: validating texts, tokenising each at its own length, digests for the cache, padding batches."""

from ._collate import pad_activations, pad_token_ids, unpad_activations
from ._tokenize import TextTruncationWarning, text_digests, tokenize_texts
from ._validation import check_texts

__all__ = [
    "TextTruncationWarning",
    "check_texts",
    "pad_activations",
    "pad_token_ids",
    "text_digests",
    "tokenize_texts",
    "unpad_activations",
]
