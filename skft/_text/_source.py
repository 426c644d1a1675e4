"""Texts as the network reads them: tokenised once, each at its own length, with their cache digests."""

from dataclasses import dataclass

import numpy as np

from ._tokenize import text_digests, tokenize_texts


def object_array(items):
    """A 1-D object array holding ``items`` as they are (arrays of equal length stay separate items).

    Parameters
    ----------
    items : sequence

    Returns
    -------
    numpy.ndarray of dtype object
    """
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        array[index] = item
    return array


@dataclass
class TokenizedTexts:
    """Token ids of texts, one 1-D int64 array per text, and one content digest per text.

    Parameters
    ----------
    ids : numpy.ndarray of dtype object
        Token ids of each text (special tokens added, truncated to ``max_length``, unpadded).
    digests : numpy.ndarray of dtype object
        :func:`text_digests` of each text (content, tokenizer identity, ``max_length``).
    pad_token_id : int
    """

    ids: np.ndarray
    digests: np.ndarray
    pad_token_id: int

    def __len__(self):
        return len(self.ids)

    def take(self, indices):
        """The texts at ``indices``, in that order.

        Parameters
        ----------
        indices : array-like of int

        Returns
        -------
        TokenizedTexts
        """
        return TokenizedTexts(self.ids[indices], self.digests[indices], self.pad_token_id)


def tokenized_texts(texts, text_input):
    """Tokenise validated texts once, each at its own length, for a network's :class:`TextInput`.

    Parameters
    ----------
    texts : list of str
        See :func:`check_texts`.
    text_input : skft._nn.network.TextInput
        Holds the tokenizer (``preprocessing``) and ``max_length``.

    Returns
    -------
    TokenizedTexts
    """
    pre = text_input.preprocessing
    ids = tokenize_texts(texts, pre.tokenizer, text_input.max_length)
    digests = text_digests(texts, pre.tokenizer_digest, text_input.max_length)
    return TokenizedTexts(object_array(ids), object_array(digests), pre.pad_token_id)
