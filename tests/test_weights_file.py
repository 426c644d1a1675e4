import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import skft
from skft import FineTunedClassifier
from skft.backbones import resolve_backbone
from skft.backbones._weights_file import is_weights_path, read_state_dict

from conftest import TINY, TINY_SIZE, make_images, make_tiny_cnn


class _RunsCode:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _trained_state():
    torch.manual_seed(7)
    model = make_tiny_cnn()
    for p in model.parameters():
        p.data.normal_()
    return model.state_dict()


def _first_weight(resolved):
    return resolved.parts.blocks[0][1][0][0].weight


@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_torch_file_loads_with_weights_only(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    state = _trained_state()
    torch.save(state, path)
    resolved = resolve_backbone(TINY, str(path))
    torch.testing.assert_close(_first_weight(resolved), state["0.0.weight"])


def test_safetensors_file_loads(tmp_path):
    path = tmp_path / "w.safetensors"
    state = {k: v.contiguous() for k, v in _trained_state().items()}
    save_file(state, str(path))
    resolved = resolve_backbone(TINY, path)
    torch.testing.assert_close(_first_weight(resolved), state["0.0.weight"])


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_checkpoint_dict_and_module_prefix_are_unwrapped(tmp_path, wrapper):
    state = _trained_state()
    path = tmp_path / "ckpt.pth"
    torch.save({wrapper: {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    loaded = read_state_dict(path)
    assert set(loaded) == set(state)


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    state = _trained_state()
    state["0.0.weight"] = torch.zeros(4, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"'0\.0\.weight' has shape \(4, 3, 3, 3\) in the file but \(8, 3, 3, 3\)"):
        resolve_backbone(TINY, str(path))


def test_missing_tensor_is_named(tmp_path):
    state = _trained_state()
    del state["2.0.bias"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing tensor '2\.0\.bias'"):
        resolve_backbone(TINY, str(path))


def test_legacy_pickle_carrying_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"0.0.weight": _RunsCode(str(marker))}, f)
    with pytest.raises(ValueError, match="evil.pth.*refused"):
        resolve_backbone(TINY, str(path))
    assert not marker.exists()


def test_torch_save_zip_carrying_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_zip.pt"
    torch.save({"payload": _RunsCode(str(marker))}, path)
    with pytest.raises(ValueError, match="evil_zip.pt.*refused"):
        read_state_dict(path)
    assert not marker.exists()


def test_missing_file_and_non_state_dict(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_state_dict(tmp_path / "nope.pth")
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        read_state_dict(path)


def test_is_weights_path():
    assert is_weights_path("model.safetensors") and is_weights_path("a/b.PTH")
    assert not is_weights_path("DEFAULT") and not is_weights_path(None) and not is_weights_path("IMAGENET1K_V2")


def test_load_of_a_model_fitted_on_a_weights_file_does_not_read_it(tmp_path):
    """A self-contained file (full=True) is the model: load builds the skeleton and never opens the weights file."""
    path = tmp_path / "w.pth"
    torch.save(_trained_state(), path)
    X, y = make_images(16, channels=3)
    clf = FineTunedClassifier(backbone=TINY, weights=str(path), image_size=TINY_SIZE, max_epochs=1, random_state=0,
                              device="cpu").fit(X, y)  # fmt: skip
    clf.save(tmp_path / "model.skft", full=True)
    clf.save(tmp_path / "changes.skft")
    expected = clf.predict_proba(X)
    path.unlink()
    skft.clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "model.skft").predict_proba(X), expected, rtol=1e-5, atol=1e-6)
    # A file of changes needs the pretrained weights, and says so.
    with pytest.raises(ValueError, match=r"stores only what its fit changed.*w\.pth.*save\(path, full=True\)"):
        skft.load(tmp_path / "changes.skft")
