"""WiSE-FT (``wise_alpha``): the fitted weights interpolated with the zero-shot model they started from."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

import skft
from skft import FineTunedClassifier

PROMPTS = {0: "bad", 1: "good"}
MODES = ["repurpose", pytest.param("lora", marks=pytest.mark.skipif(not skft._nn.lora.peft_available(), reason="peft"))]


def classifier(backbone, **overrides):
    params = dict(label_prompts=PROMPTS, max_epochs=2, batch_size=8, lr=1e-2, device="cpu", random_state=0)
    params.update(mode="repurpose", trainable_layers=1, head_init="prompt")
    return FineTunedClassifier(backbone, **{**params, **overrides})


def _state(clf):
    return {name: tensor.clone() for name, tensor in clf.net_.module_.state_dict().items()}


@pytest.mark.parametrize("mode", MODES)
def test_alpha_zero_is_the_zero_shot_classifier(bert_dir, texts, mode):
    X, y = texts
    prompt = classifier(bert_dir, mode="prompt").fit(X, y)
    skft.clear_cache()
    wise = classifier(bert_dir, mode=mode, wise_alpha=0.0).fit(X, y)
    np.testing.assert_array_equal(wise.predict(X), prompt.predict(X))
    np.testing.assert_allclose(wise.predict_proba(X), prompt.predict_proba(X), atol=1e-5)
    assert set(wise.drift_.values()) == {0.0}


@pytest.mark.parametrize("mode", MODES)
def test_alpha_interpolates_every_trained_tensor_and_drift_scales_with_it(bert_dir, texts, mode):
    X, y = texts
    fits = {alpha: classifier(bert_dir, mode=mode, wise_alpha=alpha).fit(X, y) for alpha in (0.0, 0.5, 1.0)}
    plain = classifier(bert_dir, mode=mode).fit(X, y)
    states = {alpha: _state(clf) for alpha, clf in fits.items()}
    assert all(torch.equal(states[1.0][name], tensor) for name, tensor in _state(plain).items())
    trained = [name for name in states[0.0] if not torch.equal(states[0.0][name], states[1.0][name])]
    assert any(name.startswith("head.") for name in trained) and any(name.startswith("backbone.") for name in trained)
    for name in trained:
        midpoint = (states[0.0][name] + states[1.0][name]) / 2
        torch.testing.assert_close(states[0.5][name], midpoint, atol=1e-6, rtol=1e-5)
    moved = [name for name, drift in plain.drift_.items() if drift > 0]
    assert moved
    for name in moved:
        assert fits[0.5].drift_[name] == pytest.approx(plain.drift_[name] / 2, rel=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_interpolated_weights_are_what_a_changes_only_file_stores(bert_dir, texts, tmp_path, mode):
    X, y = texts
    clf = classifier(bert_dir, mode=mode, wise_alpha=0.5).fit(X, y)
    clf.save(tmp_path / "model.skft")
    skft.clear_cache()
    np.testing.assert_allclose(skft.load(tmp_path / "model.skft").predict_proba(X), clf.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(wise_alpha=1.5), "wise_alpha"),
        (dict(wise_alpha="half"), "wise_alpha"),
        (dict(wise_alpha=0.5, head_init="random"), "wise_alpha=0.5.*head starts at random.*head_init='prompt'"),
        (dict(wise_alpha=0.5, mode="prompt"), "wise_alpha=0.5.*mode='prompt'"),
    ],
)
def test_bad_wise_alpha_is_refused_naming_it(bert_dir, texts, params, match):
    X, y = texts
    with pytest.raises(ValueError, match=match):
        classifier(bert_dir, **params).fit(X, y)
