"""Turning texts into token ids, each at its own length, and identifying each text for the cache."""

import hashlib
import warnings

import numpy as np

from ..backbones._text import quiet_transformers


class TextTruncationWarning(UserWarning):
    """Some texts were longer than the backbone's ``max_length`` and were truncated."""


def tokenize_texts(texts, tokenizer, max_length):
    """Token ids of each text at its own length: special tokens added, no padding, truncated to ``max_length``.

    Texts longer than ``max_length`` tokens are truncated the way the tokenizer does (its special
    tokens kept), with one warning per call that says how many were.

    Parameters
    ----------
    texts : list of str
        Validated texts (see :func:`check_texts`).
    tokenizer : transformers.PreTrainedTokenizerBase
    max_length : int
        Tokens per text, special tokens included.

    Returns
    -------
    list of numpy.ndarray of int64
        One 1-D array per text, of length at most ``max_length``.
    """
    with quiet_transformers():
        ids = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
        long = [index for index, sequence in enumerate(ids) if len(sequence) > max_length]
        if long:
            cut = tokenizer([texts[index] for index in long], truncation=True, max_length=max_length)["input_ids"]
            for index, sequence in zip(long, cut):
                ids[index] = sequence
    if long:
        warnings.warn(
            f"{len(long)} of {len(texts)} texts are longer than max_length={max_length} tokens and were truncated "
            "to it. Pass a larger max_length (up to the backbone's limit) to keep more of them.",
            TextTruncationWarning,
            stacklevel=2,
        )
    return [np.asarray(sequence, dtype=np.int64) for sequence in ids]


def text_digests(texts, tokenizer_digest, max_length):
    """One hex digest per text, of its content keyed with the tokenizer's identity and ``max_length``.

    Two texts get the same digest exactly when the same tokenizer, at the same ``max_length``,
    turns them into the same characters: what the activation cache needs to reuse a text's
    activations (with the frozen part's own identity added by the cache).

    Parameters
    ----------
    texts : list of str
    tokenizer_digest : str
        ``TextPreprocessing.tokenizer_digest``.
    max_length : int

    Returns
    -------
    list of str
        32 hex characters each.
    """
    prefix = hashlib.blake2b(f"text|{tokenizer_digest}|{int(max_length)}|".encode(), digest_size=16)
    digests = []
    for text in texts:
        digest = prefix.copy()
        digest.update(text.encode("utf-8", "surrogatepass"))
        digests.append(digest.hexdigest())
    return digests
