"""open_clip backbones: open_clip itself is the oracle for image features and zero-shot predictions."""

import os

import numpy as np
import pytest
import torch
from hf_vision_fixtures import uncalibrated
from open_clip_fixtures import NAME, open_clip, register_tiny_config, save_tiny_open_clip
from timm_fixtures import smooth_images

from skft import BackboneFeatures, FineTunedClassifier, describe_backbone
from skft.backbones import PretrainedWeightsMissing, image_backbone_reads_prompts

BACKBONE = f"open_clip:{NAME}"


@pytest.fixture
def weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    register_tiny_config(tmp_path / "configs")
    path = tmp_path / "weights.safetensors"
    return str(path), save_tiny_open_clip(path)


def _pixels(model, images):
    """The images as open_clip's own eval transform prepares them (PIL)."""
    from PIL import Image

    settings = open_clip.get_model_preprocess_cfg(model)
    transform = open_clip.image_transform(
        settings["size"], is_train=False, mean=settings["mean"], std=settings["std"],
        resize_mode=settings["resize_mode"], interpolation=settings["interpolation"],
    )  # fmt: skip
    return torch.stack([transform(Image.fromarray(image.transpose(1, 2, 0))) for image in images])


def test_features_are_encode_image(weights):
    path, model = weights
    images = smooth_images(3, 32, width=32)
    with torch.no_grad():
        oracle = model.encode_image(_pixels(model, images))
    features = BackboneFeatures(backbone=BACKBONE, weights=path, device="cpu").fit(images).transform(images)
    torch.testing.assert_close(torch.from_numpy(features), oracle, atol=1e-4, rtol=1e-4)
    assert [name for name, _ in describe_backbone(BACKBONE).blocks] == ["embeddings", "block_0", "block_1"]


def test_zero_shot_prediction_is_open_clips_own_choice(weights):
    path, model = weights
    images = np.random.default_rng(0).integers(0, 256, size=(12, 3, 32, 32), dtype=np.uint8)  # at the model's size
    labels = np.array(["red", "green", "blue", "black"] * 3)  # classes this random model tells apart
    template = "a photo of a {label}."
    clf = FineTunedClassifier(
        backbone=BACKBONE, weights=path, mode="prompt", prompt_template=template, device="cpu", **uncalibrated()
    )
    predicted = clf.fit(images, labels).predict(images)
    texts = [template.format(label=label) for label in clf.classes_]
    with torch.no_grad():
        image_features = torch.nn.functional.normalize(model.encode_image(_pixels(model, images)), dim=-1)
        text_features = torch.nn.functional.normalize(model.encode_text(open_clip.get_tokenizer(NAME)(texts)), dim=-1)
    np.testing.assert_array_equal(predicted, clf.classes_[(image_features @ text_features.T).argmax(dim=1).numpy()])
    assert len(set(predicted)) > 1 and image_backbone_reads_prompts(BACKBONE)


def test_the_image_tower_fine_tunes(weights):
    path, _ = weights
    images, y = smooth_images(6, 32, seed=6, width=32), [0, 1, 2] * 2
    clf = FineTunedClassifier(backbone=BACKBONE, weights=path, mode="repurpose", max_epochs=1, device="cpu")
    assert clf.fit(images, y).predict_proba(images).shape == (6, 3)


def test_a_missing_tag_says_how_to_get_it(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PretrainedWeightsMissing, match="hf download timm/vit_base_patch32_clip_224.openai"):
        BackboneFeatures(backbone="open_clip:ViT-B-32", weights="openai").fit(smooth_images(1, 32))
    with pytest.raises(ValueError, match="is not a pretrained tag"):
        BackboneFeatures(backbone="open_clip:ViT-B-32", weights="imagenet").fit(smooth_images(1, 32))


def test_prompt_ensembling_averages_the_templates(weights):
    path, model = weights
    images = np.random.default_rng(1).integers(0, 256, size=(12, 3, 32, 32), dtype=np.uint8)
    labels = np.array(["red", "green", "blue", "black"] * 3)
    templates = ["a photo of a {label}.", "a drawing of a {label}.", "{label}"]
    clf = FineTunedClassifier(
        backbone=BACKBONE, weights=path, mode="prompt", prompt_template=templates, device="cpu", **uncalibrated()
    )
    predicted = clf.fit(images, labels).predict(images)
    tokenizer, normalize = open_clip.get_tokenizer(NAME), torch.nn.functional.normalize
    with torch.no_grad():
        per_template = [
            normalize(model.encode_text(tokenizer([t.format(label=c) for c in clf.classes_])), dim=-1)
            for t in templates
        ]
        classes = normalize(torch.stack(per_template).mean(dim=0), dim=-1)
        image_features = normalize(model.encode_image(_pixels(model, images)), dim=-1)
    np.testing.assert_array_equal(predicted, clf.classes_[(image_features @ classes.T).argmax(dim=1).numpy()])
    with pytest.raises(ValueError, match="has no '{label}'"):
        clf.set_params(prompt_template=["a {label}", "no label"]).fit(images, labels)


def test_a_changes_only_file_needs_the_base_weights_and_says_so(weights, tmp_path):
    import skft

    path, _ = weights
    images, y = smooth_images(6, 32, seed=7, width=32), [0, 1, 2] * 2
    clf = FineTunedClassifier(backbone=BACKBONE, weights=path, mode="repurpose", max_epochs=1, device="cpu")
    clf.fit(images, y).save(tmp_path / "changes.skft")
    skft.clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "changes.skft").predict_proba(images), clf.predict_proba(images))
    os.remove(path)
    skft.clear_cache()
    with pytest.raises(ValueError, match="stores only what its fit changed"):
        skft.load(tmp_path / "changes.skft")
