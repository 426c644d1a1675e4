"""What a fit shares with other fits in the process stays unchanged by anything done to a fitted estimator."""

import copy

import numpy as np
import torch
from joblib import Parallel, delayed

import skft
from skft import BackboneFeatures, FineTunedClassifier, register_backbone

from conftest import TINY_SIZE, make_images, make_tiny_cnn

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


# A builder that draws nothing from torch's global generator (tiny_cnn's builder seeds it, which
# threads would race on): copies of one network.
_TEMPLATE = make_tiny_cnn()
register_backbone(
    "tiny_cnn_copies", lambda: copy.deepcopy(_TEMPLATE), image_size=TINY_SIZE, min_image_size=4, overwrite=True
)
# dropout=0 and no Dropout in the blocks that train (tiny_cnn's is in its last block): what the fit
# draws comes from its own generators. Shuffling, the early-stopping split, a two-layer head's
# initialisation and the default augmentation are all random here.
THREADED = dict(
    backbone="tiny_cnn_copies",
    image_size=TINY_SIZE,
    feature_layer=1,
    mode="repurpose",
    head=(8,),
    dropout=0.0,
    augment=True,
    early_stopping=True,
    validation_fraction=0.25,
    n_iter_no_change=10,
    max_epochs=3,
    batch_size=4,
    lr=1e-2,
    random_state=0,
    device="cpu",
)


def _fitted_probabilities(X, y):
    return FineTunedClassifier(**THREADED).fit(X, y).predict_proba(X)


def test_fits_in_threads_equal_serial_fits():
    X, y = make_images(32)
    serial = _fitted_probabilities(X, y)
    threaded = Parallel(n_jobs=2, backend="threading")(delayed(_fitted_probabilities)(X, y) for _ in range(4))
    for probabilities in threaded:
        np.testing.assert_array_equal(probabilities, serial)


def test_fit_and_predict_neither_move_nor_read_the_global_random_state():
    X, y = make_images(32)
    torch.manual_seed(1)
    state = torch.random.get_rng_state()
    first = _fitted_probabilities(X, y)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(2)
    np.testing.assert_array_equal(_fitted_probabilities(X, y), first)
