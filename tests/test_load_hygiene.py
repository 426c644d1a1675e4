"""``skft.load`` refuses forged optimizer names and leaves the caller's random state as it was."""

import numpy as np
import pytest
import torch
from test_identity import _forge

import skft
from skft import FineTunedClassifier, clear_cache

from conftest import make_images


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_params_module):
    X, y = make_images(12)
    path = tmp_path_factory.mktemp("hygiene") / "model.skft"
    FineTunedClassifier(**tiny_params_module, head=(4,), dropout=0.2).fit(X, y).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_params_module():
    return dict(backbone="tiny_cnn", image_size=16, max_epochs=1, batch_size=8, random_state=0, device="cpu")


@pytest.mark.parametrize(
    "optimizer",
    ["evil_optimizer", {"torch_optimizer": "Optimizer"}, {"torch_optimizer": "lr_scheduler"}, {"module": "os"}],
    ids=["unknown name", "torch's base class", "not an optimizer", "foreign tag"],
)
def test_a_forged_optimizer_is_refused(saved, tmp_path, optimizer):
    forged = _forge(saved, tmp_path / "forged.skft", lambda config: config["params"].update(optimizer=optimizer))
    with pytest.raises(ValueError, match="damaged or foreign parameters"):
        skft.load(forged)


def test_load_leaves_torch_and_numpy_random_state_as_it_was(saved):
    clear_cache()
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    skft.load(saved)
    np.testing.assert_array_equal(torch.rand(3), expected_torch)
    np.testing.assert_array_equal(np.random.rand(3), expected_numpy)
