"""skft: scikit-learn estimators that fine-tune pretrained neural-network backbones."""

from ._cache import cache_info, clear_cache, get_config, set_config
from ._classification import FineTunedClassifier
from ._compare import compare_modes
from ._features import BackboneFeatures
from ._images.folders import load_image_folder
from ._load import load
from ._onnx_runtime import OnnxClassifier, OnnxRegressor
from ._regression import FineTunedRegressor
from .backbones import describe_backbone, list_backbones, register_backbone

__version__ = "0.1.0"

__all__ = [
    "BackboneFeatures",
    "FineTunedClassifier",
    "FineTunedRegressor",
    "OnnxClassifier",
    "OnnxRegressor",
    "__version__",
    "cache_info",
    "clear_cache",
    "compare_modes",
    "describe_backbone",
    "get_config",
    "list_backbones",
    "load_image_folder",
    "load",
    "register_backbone",
    "set_config",
]
