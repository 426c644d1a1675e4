"""Part of a library's model run by the library's own code: a view holding only some of its modules and tensors."""

import copy
from collections import OrderedDict

from torch import nn


class ModelPart(nn.Module):
    """Part of a library's model: one of its methods, run on a view that holds only some of its modules and tensors.

    The view is a shallow copy of the model (its hyper-parameters and the named submodules, parameters
    and buffers, not copies of them), so the library's own code (timm's ``forward_head``, open_clip's
    ``_embeds``) runs on it and the rest of the model is not reachable from the part.

    Parameters
    ----------
    model : nn.Module
        A timm or open_clip model (or tower).
    keep : tuple of str
        The names of the model's own submodules, parameters and buffers the method reads.
    method : callable
        ``method(view, x)``: a module-level function, so that the part pickles.
    """

    def __init__(self, model, keep, method):
        super().__init__()
        view = object.__new__(type(model))
        # Its own dicts (hooks, configs): registering on the view never reaches the model.
        view.__dict__.update(
            {key: copy.copy(value) if isinstance(value, dict) else value for key, value in vars(model).items()}
        )
        for store in ("_modules", "_parameters", "_buffers"):
            own = getattr(model, store)
            setattr(view, store, OrderedDict((name, own[name]) for name in keep if name in own))
        view._non_persistent_buffers_set = set(model._non_persistent_buffers_set) & set(keep)
        self.view = view
        self.method = method

    def forward(self, x):
        return self.method(self.view, x)
