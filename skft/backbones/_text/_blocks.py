"""The blocks of a text encoder, and its pooling, as modules that pass one state along.

Text flows through the network's block loop (``x = block(x)``) as a :class:`TextState`:
the hidden states ``(N, L, H)`` and the 2-D attention mask ``(N, L)`` of the padded batch. Block 0
(:class:`EmbeddingBlock`) takes ``(input_ids, attention_mask)``; every later block is one
transformer layer (:class:`TransformerLayerBlock`, :class:`MPNetLayerBlock`) and returns a new
state with the same mask. Each layer builds the attention mask its attention implementation wants
from the 2-D mask with Hugging Face's own ``create_bidirectional_mask`` (an additive mask holding
the dtype's minimum at padded keys for ``"eager"``, a boolean one for ``"sdpa"``), so a state is
all that a cache needs to store between blocks: per-text hidden states at their own length, the
mask being rebuilt when a batch is padded again.

:class:`TextPool` reduces the last state to one vector per text (masked mean or first token, then
the L2 normalisation of a sentence-transformers model's ``Normalize`` step when it has one).
"""

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

#: How a text encoder's last state becomes one vector per text: the mean over real (unmasked)
#: tokens, or the first token (``[CLS]``/``<s>``); ``_normalized`` adds L2 normalisation.
TEXT_POOLINGS = ("masked_mean", "masked_mean_normalized", "cls", "cls_normalized")


class TextState(NamedTuple):
    """What every block of a text encoder takes and returns.

    Parameters
    ----------
    hidden : Tensor of shape (N, L, H)
        Hidden states of the padded batch (token ids ``(N, L)`` before the embedding block).
    attention_mask : Tensor of shape (N, L)
        1 for real tokens, 0 for padding (padding on the right).
    """

    hidden: torch.Tensor
    attention_mask: torch.Tensor


class EmbeddingBlock(nn.Module):
    """Block 0: a Hugging Face embedding layer, from token ids to the first hidden states.

    Parameters
    ----------
    embeddings : nn.Module
        The model's embedding module (``model.embeddings``), called as ``embeddings(input_ids=...)``.
    """

    def __init__(self, embeddings):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, inputs):
        input_ids, attention_mask = inputs
        return TextState(self.embeddings(input_ids=input_ids), attention_mask)


class TransformerLayerBlock(nn.Module):
    """One transformer layer whose forward is ``layer(hidden, extended_mask) -> hidden``.

    BERT, RoBERTa and DistilBERT layers. The extended mask is built from the state's 2-D mask
    for the model's attention implementation, as the model's own forward builds it.

    Parameters
    ----------
    layer : nn.Module
        The Hugging Face layer (``encoder.layer[i]``, ``transformer.layer[i]``).
    config : transformers.PretrainedConfig
        The model's configuration (its ``_attn_implementation`` decides the mask's form).
    """

    def __init__(self, layer, config):
        super().__init__()
        self.layer = layer
        self.config = config

    def extended_mask(self, state):
        """The attention mask the layer's attention implementation expects, or None (no padding).

        Parameters
        ----------
        state : TextState

        Returns
        -------
        Tensor or None
        """
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(
            config=self.config, inputs_embeds=state.hidden, attention_mask=state.attention_mask
        )

    def forward(self, state):
        state = TextState(*state)
        return TextState(self.layer(state.hidden, self.extended_mask(state)), state.attention_mask)

    def extra_repr(self):
        return f"attn_implementation={self.config._attn_implementation!r}"


class RelativePositionBias(nn.Module):
    """MPNet's relative position bias, computed by the encoder's own method from a table of its own.

    Parameters
    ----------
    encoder : transformers.models.mpnet.modeling_mpnet.MPNetEncoder
        Whose ``relative_attention_bias`` table is copied and whose ``compute_position_bias`` is used.
    """

    def __init__(self, encoder):
        super().__init__()
        self.relative_attention_bias = copy.deepcopy(encoder.relative_attention_bias)
        self.relative_position_bucket = type(encoder).relative_position_bucket
        self._compute_position_bias = type(encoder).compute_position_bias

    def forward(self, hidden):
        return self._compute_position_bias(self, hidden)


class MPNetLayerBlock(TransformerLayerBlock):
    """One MPNet layer, with the relative position bias its encoder computes once per forward.

    Each layer block holds its own copy of the encoder's bias table (equal values, so the output
    equals the encoder's). A table shared by every layer could not stay frozen in frozen layers
    while trainable layers train it, and a frozen prefix whose function changes during a fit could
    not be cached; per-layer copies keep "frozen means frozen", at 32 x heads parameters per layer.

    Parameters
    ----------
    layer : nn.Module
        ``encoder.layer[i]``.
    config : transformers.PretrainedConfig
    encoder : MPNetEncoder
        The layer's encoder, the source of the bias table.
    """

    def __init__(self, layer, config, encoder):
        super().__init__(layer, config)
        self.relative_position = RelativePositionBias(encoder)

    def forward(self, state):
        state = TextState(*state)
        hidden = self.layer(state.hidden, self.extended_mask(state), self.relative_position(state.hidden))[0]
        return TextState(hidden, state.attention_mask)


class TextPool(nn.Module):
    """Reduce a :class:`TextState` to one vector per text.

    Parameters
    ----------
    pooling : str
        One of :data:`TEXT_POOLINGS`. ``"masked_mean"`` averages the hidden states of real tokens
        (as sentence-transformers' ``Pooling`` does); ``"cls"`` takes the first token;
        ``_normalized`` then divides by the L2 norm (sentence-transformers' ``Normalize``).
    """

    def __init__(self, pooling):
        super().__init__()
        if pooling not in TEXT_POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not a text pooling. Use one of {TEXT_POOLINGS}.")
        self.pooling = pooling

    def forward(self, state):
        hidden, attention_mask = state
        if self.pooling.startswith("cls"):
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        if self.pooling.endswith("_normalized"):
            pooled = F.normalize(pooled, p=2, dim=1)
        return pooled

    def extra_repr(self):
        return repr(self.pooling)
