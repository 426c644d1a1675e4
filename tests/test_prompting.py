"""mode="prompt": zero-shot classification by class prompts, and prompt tuning, the encoder unchanged."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, cross_val_score
from skorch.callbacks import Callback

pytest.importorskip("transformers")

import skft
from skft import FineTunedClassifier, FineTunedRegressor
from skft.backbones._text import text_backbone_spec

from conftest import TINY, make_images


def prompt_classifier(backbone, **overrides):
    params = dict(
        mode="prompt",
        label_prompts={0: "bad", 1: "good"},
        max_epochs=2,
        batch_size=8,
        lr=1e-1,
        device="cpu",
        random_state=0,
    )
    return FineTunedClassifier(backbone, **{**params, **overrides})


def assert_backbone_unchanged(network, bert_dir):
    spec = text_backbone_spec(bert_dir)
    pretrained = dict(spec.split(spec.build("DEFAULT")).blocks)
    for name, block in network.backbone.named_children():
        if name == "prompt":
            continue
        for key, value in pretrained[name].state_dict().items():
            assert torch.equal(block.state_dict()[key], value), f"{name}.{key}"


def test_zero_shot_trains_nothing_and_picks_the_most_similar_prompt(bert_dir, texts):
    X, y = texts
    # Each class's prompt is one of the texts: that text is most similar (cosine 1) to its own class.
    prompts = {0: X[0], 1: X[1]}
    clf = prompt_classifier(bert_dir, label_prompts=prompts).fit(X, y)
    assert len(clf.history_) == 0
    assert not any(p.requires_grad for p in clf.net_.module_.parameters())
    assert clf.predict([X[0], X[1]]).tolist() == [0, 1]
    assert_backbone_unchanged(clf.net_.module_, bert_dir)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0, rtol=1e-6)


class GradientNorms(Callback):
    """Records the gradient norm of every parameter that has one, per training step."""

    def initialize(self):
        self.norms_ = []
        return self

    def on_grad_computed(self, net, named_parameters, **kwargs):
        self.norms_.append({name: float(p.grad.norm()) for name, p in named_parameters if p.grad is not None})


def test_prompt_tuning_trains_only_the_prompt_vectors(bert_dir, texts):
    X, y = texts
    clf = prompt_classifier(bert_dir, prompt_tokens=3, callbacks=[("gradients", GradientNorms())]).fit(X, y)
    network = clf.net_.module_
    assert {name for name, p in network.named_parameters() if p.requires_grad} == {"backbone.prompt.tokens"}
    assert clf.block_names_ == ["embeddings", "prompt", "layer_0", "layer_1"]
    assert clf.n_frozen_blocks_ == 1 and clf.prefix_key_ is not None
    # The prompt vectors received a gradient at every step (not only weight decay moved them), and the loss fell.
    norms = dict(clf.net_.callbacks_)["gradients"].norms_
    assert norms and all(set(step) == {"backbone.prompt.tokens"} for step in norms)
    assert all(step["backbone.prompt.tokens"] > 0 for step in norms)
    losses = clf.history_[:, "train_loss"]
    assert losses[-1] < losses[0]
    assert clf.drift_["layer_1"] == 0.0
    assert_backbone_unchanged(network, bert_dir)


def test_grid_search_over_prompt_template(bert_dir, texts):
    X, y = texts
    templates = ["{label}", "a {label} movie"]
    search = GridSearchCV(prompt_classifier(bert_dir), {"prompt_template": templates}, cv=2, scoring="neg_log_loss")
    scores = search.fit(X, y).cv_results_["mean_test_score"]
    # Each template reaches the fit: its score is that of a classifier built with it, and the two differ.
    for template, score in zip(templates, scores):
        expected = cross_val_score(
            prompt_classifier(bert_dir, prompt_template=template), X, y, cv=2, scoring="neg_log_loss"
        )
        assert score == pytest.approx(expected.mean())
    assert scores[0] != pytest.approx(scores[1])
    assert search.best_estimator_.prompt_template == templates[int(np.argmax(scores))]


@pytest.mark.parametrize("prompt_tokens", [0, 2])
def test_save_load_round_trip_cold_cache(bert_dir, texts, tmp_path, prompt_tokens):
    X, y = texts
    clf = prompt_classifier(bert_dir, prompt_tokens=prompt_tokens).fit(X, y)
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "prompt.skft")
    skft.clear_cache()
    loaded = skft.load(tmp_path / "prompt.skft")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"prompt_template": "a movie"}, "prompt_template='a movie' has no '{label}'"),
        ({"prompt_template": "{label} {other}"}, "cannot be filled in"),
        ({"prompt_tokens": -1}, "prompt_tokens"),
    ],
)
def test_bad_prompt_values_are_refused(bert_dir, texts, params, match):
    X, y = texts
    with pytest.raises(ValueError, match=match):
        prompt_classifier(bert_dir, **params).fit(X, y)


def test_image_backbone_is_pointed_to_feature_extraction():
    X, y = make_images(8, n_classes=2)
    with pytest.raises(ValueError, match="use mode='feature_extraction'"):
        FineTunedClassifier(TINY, mode="prompt", device="cpu").fit(X, y)


def test_regressor_is_refused(bert_dir, texts):
    X, y = texts
    with pytest.raises(ValueError, match="FineTunedRegressor predicts numbers. Use FineTunedClassifier"):
        FineTunedRegressor(bert_dir, mode="prompt", device="cpu").fit(X, y.astype(float))


def test_prompt_tuning_keeps_the_frozen_encoders_dropout_off(bert_dir, texts):
    """Frozen means frozen: only the prompt vectors train, so the encoder's dropout stays in eval mode."""
    clf = prompt_classifier(str(bert_dir), prompt_tokens=2, max_epochs=1).fit(*texts)
    network = clf.net_.module_.train()
    dropouts = [m for m in network.backbone.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and not any(m.training for m in dropouts)


@pytest.mark.parametrize("prompt_tokens", [0, 2])
def test_warm_start_embeds_the_current_class_prompts(bert_dir, texts, prompt_tokens):
    X, y = texts
    current = {"label_prompts": {0: X[0], 1: X[1]}, "prompt_template": "{label} !"}
    clf = prompt_classifier(bert_dir, prompt_tokens=prompt_tokens, max_epochs=1).fit(X, y)
    clf.set_params(warm_start=True, **current).fit(X, y)
    skft.clear_cache()
    fresh = prompt_classifier(bert_dir, prompt_tokens=prompt_tokens, max_epochs=1, **current).fit(X, y)
    np.testing.assert_allclose(
        clf.net_.module_.head.class_embeddings, fresh.net_.module_.head.class_embeddings, atol=1e-6
    )


def test_classes_whose_prompts_tokenise_alike_are_refused_naming_them_and_label_prompts(bert_dir, texts):
    X, y = texts
    labels = np.array(["\N{GRINNING FACE}", "\N{CRYING FACE}"])[y]  # both become [UNK]
    with pytest.raises(ValueError, match="(?s)class '\N{GRINNING FACE}'.*class '\N{CRYING FACE}'.*label_prompts="):
        prompt_classifier(bert_dir, label_prompts=None).fit(X, labels)
    clf = prompt_classifier(bert_dir, label_prompts={"\N{GRINNING FACE}": "good", "\N{CRYING FACE}": "bad"})
    assert set(clf.fit(X, labels).predict(X)) <= set(labels)
