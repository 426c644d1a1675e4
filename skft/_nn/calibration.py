"""Calibrating a zero-shot classifier on labels: a temperature and a per-class bias, nothing else.

Zero-shot logits are ``scale * cos(text, class prompt)``; the class prompts say nothing about how
often each class occurs, nor about how peaked the similarities are. Given labelled texts,
:func:`fit_scale_and_bias` chooses the ``scale`` (the inverse temperature) and a bias per class that
minimise the weighted cross-entropy of ``scale * similarities + bias`` — ``n_classes + 1`` numbers,
so a few labelled texts per class are enough and the prompts' ranking of the texts stays as it was
within each class.
"""

import math

import torch
import torch.nn.functional as F

#: The calibration's prior: one pseudo-observation pulls ``log(scale)`` towards ``log(PRIOR_SCALE)``
#: and the biases towards 0, so that training labels the similarities separate perfectly give a
#: finite scale.
PRIOR_SCALE = 20.0
#: L-BFGS iterations: the problem is convex in the biases and smooth in ``log(scale)``; a few dozen
#: iterations converge on every data set measured (``benchmarks/fewshot.py``).
MAX_ITERATIONS = 100


def fit_scale_and_bias(similarities, codes, weights):
    """The scale and per-class biases that calibrate cosine similarities to the labels.

    Parameters
    ----------
    similarities : Tensor of shape (N, n_classes)
        Cosine similarity of each text with each class's prompt.
    codes : Tensor of shape (N,)
        Class index of each text.
    weights : Tensor of shape (N,)
        Sample weights (``sample_weight`` times ``class_weight``).

    Returns
    -------
    scale : float
        Positive; logits are ``scale * similarities + bias``.
    bias : Tensor of shape (n_classes,)
        Centred (softmax does not change when every bias moves by the same amount).
    """
    similarities = similarities.detach().double()
    codes = codes.long()
    weights = weights.detach().double()
    weights = weights / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
    n_classes = similarities.shape[1]
    log_scale = torch.tensor(math.log(PRIOR_SCALE), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    prior_weight = 1.0 / (len(codes) + 1)
    optimizer = torch.optim.LBFGS([log_scale, bias], max_iter=MAX_ITERATIONS, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = log_scale.exp() * similarities + bias
        loss = (F.cross_entropy(logits, codes, reduction="none") * weights).sum()
        loss = loss + prior_weight * ((log_scale - math.log(PRIOR_SCALE)) ** 2 + (bias**2).sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    bias = bias.detach()
    return float(log_scale.detach().exp()), (bias - bias.mean()).float()
