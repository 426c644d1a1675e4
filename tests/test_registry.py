import pytest
import torch
from torch import nn

from skft import describe_backbone, list_backbones, register_backbone
from skft.backbones import _efficientnet_lite as lite
from skft.backbones import get_spec, resolve_backbone
from skft.backbones._splitting import split_children

from conftest import TINY, TINY_SIZE, make_tiny_cnn


def test_list_backbones_has_default_torchvision_and_user_names():
    names = list_backbones()
    assert "efficientnet_lite0" in names
    assert {"resnet18", "vit_b_16", "convnext_tiny"} <= set(names)
    assert TINY in names
    assert names == sorted(names)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"resnet50.*not a registered backbone.*resnet18|resnet152"):
        get_spec("resnet50x")
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        get_spec("efficientnet_lite")


def test_lite0_blocks_reproduce_the_unsplit_network():
    model = lite.build("DEFAULT").eval()
    parts = lite.split(model)
    assert [name for name, _ in parts.blocks] == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head_conv"]
    assert [len(block) for name, block in parts.blocks[1:-1]] == list(lite.STAGE_SIZES)
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.extract_features(x)
        for _, block in parts.blocks:
            x = block(x)
    torch.testing.assert_close(x, expected)


def test_lite0_blocks_cover_every_feature_parameter_once():
    model = lite.build(None)
    parts = lite.split(model)
    block_params = [p for _, block in parts.blocks for p in block.parameters()]
    assert len({id(p) for p in block_params}) == len(block_params)
    feature_params = {id(p) for name, p in model.named_parameters() if not name.startswith("_fc")}
    assert {id(p) for p in block_params} == feature_params


def test_lite0_default_weights_are_the_shipped_file():
    shipped = torch.load(lite.weights_file(), weights_only=True)
    model = lite.build("DEFAULT")
    torch.testing.assert_close(model.state_dict()["_conv_stem.weight"], shipped["_conv_stem.weight"])
    random = lite.build(None)
    assert not torch.equal(random.state_dict()["_conv_stem.weight"], shipped["_conv_stem.weight"])


def test_lite0_rejects_unknown_weights_name():
    with pytest.raises(ValueError, match="IMAGENET1K_V9.*not available"):
        lite.build("IMAGENET1K_V9")


def test_describe_backbone_prints_blocks_sizes_and_normalisation(capsys):
    summary = describe_backbone("efficientnet_lite0")
    text = capsys.readouterr().out
    assert len(summary.blocks) == 9
    assert "stage7" in text and "head_conv" in text
    assert "mean=(0.5, 0.5, 0.5)" in text and "at least 32 px" in text
    assert summary.weights_available
    assert sum(count for _, count in summary.blocks) == sum(
        p.numel() for name, p in lite.build(None).named_parameters() if not name.startswith("_fc")
    )


def test_describe_counts_a_large_model_without_allocating_it(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("describe_backbone must not download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    summary = describe_backbone("vit_h_14")
    assert sum(count for _, count in summary.blocks) > 600_000_000


def test_register_backbone_validates_its_arguments():
    with pytest.raises(TypeError, match="builder"):
        register_backbone("x_bad", "not callable")
    with pytest.raises(ValueError, match="pooling"):
        register_backbone("x_bad", make_tiny_cnn, pooling="max")
    with pytest.raises(ValueError, match="already registered"):
        register_backbone(TINY, make_tiny_cnn)


def test_split_children_merges_parameter_free_layers_into_the_block_before():
    parts = split_children(make_tiny_cnn())
    assert len(parts.blocks) == 3
    assert all(isinstance(block[-1], nn.ReLU) for _, block in parts.blocks)


def test_split_children_with_explicit_groups():
    model = make_tiny_cnn()
    parts = split_children(model, [["0", "1", "2", "3"], ["4", "5"]])
    assert [name for name, _ in parts.blocks] == ["block_0_1_2_3", "block_4_5"]
    with pytest.raises(ValueError, match="does not have"):
        split_children(model, [["0", "99"]])


def test_resolve_a_user_module_requires_image_size_and_never_mutates_it():
    module = make_tiny_cnn()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(ValueError, match="image_size"):
        resolve_backbone(module, "DEFAULT")
    resolved = resolve_backbone(module, None, image_size=TINY_SIZE)
    assert len(resolved.parts.blocks) == 3
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key])


def test_weights_none_reinitialises_a_registered_user_network():
    pretrained = resolve_backbone(TINY, "DEFAULT").parts.blocks[0][1][0][0].weight
    random = resolve_backbone(TINY, None).parts.blocks[0][1][0][0].weight
    assert not torch.equal(pretrained, random)


def test_image_size_outside_what_the_backbone_accepts():
    pre = get_spec("efficientnet_lite0").preprocessing("DEFAULT")
    with pytest.raises(ValueError, match="at least 32"):
        pre.check_image_size(16, "efficientnet_lite0")
    pre.check_image_size(32, "efficientnet_lite0")
