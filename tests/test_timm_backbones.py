"""timm backbones: timm itself is the oracle for skft's blocks, pooling and preprocessing, on stand-in weights."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from timm_fixtures import FAMILIES, put_in_hub_cache, save_stand_in, smooth_images, timm

import skft
from skft import BackboneFeatures, FineTunedClassifier, describe_backbone, list_backbones
from skft.backbones import PretrainedWeightsMissing, resolve_backbone

IMAGE_SIDE = 150


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache under ``tmp_path``."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _timm_input(model, images):
    """The images as timm's own eval transform prepares them (PIL, its data config)."""
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    return torch.stack([transform(Image.fromarray(image.transpose(1, 2, 0))) for image in images])


def _pre_logits(model, x):
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_features_are_timms_pre_logits(family, tmp_path):
    name = FAMILIES[family]
    path = tmp_path / "weights.safetensors"
    model = save_stand_in(name, path)
    images = smooth_images(3, IMAGE_SIDE)
    x = _timm_input(model, images)
    oracle = _pre_logits(model, x)

    blocks = resolve_backbone(f"timm:{name}", str(path)).parts.blocks
    with torch.no_grad():
        for _, block in blocks:
            x = block.eval()(x)
    torch.testing.assert_close(x, oracle, atol=1e-5, rtol=1e-5)

    features = BackboneFeatures(backbone=f"timm:{name}", weights=str(path), device="cpu").fit(images).transform(images)
    features = torch.from_numpy(features)
    assert torch.nn.functional.cosine_similarity(features, oracle).min() > 0.9999  # resizing: tensor vs PIL
    assert (features - oracle).abs().max() < 0.01 * oracle.abs().max()


def test_preprocessing_is_timms_data_config():
    preprocessing = skft.backbones.get_spec("timm:convnext_tiny.fb_in22k").preprocessing("DEFAULT")
    config = timm.data.resolve_data_config({}, model=timm.create_model("convnext_tiny.fb_in22k", pretrained=False))
    assert preprocessing.image_size == config["input_size"][-1]
    assert (preprocessing.mean, preprocessing.std) == (config["mean"], config["std"])
    assert (preprocessing.interpolation, preprocessing.crop_pct) == (config["interpolation"], config["crop_pct"])
    vit = skft.backbones.get_spec("timm:" + FAMILIES["vit"]).preprocessing("DEFAULT")
    assert vit.fixed_size and vit.min_size == vit.image_size == 160


def test_timm_names_are_listed_and_described_without_weights(capsys):
    assert "timm:convnext_tiny.fb_in22k" in list_backbones()
    summary = describe_backbone("timm:convnext_tiny.fb_in22k")
    assert [name for name, _ in summary.blocks] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    with torch.device("meta"):
        headless = timm.create_model("convnext_tiny.fb_in22k", pretrained=False, num_classes=0)
    assert sum(count for _, count in summary.blocks) == sum(p.numel() for p in headless.parameters())
    assert not summary.weights_available and "stage4" in capsys.readouterr().out


def test_default_weights_come_from_the_hugging_face_cache(hub_cache, tmp_path):
    name = FAMILIES["resnet"]
    model = put_in_hub_cache(hub_cache, f"timm/{name}", name)
    images = smooth_images(2, IMAGE_SIDE)
    from_cache = BackboneFeatures(backbone=f"timm:{name}", device="cpu").fit(images).transform(images)
    save_stand_in(name, tmp_path / "same.safetensors")
    from_file = BackboneFeatures(backbone=f"timm:{name}", weights=str(tmp_path / "same.safetensors"), device="cpu")
    np.testing.assert_array_equal(from_cache, from_file.fit(images).transform(images))
    torch.testing.assert_close(
        torch.from_numpy(from_cache), _pre_logits(model, _timm_input(model, images)), atol=0.01, rtol=0.01
    )


def test_a_hub_repository_is_read_from_its_config(hub_cache):
    name = FAMILIES["convnext"]
    model = put_in_hub_cache(hub_cache, "someone/tiny-convnext", name, with_config=True)
    images = smooth_images(2, IMAGE_SIDE)
    features = BackboneFeatures(backbone="timm:hf-hub:someone/tiny-convnext", device="cpu").fit(images)
    oracle = _pre_logits(model, _timm_input(model, images))
    assert torch.nn.functional.cosine_similarity(torch.from_numpy(features.transform(images)), oracle).min() > 0.9999


def test_missing_weights_say_how_to_get_them(hub_cache):
    name = FAMILIES["resnet"]
    with pytest.raises(PretrainedWeightsMissing, match=f"hf download timm/{name} model.safetensors"):
        FineTunedClassifier(backbone=f"timm:{name}", max_epochs=1).fit(smooth_images(2, 40), [0, 1])
    with pytest.raises(FileNotFoundError, match="hf download someone/absent config.json"):
        FineTunedClassifier(backbone="timm:hf-hub:someone/absent", max_epochs=1).fit(smooth_images(2, 40), [0, 1])


