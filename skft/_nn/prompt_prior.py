"""A linear head fitted on the training features with the calibrated zero-shot classifier as its prior.

The head's logits are ``features @ weight.T + bias`` on unit-normalised features. The zero-shot start
(``weight0 = scale * class prompt embeddings``, ``bias0`` the calibrated biases) classifies before any
label is read; the labels may move it, and :func:`fit_head_near_prompts` lets them move it as far as
they support: it minimises the weighted cross-entropy plus ``strength / 2 * ||(weight, bias) -
(weight0, bias0)||^2`` and picks ``strength`` by cross-validation on the training examples. An
infinite strength is the zero-shot start itself, so good class prompts are kept and prompts worse than
the data (class descriptions the encoder does not relate to the texts) give way to what the examples
say.
"""

import math

import torch
import torch.nn.functional as F

#: The penalty strengths cross-validation chooses from (per unit of the mean loss), strongest first;
#: ``inf`` keeps the zero-shot start. Ties go to the stronger penalty: the prompts' classifier stays
#: unless the held-out examples say otherwise.
STRENGTHS = (math.inf, 1.0, 0.1, 0.01, 1e-3, 1e-4)
#: Folds of the cross-validation (fewer when the rarest class has fewer examples).
MAX_FOLDS = 5
MAX_ITERATIONS = 100


def fit_head_near_prompts(features, codes, weights, weight0, bias0, generator):
    """The head's weight and bias, and the penalty strength cross-validation chose.

    Parameters
    ----------
    features : Tensor of shape (N, D)
        Unit-normalised features of the training examples, as the head sees them.
    codes : Tensor of shape (N,)
        Class index of each example.
    weights : Tensor of shape (N,)
        Sample weights (``sample_weight`` times ``class_weight``).
    weight0 : Tensor of shape (n_classes, D)
    bias0 : Tensor of shape (n_classes,)
        The calibrated zero-shot classifier.
    generator : torch.Generator
        Assigns the examples to folds.

    Returns
    -------
    weight : Tensor of shape (n_classes, D)
    bias : Tensor of shape (n_classes,)
    strength : float
        ``inf`` where the zero-shot start won (``weight`` and ``bias`` are then ``weight0`` and ``bias0``).
    """
    features, weights = features.detach().double(), weights.detach().double()
    codes = codes.long()
    start = (weight0.detach().double(), bias0.detach().double())
    folds = _stratified_folds(codes, generator)
    if len(folds) < 2:
        return weight0, bias0, math.inf
    losses = {}
    for strength in STRENGTHS:
        held_out = 0.0
        for fold in folds:
            train = torch.ones(len(codes), dtype=torch.bool)
            train[fold] = False
            weight, bias = _penalised_fit(features[train], codes[train], weights[train], start, strength)
            logits = features[fold] @ weight.T + bias
            held_out += float((F.cross_entropy(logits, codes[fold], reduction="none") * weights[fold]).sum())
        losses[strength] = held_out
    chosen = min(STRENGTHS, key=lambda strength: losses[strength])
    if chosen == math.inf:
        return weight0, bias0, math.inf
    weight, bias = _penalised_fit(features, codes, weights, start, chosen)
    return weight.to(weight0.dtype), bias.to(bias0.dtype), chosen


def _penalised_fit(features, codes, weights, start, strength):
    """Minimise the weighted mean cross-entropy plus ``strength / 2`` times the squared distance to ``start``."""
    weight0, bias0 = start
    if strength == math.inf:
        return weight0, bias0
    weight = weight0.clone().requires_grad_(True)
    bias = bias0.clone().requires_grad_(True)
    normalised = weights / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=MAX_ITERATIONS, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = features @ weight.T + bias
        loss = (F.cross_entropy(logits, codes, reduction="none") * normalised).sum()
        loss = loss + strength / 2 * (((weight - weight0) ** 2).sum() + ((bias - bias0) ** 2).sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def _stratified_folds(codes, generator):
    """Held-out index sets, each class spread over them; as many folds as the rarest class allows (at most 5)."""
    counts = torch.bincount(codes)
    n_folds = min(MAX_FOLDS, int(counts[counts > 0].min()))
    if n_folds < 2:
        return []
    assignment = torch.empty(len(codes), dtype=torch.long)
    for code in codes.unique():
        members = torch.nonzero(codes == code).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        assignment[members] = torch.arange(len(members)) % n_folds
    return [torch.nonzero(assignment == fold).flatten() for fold in range(n_folds)]
