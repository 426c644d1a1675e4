"""mode="lora": low-rank adapters through peft on the trainable blocks, merged after the fit."""

import copy

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

import skft
from skft import FineTunedClassifier
from skft._nn.lora import adapted_layer_names, add_adapters, lora_settings, unmerge_adapters
from skft.backbones import resolve_backbone

from conftest import TINY, make_images


def lora_classifier(**params):
    defaults = dict(
        mode="lora", trainable_layers=None, lora_rank=2, max_epochs=2, lr=1e-2, device="cpu", random_state=0
    )
    return FineTunedClassifier(TINY, **{**defaults, **params})


@pytest.fixture(scope="module")
def fitted():
    X, y = make_images(40, n_classes=2)
    return lora_classifier().fit(X, y), X


def _trainable_names(module):
    return {name for name, p in module.named_parameters() if p.requires_grad}


def test_only_adapters_and_head_train(fitted):
    clf, _ = fitted
    network = clf.net_.module_
    trainable = _trainable_names(network)
    assert trainable and all(".lora_" in name or name.startswith("head.") for name in trainable)
    assert any(".lora_" in name for name in trainable)
    optimized = {id(p) for group in clf.net_.optimizer_.param_groups for p in group["params"]}
    assert optimized == {id(p) for name, p in network.named_parameters() if name in trainable}


def test_pretrained_tensors_untouched(fitted):
    clf, _ = fitted
    skft.clear_cache()
    pretrained = dict(resolve_backbone(TINY, "DEFAULT").parts.blocks)
    network = clf.net_.module_
    unmerge_adapters(network)
    try:
        for name, block in network.backbone.named_children():
            state = {k.replace("base_layer.", ""): v for k, v in block.state_dict().items() if ".lora_" not in k}
            for key, value in pretrained[name].state_dict().items():
                torch.testing.assert_close(state[key], value, atol=1e-6, rtol=1e-6)
    finally:
        skft._nn.lora.merge_adapters(network)
    assert all(value > 0 for value in clf.drift_.values())


def test_merged_prediction_equals_adapter_prediction(fitted):
    clf, X = fitted
    network = clf.net_.module_
    # Prediction runs merged weights: no adapter in the forward.
    assert all(layer.merged for layer in skft._nn.lora.adapter_layers(network))
    merged = clf._network_outputs(X)
    unmerge_adapters(network)
    try:
        assert all(not layer.merged for layer in skft._nn.lora.adapter_layers(network))
        adapted = clf._network_outputs(X)
    finally:
        skft._nn.lora.merge_adapters(network)
    np.testing.assert_allclose(merged, adapted, atol=1e-4, rtol=1e-4)


def test_blocks_before_trainable_layers_are_frozen_and_cached():
    X, y = make_images(40, n_classes=2)
    skft.clear_cache()
    lora_classifier(trainable_layers=1).fit(X, y)
    clf = lora_classifier(trainable_layers=1).fit(X, y)
    assert skft.cache_info().misses == 40 and skft.cache_info().hits == 40  # the second fit is served the prefix
    network = clf.net_.module_
    assert clf.n_frozen_blocks_ == len(network.backbone) - 1
    assert not any(".lora_" in name for name, _ in network.backbone[0].named_parameters())
    assert clf.drift_[clf.block_names_[0]] == 0.0


def test_schedules_and_warmup_keep_the_pretrained_weights_frozen():
    X, y = make_images(40, n_classes=2)
    clf = lora_classifier(warmup_epochs=1, lr_decay=0.5, lr_schedule="cosine", max_epochs=2).fit(X, y)
    trainable = _trainable_names(clf.net_.module_)
    assert all(".lora_" in name or name.startswith("head.") for name in trainable)
    assert len(clf.history_) == 2


def test_grid_search_over_rank():
    X, y = make_images(40, n_classes=2)
    search = GridSearchCV(lora_classifier(max_epochs=1), {"lora_rank": [1, 4]}, cv=2).fit(X, y)
    rank = search.best_params_["lora_rank"]
    assert search.best_estimator_.lora_alpha_ == 2.0 * rank
    # The rank chosen reaches the network: its adapters' down-projections have that many rows.
    network = search.best_estimator_.net_.module_
    down = [p for name, p in network.named_parameters() if ".lora_A." in name]
    assert down and {p.shape[0] for p in down} == {rank}


