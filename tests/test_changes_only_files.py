"""A changes-only model file proves the whole base it leaves out, as the fit started from it.

The frozen blocks, the base weights under LoRA adapters and the encoder around prompt vectors are
not stored: loading rebuilds them from the backbone's weights and refuses the file when they are not
those the fit started from, even when the weights changed on disk between fit and save. Every
round trip here compares against a cold cache.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from test_identity import cold_cache  # noqa: F401 -- every test starts and ends with an empty cache
from test_prompting import prompt_classifier

import skft
from skft import FineTunedClassifier, clear_cache, register_backbone
from skft.backbones import _registry

from conftest import TINY_SIZE, make_images
from identity_nets import seeded_cnn


@pytest.fixture
def weights_file(tmp_path):
    """A tiny CNN registered as ``file_backed_cnn``, whose weights come from a file the test may change."""
    path = tmp_path / "weights.safetensors"
    save_file(seeded_cnn(seed=0).state_dict(), str(path))
    register_backbone("file_backed_cnn", seeded_cnn, image_size=TINY_SIZE, min_image_size=4, overwrite=True)
    yield path
    _registry._USER_SPECS.pop("file_backed_cnn", None)


def _perturb(path):
    """Change every tensor of a weights file in place (a model updated between fit and save)."""
    tensors = load_file(path)
    save_file({name: t + 0.05 if t.is_floating_point() else t for name, t in tensors.items()}, str(path))


def _image_classifier(weights, mode, **overrides):
    params = dict(image_size=TINY_SIZE, max_epochs=2, batch_size=8, random_state=0, lr=1e-2, device="cpu")
    return FineTunedClassifier("file_backed_cnn", weights=str(weights), mode=mode, **{**params, **overrides})


@pytest.mark.parametrize(
    "mode, overrides",
    [("lora", {"trainable_layers": 2, "lora_rank": 2}), ("repurpose", {"trainable_layers": 1})],
    ids=["lora", "frozen prefix"],
)
def test_weights_changed_between_fit_and_save_are_refused_at_load(weights_file, tmp_path, mode, overrides):
    if mode == "lora":
        pytest.importorskip("peft")
    X, y = make_images(20)
    clf = _image_classifier(weights_file, mode, **overrides).fit(X, y)
    _perturb(weights_file)
    clf.save(tmp_path / "model.skft")
    clear_cache()
    with pytest.raises(ValueError, match=r"block\(s\) \[.*'block_\d'.*not those the fit started from.*full=True"):
        skft.load(tmp_path / "model.skft")


def test_a_lora_file_round_trips_against_a_cold_cache(weights_file, tmp_path):
    pytest.importorskip("peft")
    X, y = make_images(20)
    clf = _image_classifier(weights_file, "lora", trainable_layers=2, lora_rank=2).fit(X, y)
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "model.skft")
    clear_cache()
    loaded = skft.load(tmp_path / "model.skft")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    # The adapted blocks' base weights are proven by the record, not stored.
    assert set(loaded._base_digests) == set(loaded.block_names_) and loaded.n_frozen_blocks_ == 1


def test_a_weights_file_gone_at_save_asks_for_full(weights_file, tmp_path):
    X, y = make_images(12)
    clf = _image_classifier(weights_file, "feature_extraction").fit(X, y)
    weights_file.unlink()
    with pytest.raises(ValueError, match=r"no longer exist.*save\(path, full=True\)"):
        clf.save(tmp_path / "model.skft")
    clf.save(tmp_path / "full.skft", full=True)
    clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "full.skft").predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_a_prompt_tuned_file_refuses_an_updated_encoder(tmp_path, texts):
    pytest.importorskip("transformers")
    from text_fixtures import save_tiny_model

    folder = save_tiny_model("bert", tmp_path / "bert")
    X, y = texts
    clf = prompt_classifier(str(folder), prompt_tokens=2, max_epochs=1).fit(X, y)
    clf.save(tmp_path / "prompt.skft")
    # The encoder's later layers (around the prompt vectors, never stored) change on disk.
    weights = next(folder.glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(key for key in tensors if "layer.1." in key and key.endswith("weight"))
    tensors[name] = tensors[name] + 0.1
    save_file(tensors, str(weights), metadata={"format": "pt"})
    clear_cache()
    with pytest.raises(ValueError, match=r"block\(s\) \['layer_1'\].*full=True"):
        skft.load(tmp_path / "prompt.skft")


def test_a_file_without_a_per_block_record_is_refused(weights_file, tmp_path):
    from test_identity import _forge

    X, y = make_images(12)
    _image_classifier(weights_file, "feature_extraction").fit(X, y).save(tmp_path / "model.skft")

    def older(config):
        config["pretrained"] = {"digest": "0" * 32}

    with pytest.raises(ValueError, match=r"no per-block record.*full=True"):
        skft.load(_forge(tmp_path / "model.skft", tmp_path / "old.skft", older))


def test_a_full_lora_file_loads_and_predicts_without_peft(weights_file, tmp_path):
    pytest.importorskip("peft")
    X, y = make_images(12)
    clf = _image_classifier(weights_file, "lora", trainable_layers=2, lora_rank=2).fit(X, y)
    np.save(tmp_path / "expected.npy", clf.predict_proba(X))
    np.save(tmp_path / "X.npy", X)
    clf.save(tmp_path / "full.skft", full=True)
    script = (
        "import sys; sys.modules['peft'] = None\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import numpy as np, skft\n"
        "from identity_nets import seeded_cnn\n"
        f"skft.register_backbone('file_backed_cnn', seeded_cnn, image_size={TINY_SIZE}, min_image_size=4)\n"
        f"X = np.load({str(tmp_path / 'X.npy')!r})\n"
        f"loaded = skft.load({str(tmp_path / 'full.skft')!r})\n"
        f"np.testing.assert_allclose(loaded.predict_proba(X), np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-6)\n"
        "assert 'peft' not in sys.modules or sys.modules['peft'] is None\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