def test_bad_names_and_weights_are_value_errors():
    with pytest.raises(ValueError, match="'convnext_tinyy' is not a timm model"):
        skft.backbones.get_spec("timm:convnext_tinyy")
    with pytest.raises(ValueError, match="weights='IMAGENET1K_V1' is not available"):
        resolve_backbone("timm:" + FAMILIES["resnet"], "IMAGENET1K_V1")


def _fit_and_predict(backbone, weights, mode, cache_dir=None):
    rng = np.random.default_rng(0)
    images, y = smooth_images(8, 48, seed=1), rng.permutation([0, 1] * 4)
    clf = FineTunedClassifier(
        backbone=backbone, weights=weights, mode=mode, trainable_layers=1, image_size=48, max_epochs=2,
        batch_size=4, random_state=0, device="cpu", cache_dir=cache_dir,
    )  # fmt: skip
    return clf.fit(images, y), images


_FRESH = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_timm_backbones import _fit_and_predict
clf, images = _fit_and_predict({backbone!r}, {weights!r}, "repurpose")
np.save({out!r}, clf.predict_proba(images))
"""


def test_cached_equals_uncached_equals_a_fresh_process(tmp_path):
    name = FAMILIES["efficientnet"]
    weights = str(tmp_path / "weights.safetensors")
    save_stand_in(name, weights)
    skft.clear_cache()
    cold, images = _fit_and_predict(f"timm:{name}", weights, "repurpose", cache_dir=tmp_path / "cache")
    warm, _ = _fit_and_predict(f"timm:{name}", weights, "repurpose", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(cold.predict_proba(images), warm.predict_proba(images))
    with torch.no_grad():
        uncached = torch.softmax(cold.net_.module_.eval()(torch.from_numpy(images)), dim=1).numpy()
    np.testing.assert_allclose(cold.predict_proba(images), uncached, atol=1e-6)
    out = tmp_path / "fresh.npy"
    script = _FRESH.format(tests=os.path.dirname(__file__), backbone=f"timm:{name}", weights=weights, out=str(out))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300, capture_output=True)
    np.testing.assert_allclose(np.load(out), cold.predict_proba(images), atol=1e-6)


@pytest.mark.parametrize("family, modes", [("convnext", ("full", "lora")), ("vit", ("lora",))])
def test_every_mode_trains_on_timm_blocks(family, modes, tmp_path):
    pytest.importorskip("peft")
    name = FAMILIES[family]
    weights = str(tmp_path / "weights.safetensors")
    save_stand_in(name, weights)
    image_size = 160 if family == "vit" else 48
    images, y = smooth_images(6, image_size, seed=2), [0, 1, 2] * 2
    for mode in modes:
        clf = FineTunedClassifier(
            backbone=f"timm:{name}", weights=weights, mode=mode, image_size=image_size, max_epochs=1, batch_size=6,
            random_state=0, device="cpu",
        ).fit(images, y)  # fmt: skip
        assert clf.predict_proba(images).shape == (6, 3)
    earlier = BackboneFeatures(backbone=f"timm:{name}", weights=weights, feature_layer=-2, image_size=image_size)
    assert earlier.fit(images).transform(images).shape[0] == 6


def test_a_changes_only_file_loads_offline_from_the_cache_and_says_what_to_do_without_it(hub_cache, tmp_path):
    name = FAMILIES["resnet"]
    put_in_hub_cache(hub_cache, f"timm/{name}", name)
    clf, images = _fit_and_predict(f"timm:{name}", "DEFAULT", "repurpose")
    clf.save(tmp_path / "changes.skft")
    clf.save(tmp_path / "full.skft", full=True)
    skft.clear_cache()
    expected = clf.predict_proba(images)
    np.testing.assert_allclose(skft.load(tmp_path / "changes.skft").predict_proba(images), expected, atol=1e-6)
    next(hub_cache.rglob("model.safetensors")).unlink()
    skft.clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "full.skft").predict_proba(images), expected, atol=1e-6)
    with pytest.raises(ValueError, match=f"stores only what its fit changed.*hf download timm/{name}"):
        skft.load(tmp_path / "changes.skft")


def test_the_digest_sees_timms_non_parameter_state():
    blocks = resolve_backbone("timm:" + FAMILIES["vit"], None).parts.blocks
    before = skft.backbones.module_digest(blocks)
    blocks[0][1].view.no_embed_class = True  # a plain attribute the embedding's forward reads
    assert skft.backbones.module_digest(blocks) != before
