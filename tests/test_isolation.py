"""What a fit shares with other fits in the process stays unchanged by anything done to a fitted estimator."""

import numpy as np
import pytest
import torch

import skft
from skft import BackboneFeatures, FineTunedClassifier

from conftest import make_images

# The shipped backbone with weights: its pretrained modules are kept once per process and shared
# by CPU fits (a user registration such as tiny_cnn is built afresh for every fit).
SHIPPED = dict(backbone="efficientnet_lite0", image_size=32, device="cpu")


def _edit_in_place(network):
    """What a user may do to a fitted network: change tensors in place, convert modules."""
    with torch.no_grad():
        for tensor in network.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(1.0)
    network.half()


def test_editing_a_fitted_network_in_place_changes_no_later_fit():
    X, y = make_images(8, size=32, channels=3)
    params = dict(SHIPPED, mode="repurpose", max_epochs=1, batch_size=4, random_state=0)
    skft.clear_cache()
    expected = FineTunedClassifier(**params).fit(X, y).predict_proba(X)
    _edit_in_place(FineTunedClassifier(**params).fit(X, y).net_.module_)
    skft.clear_cache()
    np.testing.assert_array_equal(FineTunedClassifier(**params).fit(X, y).predict_proba(X), expected)


def test_editing_fitted_features_in_place_changes_no_later_features():
    X, _ = make_images(4, size=32, channels=3)
    expected = BackboneFeatures(**SHIPPED).fit(X).transform(X)
    _edit_in_place(BackboneFeatures(**SHIPPED).fit(X).network_)
    np.testing.assert_array_equal(BackboneFeatures(**SHIPPED).fit(X).transform(X), expected)
