"""Padding a batch of texts (token ids or cached per-text activations) and building its attention mask.

Texts are padded per batch, on the right, to the batch's longest text, never to ``max_length``.
The attention mask (int64, 1 for real tokens) travels with the padded tensor as the state the
network's blocks take: ``(input_ids, attention_mask)`` before the embedding block,
``(hidden, attention_mask)`` after any block.
"""

import numpy as np
import torch


def _attention_mask(lengths, width):
    return (torch.arange(width).unsqueeze(0) < torch.as_tensor(lengths).unsqueeze(1)).long()


def pad_token_ids(sequences, pad_token_id):
    """Pad variable-length token ids into one batch.

    Parameters
    ----------
    sequences : sequence of 1-D array-like of int
        Token ids of each text (see :func:`tokenize_texts`), each at least 1 long.
    pad_token_id : int
        The tokenizer's padding id (``TextPreprocessing.pad_token_id``).

    Returns
    -------
    input_ids : Tensor of shape (N, L), int64
        ``L`` is the longest sequence; the rest is ``pad_token_id``.
    attention_mask : Tensor of shape (N, L), int64
    """
    lengths = [len(sequence) for sequence in sequences]
    width = max(lengths)
    input_ids = np.full((len(sequences), width), pad_token_id, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        input_ids[row, : lengths[row]] = sequence
    return torch.from_numpy(input_ids), _attention_mask(lengths, width)


def pad_activations(activations):
    """Pad per-text activations ``(L_i, H)`` (e.g. from the cache) into one batch.

    Parameters
    ----------
    activations : sequence of Tensor of shape (L_i, H)

    Returns
    -------
    hidden : Tensor of shape (N, L, H)
        Zeros after each text's own length (masked, so never attended to nor pooled).
    attention_mask : Tensor of shape (N, L), int64
    """
    lengths = [len(tensor) for tensor in activations]
    hidden = torch.nn.utils.rnn.pad_sequence(list(activations), batch_first=True)
    return hidden, _attention_mask(lengths, hidden.shape[1])


def unpad_activations(hidden, attention_mask):
    """Cut a padded batch's activations back to one ``(L_i, H)`` tensor per text (what the cache stores).

    Parameters
    ----------
    hidden : Tensor of shape (N, L, H)
    attention_mask : Tensor of shape (N, L)
        Right-padded: 1 for the first ``L_i`` positions of text ``i``.

    Returns
    -------
    list of Tensor of shape (L_i, H)
    """
    lengths = attention_mask.sum(dim=1).tolist()
    return [hidden[row, :length] for row, length in enumerate(lengths)]
