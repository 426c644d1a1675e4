"""How ``sklearn.base.clone`` copies skft's estimators."""

import copy

from sklearn.base import clone
from torch import nn


class SharesModuleOnClone:
    """Let ``clone`` share an ``nn.Module`` parameter instead of deep-copying it.

    ``fit`` never changes a user's module (it trains a copy), so clones in a grid search can
    all point at the same module; copying a large network for every fold costs time and memory.
    Everything else is cloned as ``sklearn.base.clone`` clones it, configuration included: the
    metadata-routing requests (``set_fit_request``), the output container (``set_output``) and
    the callbacks shared by reference.
    """

    def __sklearn_clone__(self):
        params = {
            name: value if isinstance(value, nn.Module) else clone(value, safe=False)
            for name, value in self.get_params(deep=False).items()
        }
        cloned = type(self)(**params)
        if hasattr(self, "_metadata_request"):
            cloned._metadata_request = clone(self._metadata_request)
        if hasattr(self, "_skl_callbacks"):
            cloned._skl_callbacks = self._skl_callbacks
        if hasattr(self, "_sklearn_output_config"):
            cloned._sklearn_output_config = copy.deepcopy(self._sklearn_output_config)
        return cloned
