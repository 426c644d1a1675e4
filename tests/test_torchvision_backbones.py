"""The torchvision adapter: splitting each family into blocks, loading weights offline, preprocessing."""

import functools
import os
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import models

import skft
from skft import FineTunedClassifier
from skft.backbones._torchvision import (
    build_torchvision_model,
    resolve_torchvision_weights,
    split_torchvision_model,
    torchvision_model_names,
    torchvision_preprocessing,
    torchvision_skeleton,
    torchvision_weights_file,
)
from skft.backbones._types import IMAGENET_MEAN, IMAGENET_STD

from stand_in_weights import never_download, use_hub


def _seen_by(module, hook):
    """A reference that runs the whole model and returns what ``hook`` records at ``module``.

    ``hook(target, seen)`` registers a hook on ``target`` that appends to ``seen`` and returns its handle.
    """

    def reference(model, x):
        seen = []
        handle = hook(module(model), seen)
        try:
            model(x)
        finally:
            handle.remove()
        return seen[0]

    return reference


def _input_of(module):
    """A reference that runs the whole model and returns what ``module`` received."""
    return _seen_by(module, lambda target, seen: target.register_forward_pre_hook(lambda _, args: seen.append(args[0])))


def _output_of(module):
    """A reference that runs the whole model and returns what ``module`` produced."""
    return _seen_by(module, lambda target, seen: target.register_forward_hook(lambda _, args, out: seen.append(out)))


