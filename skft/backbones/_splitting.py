"""Splitting a user's ``nn.Module`` into blocks by its top-level children."""

import re

from torch import nn

from ._types import BackboneParts


def has_parameters(module):
    """Tell whether ``module`` owns at least one parameter.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    bool
    """
    return next(module.parameters(), None) is not None


def _identifier(name):
    cleaned = re.sub(r"\W", "_", name)
    return cleaned if cleaned.isidentifier() else f"block_{cleaned}"


def split_children(model, groups=None):
    """Split a network into blocks made of its top-level children.

    Parameter-free children (activations, pooling) merge into the block before them (or, at the
    very start, into the first block with parameters), so that every block has parameters.

    Parameters
    ----------
    model : nn.Module
    groups : list of list of str, optional
        Explicit blocks as lists of child names, in order. ``None`` makes one block per child
        with parameters.

    Returns
    -------
    BackboneParts
    """
    children = dict(model.named_children())
    if groups is not None:
        unknown = [name for group in groups for name in group if name not in children]
        if unknown:
            raise ValueError(
                f"blocks names children {unknown} that the network does not have. Its children are {list(children)}."
            )
        return BackboneParts(
            blocks=[(_identifier("_".join(group)), nn.Sequential(*(children[n] for n in group))) for group in groups]
        )
    blocks, pending = [], []
    for name, child in children.items():
        if has_parameters(child) or not blocks:
            pending.append(child)
            if has_parameters(child):
                blocks.append([_identifier(name), pending])
                pending = []
        else:
            blocks[-1][1].append(child)
    if not blocks:
        raise ValueError(
            f"the network {type(model).__name__} has no child module with parameters to split into blocks."
        )
    return BackboneParts(blocks=[(name, nn.Sequential(*members)) for name, members in blocks])
