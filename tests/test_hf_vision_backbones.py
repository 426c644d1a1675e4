"""Hugging Face vision encoders: transformers itself is the oracle for skft's blocks, pooling and preprocessing."""

import numpy as np
import pytest
import torch
from hf_vision_fixtures import CONFIGS, save_tiny_clip, save_tiny_vision_model, uncalibrated
from timm_fixtures import smooth_images

import skft
from skft import BackboneFeatures, FineTunedClassifier
from skft.backbones import backbone_modality, resolve_backbone


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _pooled(model, pixel_values, kind):
    with torch.no_grad():
        output = model(pixel_values=pixel_values)
    return output.last_hidden_state[:, 0] if kind == "vit" else output.pooler_output


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_pooled_features_are_the_models_own(kind, tmp_path):
    model, processor = save_tiny_vision_model(kind, tmp_path)
    images = smooth_images(3, 40, width=40)  # square: both libraries crop at the same offsets
    pixel_values = processor(list(torch.from_numpy(images)), return_tensors="pt")["pixel_values"]
    oracle = _pooled(model, pixel_values, kind)
    assert backbone_modality(str(tmp_path)) == "image"

    x = pixel_values
    with torch.no_grad():
        for _, block in resolve_backbone(str(tmp_path), "DEFAULT").parts.blocks:
            x = block.eval()(x)
    torch.testing.assert_close(x, oracle, atol=1e-5, rtol=1e-5)

    features = torch.from_numpy(BackboneFeatures(backbone=str(tmp_path), device="cpu").fit(images).transform(images))
    assert torch.nn.functional.cosine_similarity(features, oracle).min() > 0.999  # tensor resizing vs the processor's


def test_a_clip_checkpoint_gives_its_image_embeddings(tmp_path):
    clip, processor, _ = save_tiny_clip(tmp_path)
    images = smooth_images(2, 32, width=32)
    pixel_values = processor(list(torch.from_numpy(images)), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        oracle = clip(pixel_values=pixel_values, input_ids=torch.zeros(1, 2, dtype=torch.long)).image_embeds
    features = BackboneFeatures(backbone=str(tmp_path), device="cpu").fit(images).transform(images)
    torch.testing.assert_close(torch.nn.functional.normalize(torch.from_numpy(features)), oracle, atol=1e-4, rtol=1e-4)
    from_file = BackboneFeatures(backbone=str(tmp_path), weights=str(tmp_path / "model.safetensors"), device="cpu")
    np.testing.assert_array_equal(from_file.fit(images).transform(images), features)


def test_zero_shot_prompting_of_images_is_clips_own_choice(tmp_path):
    clip, processor, tokenizer = save_tiny_clip(tmp_path)
    images, labels = smooth_images(12, 32, seed=4, width=32), np.array(["cat", "dog", "car"] * 4)
    template = "a photo of a {label}."
    clf = FineTunedClassifier(
        backbone=str(tmp_path), mode="prompt", prompt_template=template, device="cpu", **uncalibrated()
    )
    predicted = clf.fit(images, labels).predict(images)
    texts = [template.format(label=label) for label in clf.classes_]
    pixel_values = processor(list(torch.from_numpy(images)), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = clip(pixel_values=pixel_values, **tokenizer(texts, padding=True, return_tensors="pt")).logits_per_image
    np.testing.assert_array_equal(predicted, clf.classes_[logits.argmax(dim=1).numpy()])
    assert len(set(predicted)) > 1  # the oracle can tell a wrong class order from the right one


def test_prompting_needs_a_text_tower(tmp_path):
    save_tiny_vision_model("vit", tmp_path)
    with pytest.raises(ValueError, match="has no text tower"):
        FineTunedClassifier(backbone=str(tmp_path), mode="prompt").fit(smooth_images(2, 32), ["a", "b"])


def test_a_vision_encoder_fine_tunes_and_reloads(tmp_path):
    pytest.importorskip("peft")
    save_tiny_vision_model("dinov2", tmp_path / "model")
    images, y = smooth_images(6, 40, seed=3, width=40), [0, 1, 2] * 2
    for mode in ("repurpose", "lora"):
        clf = FineTunedClassifier(
            backbone=str(tmp_path / "model"), mode=mode, max_epochs=1, batch_size=6, random_state=0, device="cpu"
        ).fit(images, y)
        clf.save(tmp_path / f"{mode}.skft")
        skft.clear_cache()
        np.testing.assert_allclose(
            skft.load(tmp_path / f"{mode}.skft").predict_proba(images), clf.predict_proba(images), atol=1e-6
        )