# name: (number of blocks, the unsplit network's features, prefixes of the dropped classifier parameters)
FAMILIES = {
    "resnet18": (5, _input_of(lambda m: m.avgpool), ("fc.",)),
    "regnet_x_400mf": (5, _input_of(lambda m: m.avgpool), ("fc.",)),
    "efficientnet_b0": (9, _input_of(lambda m: m.avgpool), ("classifier.",)),
    "mobilenet_v2": (19, lambda m, x: m.features(x), ("classifier.",)),
    "mobilenet_v3_small": (13, _input_of(lambda m: m.avgpool), ("classifier.",)),
    "convnext_tiny": (4, _input_of(lambda m: m.avgpool), ("classifier.",)),
    "swin_t": (4, _input_of(lambda m: m.permute), ("head.",)),
    "vgg11": (5, _input_of(lambda m: m.avgpool), ("classifier.",)),
    "alexnet": (3, _input_of(lambda m: m.avgpool), ("classifier.",)),
    "densenet121": (5, lambda m, x: F.relu(m.features(x)), ("classifier.",)),
    "vit_b_16": (13, _output_of(lambda m: m.encoder), ("heads.",)),
    "googlenet": (10, _input_of(lambda m: m.avgpool), ("fc.", "aux1.", "aux2.")),
    "inception_v3": (12, _input_of(lambda m: m.avgpool), ("fc.", "AuxLogits.")),
    "shufflenet_v2_x0_5": (5, _output_of(lambda m: m.conv5), ("fc.",)),
    "mnasnet0_5": (8, lambda m, x: m.layers(x), ("classifier.",)),
    "squeezenet1_0": (9, lambda m, x: m.features(x), ("classifier.",)),
    "maxvit_t": (5, _input_of(lambda m: m.classifier), ("classifier.",)),
}


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread():
    """Tiny inputs gain nothing from intra-op threads, which thrash when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _random_model(name):
    """The network the default weights are loaded into, randomly initialised, in eval mode (shared: tests only
    read it). GoogLeNet and Inception3 have their input transform on, as with weights."""
    torch.manual_seed(0)
    return torchvision_skeleton(name, "DEFAULT").eval()


def _run_blocks(parts, x):
    for _, block in parts.blocks:
        x = block(x)
    return x


def test_model_names_are_sorted_classification_models():
    names = torchvision_model_names()
    assert names == sorted(names)
    assert {"resnet18", "vit_b_16", "efficientnet_b0"} <= set(names)
    assert not any(name.startswith(("fcn_", "raft_", "r3d_", "maskrcnn")) for name in names)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_blocks_reproduce_the_network(name):
    n_blocks, reference, classifier_prefixes = FAMILIES[name]
    model = _random_model(name)
    parts = split_torchvision_model(name, model)
    size = torchvision_preprocessing(name, None).min_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))

    with torch.no_grad():
        torch.testing.assert_close(_run_blocks(parts, x), reference(model, x), rtol=1e-4, atol=1e-5)

    names = [block_name for block_name, _ in parts.blocks]
    assert len(parts.blocks) == n_blocks
    assert all(block_name.isidentifier() for block_name in names) and len(set(names)) == len(names)
    block_params = [p for _, block in parts.blocks for p in block.parameters()]
    assert all(any(True for _ in block.parameters()) for _, block in parts.blocks)
    feature_params = [p for n, p in model.named_parameters() if not n.startswith(classifier_prefixes)]
    assert len({id(p) for p in block_params}) == len(block_params)
    assert {id(p) for p in block_params} == {id(p) for p in feature_params}


def test_poolings():
    assert split_torchvision_model("swin_t", _meta_model("swin_t")).pooling == "avg_channels_last"
    assert split_torchvision_model("vit_b_16", _meta_model("vit_b_16")).pooling == "class_token"
    assert split_torchvision_model("resnet18", _meta_model("resnet18")).pooling == "avg"


def test_inception_input_transform_is_in_the_stem_with_weights():
    for name in ("googlenet", "inception_v3"):
        stem = split_torchvision_model(name, _meta_model(name)).blocks[0][1]
        assert next(iter(stem.named_children()))[0] == "transform_input"
        without = split_torchvision_model(name, _meta_model(name, None)).blocks[0][1]
        assert "transform_input" not in dict(without.named_children())


def test_vit_embedding_holds_the_original_parameters():
    model = _meta_model("vit_b_16")
    embedding = split_torchvision_model("vit_b_16", model).blocks[0][1]
    assert embedding.class_token is model.class_token
    assert embedding.pos_embedding is model.encoder.pos_embedding
    assert embedding.conv_proj is model.conv_proj


def _meta_model(name, weights="DEFAULT"):
    """The network ``weights`` are loaded into, on the meta device (nothing is read)."""
    with torch.device("meta"):
        return torchvision_skeleton(name, weights)


@pytest.mark.parametrize("name", sorted(FAMILIES) + ["regnet_y_400mf", "efficientnet_v2_s", "swin_v2_t"])
def test_build_and_split_on_the_meta_device(name):
    model = _meta_model(name)
    parts = split_torchvision_model(name, model)
    assert all(p.is_meta for _, block in parts.blocks for p in block.parameters())
    assert sum(p.numel() for _, block in parts.blocks for p in block.parameters()) > 0


def test_unknown_model_class_is_a_value_error():
    with pytest.raises(ValueError, match="Sequential"):
        split_torchvision_model("mine", torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))


# ---- weights ---------------------------------------------------------------------------------------------


@pytest.fixture
def hub_checkpoints(tmp_path, monkeypatch):
    """An empty torch hub cache under ``tmp_path``; returns its ``checkpoints`` folder."""
    return use_hub(monkeypatch, tmp_path)


def _resnet18_file(checkpoints):
    url = models.ResNet18_Weights.IMAGENET1K_V1.url
    return checkpoints / url.rsplit("/", 1)[1]


def test_weights_load_from_the_hub_cache_without_download(hub_checkpoints, monkeypatch):
    never_download(monkeypatch)
    torch.manual_seed(0)
    state_dict = models.resnet18(weights=None, num_classes=1000).state_dict()
    path = _resnet18_file(hub_checkpoints)
    torch.save(state_dict, path)

    assert torchvision_weights_file("resnet18", "DEFAULT") == str(path)
    loaded = build_torchvision_model("resnet18", "DEFAULT").state_dict()
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[key], state_dict[key]) for key in state_dict)


def test_missing_weights_name_the_expected_file(hub_checkpoints, monkeypatch):
    attempts = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    path = str(_resnet18_file(hub_checkpoints))
    with pytest.raises(ValueError, match="copy it to") as info:
        build_torchvision_model("resnet18", "IMAGENET1K_V1")
    assert attempts == [models.ResNet18_Weights.IMAGENET1K_V1.url]
    assert path in str(info.value)
    assert models.ResNet18_Weights.IMAGENET1K_V1.url in str(info.value)


class _WritesAMarker:
    """Pickles as a call to ``open(marker, "w")``: code that runs if the file is unpickled freely."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_weights_file_carrying_code_is_refused(hub_checkpoints, monkeypatch, tmp_path):
    never_download(monkeypatch)
    marker = tmp_path / "code_ran"
    path = _resnet18_file(hub_checkpoints)
    torch.save({"conv1.weight": _WritesAMarker(str(marker))}, path)

    with pytest.raises(ValueError, match="not a plain tensor file") as info:
        build_torchvision_model("resnet18", "DEFAULT")
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_weights_that_do_not_fit_are_a_value_error(hub_checkpoints, monkeypatch):
    never_download(monkeypatch)
    torch.save({"conv1.weight": torch.zeros(1)}, _resnet18_file(hub_checkpoints))
    with pytest.raises(ValueError, match="does not hold the weights"):
        build_torchvision_model("resnet18", "DEFAULT")


