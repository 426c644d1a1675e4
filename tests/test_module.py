import pytest
import torch
from torch import nn

from skft import FineTunedClassifier
from skft.backbones import resolve_backbone

from conftest import TINY, make_images


def _fitted(mode, tiny_params, **extra):
    X, y = make_images(24)
    return FineTunedClassifier(mode=mode, **{**tiny_params, "max_epochs": 1, **extra}).fit(X, y)


@pytest.mark.parametrize(
    "mode, trainable_layers, n_frozen",
    [("full", 1, 0), ("feature_extraction", 1, 3), ("repurpose", 1, 2), ("repurpose", 0, 3), ("repurpose", 3, 0)],
)
def test_modes_freeze_the_right_blocks(tiny_params, mode, trainable_layers, n_frozen):
    clf = _fitted(mode, tiny_params, trainable_layers=trainable_layers)
    network = clf.net_.module_
    assert clf.n_frozen_blocks_ == n_frozen
    for index, block in enumerate(network.backbone):
        assert all(p.requires_grad == (index >= n_frozen) for p in block.parameters())
    assert all(p.requires_grad for p in network.head.parameters())


@pytest.mark.parametrize("mode", ["feature_extraction", "repurpose", "full"])
def test_optimizer_holds_only_trainable_parameters(tiny_params, mode):
    clf = _fitted(mode, tiny_params)
    in_optimizer = {id(p) for group in clf.net_.optimizer_.param_groups for p in group["params"]}
    trainable = {id(p) for p in clf.net_.module_.parameters() if p.requires_grad}
    assert in_optimizer == trainable


def test_parameter_names_are_backbone_and_head_globs(tiny_params):
    names = [name for name, _ in _fitted("repurpose", tiny_params).net_.module_.named_parameters()]
    assert all(name.startswith(("backbone.", "head.")) for name in names)
    assert any(name.startswith("backbone.block_0.") for name in names)
    assert any(name.startswith("head.") for name in names)


def _pristine_blocks():
    return [block.state_dict() for _, block in resolve_backbone(TINY, "DEFAULT").parts.blocks]


def _same_state(block, state):
    return all(torch.equal(value, state[key]) for key, value in block.state_dict().items())


def test_frozen_blocks_stay_in_eval_mode_and_their_weights_do_not_move(tiny_params):
    network = _fitted("repurpose", tiny_params, max_epochs=3, trainable_layers=1).net_.module_
    network.train()
    assert not any(m.training for m in network.backbone[0].modules())
    assert any(m.training for m in network.backbone[2].modules() if isinstance(m, nn.Dropout))
    pristine = _pristine_blocks()
    assert _same_state(network.backbone[0], pristine[0]) and _same_state(network.backbone[1], pristine[1])
    assert not _same_state(network.backbone[2], pristine[2])


def test_batchnorm_statistics_stay_fixed_in_trainable_blocks(tiny_params):
    network = _fitted("full", tiny_params, max_epochs=3).net_.module_
    pristine = _pristine_blocks()
    for block, state in zip(network.backbone, pristine):
        for key, value in block.state_dict().items():
            if "running_" in key:
                assert torch.equal(value, state[key]), key
    assert not any(m.training for m in network.train().modules() if isinstance(m, nn.BatchNorm2d))


def test_forward_accepts_block_activations_with_their_index(tiny_params):
    network = _fitted("repurpose", tiny_params).net_.module_.eval()
    X = torch.from_numpy(make_images(5)[0][:, None].copy())
    with torch.no_grad():
        end_to_end = network(X)
        activations = network.backbone[1](network.backbone[0](network.normalizer(X)))
        from_block_2 = network(activations, start_block=2)
        from_tensor_index = network(activations, start_block=torch.full((5,), 2))
    torch.testing.assert_close(end_to_end, from_block_2)
    torch.testing.assert_close(end_to_end, from_tensor_index)


def test_head_adds_hidden_layers_with_dropout(tiny_params):
    head = _fitted("feature_extraction", tiny_params, head=(12, 6), dropout=0.3).net_.module_.head
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 12), (12, 6), (6, 2)]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    single = _fitted("feature_extraction", tiny_params).net_.module_.head
    assert [type(m) for m in single] == [nn.Linear]
