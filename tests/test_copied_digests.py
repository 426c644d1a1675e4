"""A fitted network's own copies of the frozen blocks reuse the digests of the kept modules, and stay correct."""

import torch

from skft import FineTunedClassifier, clear_cache
from skft._cache import prefix_key
from skft.backbones import _digest

from conftest import make_images


def test_copied_frozen_blocks_carry_digests_equal_to_a_cold_computation(tiny_params):
    clear_cache()
    X, y = make_images(16)
    network = FineTunedClassifier(**tiny_params, mode="feature_extraction").fit(X, y).net_.module_
    modules = [module for block in network.frozen_blocks() for module in block.modules()]
    with_tensors = [module for module in modules if next(module.parameters(recurse=False), None) is not None]
    assert with_tensors and all(module in _digest._TENSOR_DIGESTS for module in with_tensors)
    carried = prefix_key(network, "fp32")
    _digest._TENSOR_DIGESTS.clear()
    assert prefix_key(network, "fp32") == carried
    with torch.no_grad():
        next(network.frozen_blocks()[0].parameters()).add_(1.0)
    assert prefix_key(network, "fp32") != carried
