"""Contrastive training on pairs of training examples: SetFit's first phase, on the trainable blocks only.

A step draws ``batch_size`` pairs, alternately of the same class and of different classes (so the two
kinds are balanced however many examples each class has, as SetFit's ``"oversampling"`` balances
them), and trains the blocks so that the cosine similarity of the two pooled features is 1 for a
same-class pair and 0 for a different-class pair (mean squared error, SetFit's
``CosineSimilarityLoss``). The frozen prefix is not run: its activations come from the cache, once.
"""

import torch
import torch.nn.functional as F


def sample_pairs(codes, n_pairs, generator):
    """``n_pairs`` pairs of example indices, alternately of the same class and of different classes.

    Parameters
    ----------
    codes : Tensor of shape (N,)
        Class index of each example (at least two classes).
    n_pairs : int
    generator : torch.Generator

    Returns
    -------
    first, second : Tensor of shape (n_pairs,)
        Example indices; a same-class pair has two different examples when its class has two.
    same : Tensor of shape (n_pairs,), bool
    """
    codes = codes.long()
    members = {int(code): torch.nonzero(codes == code).flatten() for code in codes.unique()}
    first = torch.randint(len(codes), (n_pairs,), generator=generator)
    same = torch.arange(n_pairs) % 2 == 0
    second = torch.empty_like(first)
    for pair, (anchor, is_same) in enumerate(zip(first.tolist(), same.tolist())):
        own = members[int(codes[anchor])]
        if is_same:
            candidates = own[own != anchor] if len(own) > 1 else own
        else:
            candidates = torch.nonzero(codes != codes[anchor]).flatten()
        second[pair] = candidates[torch.randint(len(candidates), (1,), generator=generator)]
    return first, second, same


def train_on_pairs(parameters, embed, codes, *, steps, batch_size, lr, weight_decay, generator):
    """Train ``parameters`` for ``steps`` steps on the pair objective.

    Parameters
    ----------
    parameters : list of Parameter
        What trains (the trainable blocks', not the head's).
    embed : callable
        Example indices (Tensor) -> their pooled features, computed with gradients.
    codes : Tensor of shape (N,)
    steps, batch_size : int
    lr, weight_decay : float
        AdamW's.
    generator : torch.Generator
        Draws the pairs.

    Returns
    -------
    list of float
        The loss of each step.
    """
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(steps):
        first, second, same = sample_pairs(codes, batch_size, generator)
        features = embed(torch.cat([first, second]))
        similarity = F.cosine_similarity(features[: len(first)], features[len(first) :], dim=-1)
        loss = F.mse_loss(similarity.float(), same.to(similarity.device, torch.float32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
