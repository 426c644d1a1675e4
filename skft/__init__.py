"""skft: scikit-learn estimators that fine-tune pretrained neural-network backbones."""

from ._classification import FineTunedClassifier
from ._features import BackboneFeatures
from ._persistence import load
from ._regression import FineTunedRegressor
from .backbones import describe_backbone, list_backbones, register_backbone

__version__ = "0.1.0"

__all__ = [
    "BackboneFeatures",
    "FineTunedClassifier",
    "FineTunedRegressor",
    "__version__",
    "describe_backbone",
    "list_backbones",
    "load",
    "register_backbone",
]