def test_weights_names_resolve():
    assert resolve_torchvision_weights("resnet50", None) is None
    assert resolve_torchvision_weights("resnet50", "DEFAULT") is models.ResNet50_Weights.IMAGENET1K_V2
    assert resolve_torchvision_weights("resnet50", "IMAGENET1K_V1") is models.ResNet50_Weights.IMAGENET1K_V1
    named = resolve_torchvision_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V2")
    assert named is models.ResNet50_Weights.IMAGENET1K_V2


def test_bad_weights_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="weights='IMAGENET_V9'") as info:
        resolve_torchvision_weights("resnet50", "IMAGENET_V9")
    assert "IMAGENET1K_V1" in str(info.value) and "IMAGENET1K_V2" in str(info.value)
    assert "DEFAULT" in str(info.value)


# ---- preprocessing ---------------------------------------------------------------------------------------


def test_preprocessing_comes_from_the_weights():
    pre = torchvision_preprocessing("resnet50", "IMAGENET1K_V2")
    assert pre.image_size == 224 and not pre.fixed_size
    assert pre.mean == pytest.approx(IMAGENET_MEAN) and pre.std == pytest.approx(IMAGENET_STD)
    assert torchvision_preprocessing("inception_v3", None).image_size == 299
    features = torchvision_preprocessing("vgg16", "IMAGENET1K_FEATURES")
    assert features.std == pytest.approx((1 / 255,) * 3)


def test_vit_only_accepts_its_own_size():
    pre = torchvision_preprocessing("vit_b_16", "DEFAULT")
    assert pre.fixed_size and pre.image_size == pre.min_size == 224
    swag = torchvision_preprocessing("vit_b_16", "IMAGENET1K_SWAG_E2E_V1")
    assert swag.fixed_size and swag.image_size == 384
    with pytest.raises(ValueError, match="224x224"):
        split_torchvision_model("vit_b_16", _meta_model("vit_b_16")).blocks[0][1](torch.zeros(1, 3, 256, 256))


def test_vit_without_weights_is_built_at_the_default_weights_size():
    model = _meta_model("vit_h_14", None)
    assert model.image_size == torchvision_preprocessing("vit_h_14", None).image_size == 518


def test_vit_is_built_at_its_weights_size():
    assert _meta_model("vit_b_16", "IMAGENET1K_SWAG_E2E_V1").image_size == 384
    assert _meta_model("vit_b_16", "IMAGENET1K_SWAG_LINEAR_V1").image_size == 224


def test_swin_accepts_other_sizes():
    pre = torchvision_preprocessing("swin_t", None)
    assert not pre.fixed_size
    parts = split_torchvision_model("swin_t", _meta_model("swin_t"))
    assert _run_blocks(parts, torch.zeros(1, 3, 96, 96, device="meta")).shape == (1, 3, 3, 768)


@pytest.mark.parametrize("name", ["alexnet", "inception_v3"])
def test_min_size_is_the_smallest_that_runs(name):
    # min_size itself runs in test_blocks_reproduce_the_network; one pixel less fails on the CPU.
    size = torchvision_preprocessing(name, None).min_size
    assert size > 32
    parts = split_torchvision_model(name, _random_model(name))
    with torch.no_grad(), pytest.raises(RuntimeError):
        _run_blocks(parts, torch.zeros(1, 3, size - 1, size - 1))


def test_preprocessing_for_every_model_name():
    for name in torchvision_model_names():
        pre = torchvision_preprocessing(name, None)
        assert pre.min_size <= pre.image_size, name
        assert pre.fixed_size == name.startswith(("vit_", "maxvit_")), name


def test_weights_files_live_in_the_hub_cache():
    path = torchvision_weights_file("resnet50", "IMAGENET1K_V2")
    assert path == os.path.join(torch.hub.get_dir(), "checkpoints", "resnet50-11ad3fa6.pth")
    assert torchvision_weights_file("resnet50", None) is None


def test_a_file_of_changes_whose_pretrained_weights_are_missing_names_save_full(hub_checkpoints, monkeypatch, tmp_path):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    torch.manual_seed(0)
    torch.save(models.resnet18(weights=None, num_classes=1000).state_dict(), _resnet18_file(hub_checkpoints))
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8), [0, 1] * 4
    clf = FineTunedClassifier(
        backbone="resnet18", mode="feature_extraction", image_size=32, max_epochs=1, random_state=0, device="cpu"
    ).fit(X, y)
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "changes.skft")
    clf.save(tmp_path / "full.skft", full=True)
    _resnet18_file(hub_checkpoints).unlink()
    skft.clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "full.skft").predict_proba(X), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"stores only what its fit changed.*copy it to.*save\(path, full=True\)"):
        skft.load(tmp_path / "changes.skft")
