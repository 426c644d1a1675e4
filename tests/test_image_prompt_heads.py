"""CLIP-style image backbones: a fine-tuning head that starts from the class prompts (issue 24, part 3)."""

import numpy as np
import pytest
from hf_vision_fixtures import save_tiny_clip, save_tiny_vision_model
from open_clip_fixtures import NAME, register_tiny_config, save_tiny_open_clip
from skorch.callbacks import Callback
from timm_fixtures import smooth_images

import skft
from skft import FineTunedClassifier

LABELS = np.array(["cat", "dog", "car"] * 4)


class LogitsAtStart(Callback):
    """Records the network's logits on the training inputs before the first step."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.logits = net.forward(X, training=False).numpy()


@pytest.fixture(params=["transformers", "open_clip"])
def clip(request, tmp_path, monkeypatch):
    """Keyword arguments naming a stand-in CLIP of either library."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if request.param == "transformers":
        save_tiny_clip(tmp_path)
        return dict(backbone=str(tmp_path))
    register_tiny_config(tmp_path / "configs")
    save_tiny_open_clip(tmp_path / "weights.safetensors")
    return dict(backbone=f"open_clip:{NAME}", weights=str(tmp_path / "weights.safetensors"))


def classifier(clip, **overrides):
    params = dict(prompt_template="a photo of a {label}.", max_epochs=1, batch_size=6, device="cpu", random_state=0)
    return FineTunedClassifier(**clip, **{**params, **overrides})


@pytest.mark.parametrize("mode", ["feature_extraction", "repurpose"])
def test_a_prompt_started_head_predicts_what_calibrated_prompt_predicts_before_any_step(clip, mode):
    images = smooth_images(12, 32, seed=4, width=32)
    prompt = classifier(clip, mode="prompt").fit(images, LABELS)
    expected = prompt.net_.forward(prompt._network_inputs(prompt.net_.module_, images, "cpu", None), training=False)
    skft.clear_cache()
    tuned = classifier(clip, mode=mode, head_init="prompt", callbacks=[("at_start", LogitsAtStart())])
    tuned.fit(images, LABELS)
    assert tuned.head_init_ == "prompt"
    at_start = dict(tuned.net_.callbacks_)["at_start"]
    np.testing.assert_allclose(at_start.logits, expected.numpy(), rtol=1e-4, atol=1e-4)
    assert len(set(expected.numpy().argmax(1))) > 1  # the comparison can tell a wrong class order


def test_auto_keeps_a_random_head_on_images(clip):
    assert classifier(clip, mode="feature_extraction").fit(smooth_images(6, 32, width=32), LABELS[:6]).head_init_ == (
        "random"
    )


def test_head_init_prompt_needs_a_text_tower(tmp_path):
    save_tiny_vision_model("vit", tmp_path)
    with pytest.raises(ValueError, match="head_init='prompt'.*no text tower"):
        classifier(dict(backbone=str(tmp_path)), mode="feature_extraction", head_init="prompt").fit(
            smooth_images(6, 32, width=32), LABELS[:6]
        )


def test_wise_alpha_zero_gives_back_the_zero_shot_image_classifier(clip):
    images = smooth_images(12, 32, seed=4, width=32)
    prompt = classifier(clip, mode="prompt").fit(images, LABELS)
    skft.clear_cache()
    wise = classifier(clip, mode="repurpose", trainable_layers=1, head_init="prompt", lr=1e-2, wise_alpha=0.0)
    np.testing.assert_allclose(wise.fit(images, LABELS).predict_proba(images), prompt.predict_proba(images), atol=1e-5)
    assert set(wise.drift_.values()) == {0.0}
