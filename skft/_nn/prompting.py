"""mode="prompt": classify texts by their similarity to a prompt per class, the encoder unchanged.

Each class ``c`` is described by the text ``prompt_template.format(label=label_prompts.get(c, c))``;
the frozen encoder embeds these once (its pooled output, L2-normalised), and a text's logits are the
cosine similarities of its own embedding with them, times :data:`LOGIT_SCALE`. Zero-shot, nothing
trains. With ``prompt_tokens=k > 0`` a :class:`PromptTokens` block after the embedding block inserts
k learned vectors into every text; only they train (the class prompts are embedded without them and
stay fixed targets).
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import TextState

#: Similarities (in [-1, 1]) are multiplied by this to make logits before calibration: softmax
#: probabilities and the training loss of prompt tuning need a temperature; without a bias, the
#: predicted class does not depend on it.
LOGIT_SCALE = 20.0
#: Standard deviation of the learned prompt vectors' initial values (embeddings are layer-normalised).
PROMPT_INIT_STD = 0.02
#: The name of the block :func:`insert_prompt_tokens` adds.
PROMPT_BLOCK = "prompt"


def class_prompt_texts(classes, prompt_template, label_prompts):
    """The text that describes each class.

    Parameters
    ----------
    classes : array-like
    prompt_template : str
        Holds ``{label}``.
    label_prompts : dict or None
        Class -> what replaces ``{label}`` (the class itself when absent).

    Returns
    -------
    list of str
    """
    label_prompts = label_prompts or {}
    return [prompt_template.format(label=label_prompts.get(label, label)) for label in _plain(classes)]


def _plain(classes):
    return [label.item() if hasattr(label, "item") else label for label in classes]


def pooled_embeddings(network, inputs):
    """L2-normalised pooled embeddings of padded token ids through the frozen encoder, without prompt tokens.

    Parameters
    ----------
    network : FineTuneNetwork
        A text network.
    inputs : tuple of Tensor
        ``(input_ids, attention_mask)`` of a padded batch.

    Returns
    -------
    Tensor of shape (N, hidden)
    """
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode():
            x = network.normalizer(tuple(tensor.to(device) for tensor in inputs))
            for name, block in network.backbone.named_children():
                if name != PROMPT_BLOCK:
                    x = block(x)
            return F.normalize(network.pool(x).float(), dim=-1).cpu().clone()
    finally:
        network.train(was_training)


class PromptHead(nn.Module):
    """Logits ``scale * cos(features, class prompt) + bias`` with fixed class-prompt embeddings.

    Parameters
    ----------
    class_embeddings : Tensor of shape (n_classes, hidden)
        Normalised here. It, ``scale`` (initially :data:`LOGIT_SCALE`) and ``bias`` (initially 0,
        one per class) are buffers, so they are saved with the network; :meth:`calibrate` sets the
        last two.
    """

    def __init__(self, class_embeddings):
        super().__init__()
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1))
        self.register_buffer("scale", torch.tensor(LOGIT_SCALE))
        self.register_buffer("bias", torch.zeros(len(class_embeddings)))

    def similarities(self, features):
        """Cosine similarity of each row of ``features`` with each class prompt, shape (N, n_classes)."""
        return F.normalize(features.float(), dim=-1) @ self.class_embeddings.T

    def forward(self, features):
        return self.scale * self.similarities(features) + self.bias

    def calibrate(self, scale, bias):
        """Set the temperature and the per-class bias (e.g. from :func:`~skft._nn.calibration.fit_scale_and_bias`).

        Parameters
        ----------
        scale : float
        bias : Tensor of shape (n_classes,)
        """
        self.scale.fill_(scale)
        self.bias.copy_(bias)


class UnitNormalize(nn.Module):
    """Divide each row by its L2 norm: the first layer of a head that starts as the zero-shot classifier."""

    def forward(self, features):
        return F.normalize(features.float(), dim=-1)


def head_from_prompts(head, prompt_head):
    """Set a head's output layer to the (calibrated) zero-shot classifier ``prompt_head`` computes.

    Parameters
    ----------
    head : nn.Sequential
        :class:`UnitNormalize`, then optionally ``nn.Dropout``, then one ``nn.Linear`` (n_classes outputs).
    prompt_head : PromptHead
        Its class embeddings, scale and bias become the linear layer's weights and bias, so that the
        head's logits equal ``prompt_head``'s.
    """
    output = head[-1]
    with torch.no_grad():
        output.weight.copy_(prompt_head.scale * prompt_head.class_embeddings)
        output.bias.copy_(prompt_head.bias)


class PromptTokens(nn.Module):
    """k learned vectors inserted after the first token (``[CLS]``/``<s>``) of every text's embeddings.

    Parameters
    ----------
    n_tokens : int
    width : int
        The encoder's hidden size.
    generator : torch.Generator, optional
        Draws the initial values.
    """

    def __init__(self, n_tokens, width, generator=None):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(n_tokens, width, generator=generator) * PROMPT_INIT_STD)

    def forward(self, state):
        hidden, attention_mask = state
        n_texts, n_tokens = hidden.shape[0], self.tokens.shape[0]
        tokens = self.tokens.to(device=hidden.device, dtype=hidden.dtype).expand(n_texts, -1, -1)
        ones = attention_mask.new_ones(n_texts, n_tokens)
        return TextState(
            torch.cat([hidden[:, :1], tokens, hidden[:, 1:]], dim=1),
            torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1),
        )


def is_prompt_parameter(name):
    """Whether a parameter name within a block is a learned prompt vector (what prompt tuning trains).

    Parameters
    ----------
    name : str

    Returns
    -------
    bool
    """
    return name == "tokens"


def insert_prompt_tokens(blocks, normalizer, n_tokens, generator=None):
    """The blocks with a :class:`PromptTokens` block after the embedding block (block 0).

    Parameters
    ----------
    blocks : list of (str, nn.Module)
    normalizer : skft._nn.network.TextInput
    n_tokens : int
    generator : torch.Generator, optional

    Returns
    -------
    list of (str, nn.Module)
    """
    with torch.inference_mode():
        width = blocks[0][1](normalizer(normalizer.probe("cpu"))).hidden.shape[-1]
    return [blocks[0], (PROMPT_BLOCK, PromptTokens(n_tokens, width, generator))] + list(blocks[1:])
