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


def pad_text_inputs(items, pad_token_id):
    """One batch from per-text inputs: token ids, cached activations ``(L_i, H)`` or pooled vectors.

    Parameters
    ----------
    items : sequence
        1-D integer arrays or tensors (token ids), 2-D float tensors (activations of one text) or
        1-D float tensors (pooled features, stacked as they are).
    pad_token_id : int

    Returns
    -------
    tuple of Tensor or Tensor
        ``(input_ids, attention_mask)``, ``(hidden, attention_mask)`` or pooled features ``(N, H)``.
    """
    first = items[0]
    if torch.is_tensor(first) and first.is_floating_point():
        return pad_activations(items) if first.ndim == 2 else torch.stack(list(items))
    return pad_token_ids(items, pad_token_id)


class TextCollate:
    """A data loader's ``collate_fn`` for texts: pads each batch to its own longest text.

    skorch hands it ``(X, y)`` samples where ``X`` is a dict whose ``"X"`` holds one text's token
    ids or cached activations (see :func:`pad_text_inputs`); every other entry (``start_block``)
    and ``y`` are collated as torch does.

    Parameters
    ----------
    pad_token_id : int
    """

    def __init__(self, pad_token_id):
        self.pad_token_id = pad_token_id

    def __call__(self, samples):
        from torch.utils.data import default_collate

        inputs, targets = zip(*samples)
        batch = {
            name: pad_text_inputs([item[name] for item in inputs], self.pad_token_id)
            if name == "X"
            else default_collate([item[name] for item in inputs])
            for name in inputs[0]
        }
        return batch, default_collate(targets)

    def __repr__(self):
        return f"TextCollate(pad_token_id={self.pad_token_id})"
