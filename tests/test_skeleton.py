"""One way to build a backbone: every path builds the network the pretrained weights need.

The oracle is torchvision's own builder with the weights (``models.get_model(name, weights=...)``),
reading stand-in weights from a temporary hub cache. skft builds the same backbone three ways: the
first build with weights (the model kept once per process), a model on the ``meta`` device that
assigns the kept tensors (continuations, the GPU path), and the skeleton ``load`` fills with saved
tensors. Each must equal the oracle block by block: same names, same modules, same outputs.
"""

import threading
import time

import pytest
import torch
from torchvision import models
from torchvision.models import WeightsEnum

from skft.backbones import _efficientnet_lite, _registry, resolve_backbone
from skft.backbones._torchvision import split_torchvision_model, torchvision_preprocessing, torchvision_skeleton

from stand_in_weights import never_download, use_hub, write_stand_in

# The smallest model of each torchvision builder path, with weights whose builder arguments differ
# from weights=None where a family has such weights.
CASES = [
    ("googlenet", "DEFAULT"),  # transform_input, aux_logits
    ("inception_v3", "DEFAULT"),  # transform_input, aux_logits
    ("maxvit_t", "DEFAULT"),  # input_size
    ("regnet_x_400mf", "DEFAULT"),
    ("resnet18", "DEFAULT"),
    ("efficientnet_b0", "DEFAULT"),
    ("mobilenet_v3_small", "DEFAULT"),
    ("convnext_tiny", "DEFAULT"),
    ("shufflenet_v2_x0_5", "DEFAULT"),
    ("mnasnet0_5", "DEFAULT"),
    ("squeezenet1_1", "DEFAULT"),
    ("densenet121", "DEFAULT"),
]
# Built on the meta device (structure, tensor shapes and output shapes; no values): a full build of
# an 86M-parameter ViT at 384 px, four times, is too slow for the test suite. Its weights are really
# loaded, with values, in test_load_rebuild.py.
META_CASES = [
    ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1"),  # image_size=384 where weights=None builds 224
]


@pytest.fixture(autouse=True)
def _fresh_kept_models():
    """Each test starts and ends without kept pretrained models (they are large)."""
    _registry._PRISTINE_MODELS.clear()
    yield
    _registry._PRISTINE_MODELS.clear()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    never_download(monkeypatch)
    return use_hub(monkeypatch, tmp_path)


def _assert_same_blocks(expected, actual, x):
    """Same block names and modules, and the same output of each block on the same input (shapes on meta)."""
    assert [name for name, _ in actual] == [name for name, _ in expected]
    with torch.no_grad():
        for (name, reference), (_, block) in zip(expected, actual):
            assert repr(block) == repr(reference), name
            assert _shapes(block) == _shapes(reference), name
            reference.eval(), block.eval()
            out, got = reference(x), block(x)
            assert got.shape == out.shape, name
            if not x.is_meta:
                torch.testing.assert_close(got, out, rtol=0, atol=0, msg=name)
            x = out


def _shapes(module):
    return {key: tuple(tensor.shape) for key, tensor in module.state_dict().items()}


def _every_path(name, weights):
    """The blocks of skft's three builds: with weights, assigning the kept tensors, and load's skeleton."""
    first = resolve_backbone(name, weights).parts.blocks
    assigned = resolve_backbone(name, weights, share_modules=False).parts.blocks
    rebuilt = resolve_backbone(name, weights, read_weights=False).parts.blocks
    for (_, block), (_, source) in zip(rebuilt, first):
        block.load_state_dict(source.state_dict())
    return first, assigned, rebuilt


def _input(name, weights):
    size = torchvision_preprocessing(name, weights).min_size
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("name", "weights"), CASES)
def test_every_path_builds_the_pretrained_network(hub, name, weights):
    write_stand_in(hub, name, weights)
    pretrained = split_torchvision_model(name, models.get_model(name, weights=weights)).blocks
    paths = _every_path(name, weights)
    assert not any(p.is_meta for _, block in paths[1] for p in block.parameters())
    for blocks in paths:
        _assert_same_blocks(pretrained, blocks, _input(name, weights))


@pytest.mark.parametrize(("name", "weights"), META_CASES)
def test_every_path_builds_the_pretrained_network_on_meta(hub, monkeypatch, name, weights):
    with torch.device("meta"):
        state = torchvision_skeleton(name, weights).state_dict()
        # Both torchvision's builder and skft's read the weights through WeightsEnum.get_state_dict.
        monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *args, **kwargs: state)
        pretrained = split_torchvision_model(name, models.get_model(name, weights=weights)).blocks
        paths = _every_path(name, weights)
    for blocks in paths:
        _assert_same_blocks(pretrained, blocks, _input(name, weights).to("meta"))


def test_rebuild_reads_and_downloads_nothing(hub):
    # The hub is empty and downloads fail the test: the skeleton needs no weights file.
    blocks = resolve_backbone("googlenet", "DEFAULT", read_weights=False).parts.blocks
    assert next(iter(blocks[0][1].named_children()))[0] == "transform_input"
    assert not _registry._PRISTINE_MODELS


def test_default_and_its_name_share_one_kept_model(hub):
    write_stand_in(hub, "squeezenet1_1", "IMAGENET1K_V1")
    first = resolve_backbone("squeezenet1_1", "DEFAULT", share_modules=True).parts.blocks
    second = resolve_backbone("squeezenet1_1", "IMAGENET1K_V1", share_modules=True).parts.blocks
    assert len(_registry._PRISTINE_MODELS) == 1
    assert first[0][1][0].weight is second[0][1][0].weight


def test_kept_model_follows_the_weights_file(tmp_path, monkeypatch):
    """Two hub caches hold different files for one weights name: each build reads its own."""
    never_download(monkeypatch)
    written = []
    for seed, folder in enumerate(("hub_a", "hub_b")):
        state = write_stand_in(use_hub(monkeypatch, tmp_path / folder), "squeezenet1_1", "DEFAULT", seed=seed)
        written.append(state["features.0.weight"])
        built = resolve_backbone("squeezenet1_1", "DEFAULT", share_modules=True).parts.blocks[0][1][0].weight
        torch.testing.assert_close(built, written[-1], rtol=0, atol=0)
    assert not torch.equal(*written)


def test_threads_asking_at_once_read_the_weights_once(monkeypatch):
    reads = []
    read = _efficientnet_lite.read_weights

    def slow_read():
        reads.append(threading.get_ident())
        time.sleep(0.3)  # long enough for every thread to ask while the first one reads
        return read()

    monkeypatch.setattr(_efficientnet_lite, "read_weights", slow_read)
    start = threading.Barrier(3)
    results = []

    def fit_like():
        start.wait()
        results.append(resolve_backbone("efficientnet_lite0", "DEFAULT", share_modules=True).parts.blocks[0][1][0])

    threads = [threading.Thread(target=fit_like) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1
    assert len(results) == 3 and all(conv is results[0] for conv in results)
