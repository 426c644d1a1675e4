"""Prompt ensembling: a class's prompt embedding averaged over several templates (CLIP, Radford et al. 2021)."""

import torch.nn.functional as F

from .prompting import class_prompt_texts


def prompt_templates(prompt_template):
    """The templates of a ``prompt_template`` parameter: one str, or a list of them to ensemble.

    Parameters
    ----------
    prompt_template : str or list of str

    Returns
    -------
    list of str
    """
    return [prompt_template] if isinstance(prompt_template, str) else list(prompt_template)


def ensembled_class_embeddings(embed, classes, templates, label_prompts):
    """Each class's normalised prompt embedding, averaged over ``templates`` and normalised again.

    Parameters
    ----------
    embed : callable
        ``embed(texts) -> Tensor of shape (len(texts), dim)``: the backbone's text embedding.
    classes : array-like
    templates : list of str
        Each holds ``{label}``.
    label_prompts : dict or None
        Class -> what replaces ``{label}``.

    Returns
    -------
    Tensor of shape (n_classes, dim)
    """
    total = sum(
        F.normalize(embed(class_prompt_texts(classes, template, label_prompts)).float(), dim=-1)
        for template in templates
    )
    return F.normalize(total / len(templates), dim=-1)
