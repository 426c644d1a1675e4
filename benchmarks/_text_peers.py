"""The text peers skft is measured against: plain skorch around the same partially frozen MiniLM.

The peer is what a careful skorch user writes: the texts tokenised once with the model's own
tokenizer (each at its own length, truncated to the model's 256 tokens), batches padded to their
longest text by a ``collate_fn``, the first ``n_frozen`` blocks frozen and kept in eval mode, the
masked-mean pooling and L2 normalisation of the sentence-transformers model, a linear head. The
blocks are MiniLM's own layers (``skft.backbones``' split of the Hugging Face model: the embedding
layer, then each transformer layer), so skft and the peer compute the same function.
"""

import numpy as np
import torch
from torch import nn

from skft.backbones._text import MINILM, TextPool, text_backbone_spec

SPEC = text_backbone_spec(MINILM)
WIDTH = 384


def tokenize(texts):
    """Token ids of each text at its own length (object array of int64 arrays), and the padding id."""
    preprocessing = SPEC.preprocessing("DEFAULT")
    encoded = preprocessing.tokenizer(list(texts), truncation=True, max_length=preprocessing.max_length)
    ids = np.empty(len(texts), dtype=object)
    ids[:] = [np.asarray(row, dtype=np.int64) for row in encoded["input_ids"]]
    return ids, preprocessing.pad_token_id


class PadBatch:
    """``collate_fn``: pad token ids (or per-text hidden states) to the batch's longest, with the mask."""

    def __init__(self, pad_token_id):
        self.pad_token_id = pad_token_id

    def __call__(self, samples):
        inputs, targets = zip(*samples)
        tensors = [torch.as_tensor(item) for item in inputs]
        lengths = torch.tensor([len(item) for item in tensors])
        padding = 0 if tensors[0].is_floating_point() else self.pad_token_id
        padded = nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=padding)
        mask = (torch.arange(padded.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).long()
        return (padded, mask), torch.as_tensor(np.asarray(targets))


class PeerTextNetwork(nn.Module):
    """MiniLM's blocks + pooling + linear head; the first ``n_frozen`` blocks frozen and in eval mode.

    Parameters
    ----------
    n_frozen : int
        Frozen blocks (7 = all: embeddings + 6 layers).
    n_classes : int
    head_state : dict, optional
        Initial head weights (to start where skft's head starts, for the loss-history check).
    start_frozen : bool, default=True
        False builds only the trainable rest, fed hidden states of block ``n_frozen - 1``
        (the compute-once reference).
    """

    def __init__(self, n_frozen, n_classes=2, head_state=None, start_frozen=True):
        super().__init__()
        blocks = [block for _, block in SPEC.split(SPEC.build("DEFAULT")).blocks]
        self.frozen = nn.Sequential(*blocks[:n_frozen]).requires_grad_(False) if start_frozen else nn.Sequential()
        self.trainable = nn.Sequential(*blocks[n_frozen:])
        self.pool = TextPool(SPEC.pooling)
        self.head = nn.Linear(WIDTH, n_classes)
        if head_state is not None:
            self.head.load_state_dict(head_state)

    def train(self, mode=True):
        super().train(mode)
        self.frozen.eval()
        return self

    def forward(self, X):
        state = X
        for block in list(self.frozen) + list(self.trainable):
            state = block(state)
        return self.head(self.pool(state))


def frozen_states(n_frozen, ids, pad_token_id, batch_size=64):
    """The reference's compute-once step: the frozen blocks run once; per-text hidden states (or pooled vectors)."""
    network = PeerTextNetwork(n_frozen).eval()
    collate, out = PadBatch(pad_token_id), []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            (input_ids, mask), _ = collate([(row, 0) for row in ids[start : start + batch_size]])
            state = input_ids, mask
            for block in network.frozen:
                state = block(state)
            if not len(network.trainable):
                out += list(network.pool(state).clone())
            else:
                out += [hidden[:length].clone() for hidden, length in zip(state[0], mask.sum(1).tolist())]
    states = np.empty(len(out), dtype=object)
    states[:] = out
    return states