@pytest.mark.parametrize(
    "params, match",
    [
        ({"lora_rank": 0}, "lora_rank"),
        ({"lora_dropout": -0.1}, "lora_dropout"),
        ({"lora_alpha": 0}, "lora_alpha"),
        ({"l2sp_alpha": 0.1}, "l2sp_alpha=0.1 does not apply to mode='lora'"),
        ({"bn_trainable": True}, "bn_trainable=True does not apply to mode='lora'"),
        ({"mode": "repurpose", "trainable_layers": None}, "trainable_layers=None means every block only"),
    ],
)
def test_bad_values_are_refused(params, match):
    X, y = make_images(8, n_classes=2)
    with pytest.raises(ValueError, match=match):
        lora_classifier(**params).fit(X, y)


def test_save_load_round_trip_cold_cache(fitted, tmp_path):
    clf, X = fitted
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "lora.skft")
    skft.clear_cache()
    loaded = skft.load(tmp_path / "lora.skft")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    assert loaded.lora_alpha_ == clf.lora_alpha_
    assert loaded.n_trainable_params_ == clf.n_trainable_params_ > 0


def test_lite0_pointwise_convs_become_plain_and_compute_the_same():
    resolved = resolve_backbone("efficientnet_lite0", "DEFAULT", image_size=32)
    block = dict(resolved.parts.blocks)["stage2"]
    x = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        expected = block.eval()(x)
        copy_ = copy.deepcopy(block)
        add_adapters(copy_, lora_settings(4, None, 0.0))
        got = copy_.eval()(x)
    # Conv2dDynamicSamePadding itself is never targeted: peft's copy of it breaks.
    assert adapted_layer_names(block) == []
    kinds = {type(m.base_layer).__name__ for m in skft._nn.lora.adapter_layers(copy_)}
    assert kinds == {"Conv2d"}
    assert all(m.base_layer.groups == 1 for m in skft._nn.lora.adapter_layers(copy_))
    assert len(skft._nn.lora.adapter_layers(copy_)) == 4  # expand and project convs of both MBConv blocks
    torch.testing.assert_close(got, expected)


def test_lite0_fits_with_lora():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1] * 4)
    clf = FineTunedClassifier(
        mode="lora", trainable_layers=2, image_size=32, max_epochs=1, device="cpu", random_state=0
    ).fit(X, y)
    assert clf.predict(X).shape == (8,)
    assert clf.drift_["head_conv"] > 0


def test_bert_like_encoder_gets_adapters_on_its_linear_layers(tmp_path):
    from text_fixtures import make_texts, save_tiny_model

    X, y = make_texts(16)
    backbone = save_tiny_model("bert", tmp_path / "bert")
    clf = FineTunedClassifier(
        backbone,
        mode="lora",
        trainable_layers=None,
        lora_rank=2,
        max_epochs=1,
        batch_size=8,
        device="cpu",
        random_state=0,
    ).fit(X, y)
    network = clf.net_.module_
    adapted = {type(layer.base_layer).__name__ for layer in skft._nn.lora.adapter_layers(network)}
    assert adapted == {"Linear"}
    # The embedding block has no Linear layer: nothing of it trains.
    assert not any(p.requires_grad for p in network.backbone.embeddings.parameters())
    assert clf.drift_["embeddings"] == 0.0 and clf.drift_["layer_1"] > 0
    merged = clf._network_outputs(X)
    unmerge_adapters(network)
    np.testing.assert_allclose(clf._network_outputs(X), merged, atol=1e-4, rtol=1e-4)


def test_lora_file_stores_adapters_and_head_only(fitted, tmp_path):
    clf, X = fitted
    from safetensors import safe_open

    expected = clf.predict_proba(X)
    clf.save(tmp_path / "small.skft")
    clf.save(tmp_path / "full.skft", full=True)
    with safe_open(tmp_path / "small.skft", "pt") as handle:
        names = set(handle.keys())
    assert names and all(".lora_" in name or name.startswith("head.") for name in names)
    skft.clear_cache()
    loaded = skft.load(tmp_path / "full.skft")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
