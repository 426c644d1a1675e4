"""Text through the same estimators: modes, the cache per text, persistence, bad input, model selection."""

import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

import skft
import skft.datasets
from skft import BackboneFeatures, FineTunedClassifier, FineTunedRegressor
from skft._base import FineTunedEstimatorBase
from skft._cache import frozen_text_activations
from skft._text import tokenized_texts
from skft.backbones._text import MINILM, text_backbone_spec

from conftest import TINY, TINY_SIZE, make_images
from text_fixtures import make_texts


def params(backbone, **overrides):
    return {**dict(backbone=backbone, max_epochs=2, batch_size=8, lr=1e-2, random_state=0, device="cpu"), **overrides}


def pretrained_blocks(bert_dir):
    spec = text_backbone_spec(bert_dir)
    return dict(spec.split(spec.build("DEFAULT")).blocks)


@pytest.mark.parametrize(
    "mode, trainable",
    [("full", ["embeddings", "layer_0", "layer_1"]), ("repurpose", ["layer_1"]), ("feature_extraction", [])],
)
def test_modes_train_what_they_say_and_leave_frozen_layers_untouched(bert_dir, texts, mode, trainable):
    X, y = texts
    clf = FineTunedClassifier(**params(bert_dir, mode=mode, trainable_layers=1)).fit(X, y)
    network = clf.net_.module_
    pretrained = pretrained_blocks(bert_dir)
    assert network.modality == "text" and clf.block_names_ == ["embeddings", "layer_0", "layer_1"]
    for name, block in network.backbone.named_children():
        grads = {param.requires_grad for param in block.parameters()}
        assert grads == {name in trainable}, name
        same = all(
            torch.equal(a, b) for a, b in zip(block.state_dict().values(), pretrained[name].state_dict().values())
        )
        assert same == (name not in trainable), name
        if name not in trainable:
            assert not any(module.training for module in block.modules())  # dropout off in frozen layers
    assert all(param.requires_grad for param in network.head.parameters())
    assert all((clf.drift_[name] > 0) == (name in trainable) for name in clf.block_names_)


def test_the_cache_gives_the_same_loss_history_as_running_every_layer(bert_dir, texts, monkeypatch):
    X, y = texts
    skft.clear_cache()
    FineTunedClassifier(**params(bert_dir, max_epochs=3)).fit(X, y)  # computes the activations
    cached = FineTunedClassifier(**params(bert_dir, max_epochs=3)).fit(X, y)  # is served them
    assert skft.cache_info().misses == len(set(X)) and skft.cache_info().hits == len(X)
    monkeypatch.setattr(FineTunedEstimatorBase, "_prefix_key", lambda self, network: None)
    uncached = FineTunedClassifier(**params(bert_dir, max_epochs=3)).fit(X, y)
    np.testing.assert_allclose(cached.history_[:, "train_loss"], uncached.history_[:, "train_loss"], rtol=1e-5)
    np.testing.assert_allclose(cached.predict_proba(X), uncached.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("mode", ["repurpose", "feature_extraction"])
def test_a_cold_disk_cache_gives_the_same_fit(bert_dir, texts, tmp_path, mode):
    X, y = texts
    skft.clear_cache()
    fresh = FineTunedClassifier(**params(bert_dir, mode=mode, cache_dir=tmp_path)).fit(X, y)
    skft.clear_cache()
    from_disk = FineTunedClassifier(**params(bert_dir, mode=mode, cache_dir=tmp_path)).fit(X, y)
    assert skft.cache_info().disk_hits == len(set(X)) and skft.cache_info().misses == 0
    np.testing.assert_array_equal(fresh.history_[:, "train_loss"], from_disk.history_[:, "train_loss"])


def test_the_cache_stores_each_text_at_its_own_length(bert_dir, texts):
    X, _ = texts
    clf = FineTunedClassifier(**params(bert_dir, max_epochs=1)).fit(*texts)
    network = clf.net_.module_
    tokens = tokenized_texts(X, network.normalizer)
    skft.clear_cache()
    stored = frozen_text_activations(network, tokens, key=clf._prefix_key(network), device="cpu", batch_size=5)
    lengths = sorted({len(ids) for ids in tokens.ids})
    assert len(lengths) > 2
    assert [tuple(tensor.shape) for tensor in stored] == [(len(ids), 32) for ids in tokens.ids]
    with torch.no_grad():  # each text alone (no padding) gives what was stored from padded batches
        for ids, tensor in list(zip(tokens.ids, stored))[:4]:
            state = network.frozen_prefix((torch.as_tensor(ids)[None], torch.ones(1, len(ids), dtype=torch.long)))
            torch.testing.assert_close(state.hidden[0], tensor, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["full", "repurpose", "feature_extraction"])
def test_save_and_load_round_trip_with_a_cold_cache(bert_dir, texts, tmp_path, mode):
    X, y = texts
    clf = FineTunedClassifier(**params(bert_dir, mode=mode, max_length=6)).fit(X, y)
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "model.skft")
    skft.clear_cache()
    loaded = skft.load(tmp_path / "model.skft")
    assert loaded.max_length_ == 6 and loaded.image_size_ is None
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)


def test_load_refuses_another_tokenizer(bert_dir, texts, tmp_path):
    model_dir = shutil.copytree(bert_dir, tmp_path / "model")
    clf = FineTunedClassifier(**params(str(model_dir), max_epochs=1)).fit(*texts)
    clf.save(tmp_path / "model.skft")
    with open(model_dir / "tokenizer_config.json", "a") as file:
        file.write("\n")
    with pytest.raises(ValueError, match="another tokenizer"):
        skft.load(tmp_path / "model.skft")


def test_regressor_on_text(bert_dir, texts):
    X, y = texts
    reg = FineTunedRegressor(**params(bert_dir, mode="full", max_epochs=3)).fit(X, y * 3.0 + 1)
    assert reg.predict(X).shape == (len(X),) and reg.score(X, y * 3.0 + 1) > 0


def test_grid_search_and_cross_val_score_over_a_text_classifier(bert_dir, texts):
    X, y = texts
    clf = FineTunedClassifier(**params(bert_dir, max_epochs=1))
    search = GridSearchCV(clf, {"lr": [1e-3, 1e-2], "batch_size": [4, 8]}, cv=2).fit(np.array(X), y)
    assert search.best_estimator_.net_.module_.modality == "text"
    import pandas as pd

    assert cross_val_score(clf, pd.Series(X), y, cv=3).shape == (3,)


def test_every_technique_parameter_works_on_text(bert_dir, texts):
    X, y = texts
    clf = FineTunedClassifier(
        **params(
            bert_dir,
            mode="repurpose",
            trainable_layers=2,
            lr_decay=0.5,
            warmup_epochs=1,
            l2sp_alpha=0.1,
            lr_schedule="cosine",
            early_stopping=True,
            class_weight="balanced",
            max_epochs=3,
        )
    )
    clf.fit(X, y, sample_weight=np.linspace(0.5, 1.5, len(X)))
    clf.set_params(warm_start=True, max_epochs=1).fit(X, y)
    assert len(clf.history_) == 4 and set(clf.drift_) == {"embeddings", "layer_0", "layer_1"}


def test_backbone_features_on_text_feed_a_pipeline_and_pick_a_layer(bert_dir, texts):
    X, y = texts
    transformers = pytest.importorskip("transformers")
    features = BackboneFeatures(backbone=bert_dir, feature_layer=1, device="cpu", batch_size=5).fit(X)
    middle = features.transform(X[:6])
    model = transformers.AutoModel.from_pretrained(bert_dir).eval()
    tokens = tokenized_texts(X[:6], features.network_.normalizer)
    for ids, vector in zip(tokens.ids, middle):
        with torch.no_grad():
            hidden = model(input_ids=torch.as_tensor(ids)[None], output_hidden_states=True).hidden_states[1]
        np.testing.assert_allclose(hidden[0].mean(0).numpy(), vector, atol=1e-5)
    pipeline = make_pipeline(BackboneFeatures(backbone=bert_dir, device="cpu"), LogisticRegression())
    assert cross_val_score(pipeline, X, y, cv=2).shape == (2,)


@pytest.mark.parametrize(
    "backbone_kind, X, overrides, error, message",
    [
        ("image", ["a fine film", "dull"], {}, TypeError, "choose a text backbone"),
        ("text", make_images(4)[0], {}, ValueError, "images or numbers"),
        ("text", ["ok", None, "bad", "good"], {}, ValueError, r"X\[1\] is missing"),
        ("text", [b"ok", "a", "b", "c"], {}, TypeError, "bytes"),
        ("text", np.array([["a", "b"]] * 4), {}, ValueError, "2-D array of str"),
        ("text", ["a", "b", "c", "d"], {"image_size": 32}, ValueError, "image_size=32 applies to image backbones"),
        ("text", ["a", "b", "c", "d"], {"augment": True}, ValueError, "augment=True applies to image backbones"),
        ("text", ["a", "b", "c", "d"], {"max_length": 10_000}, ValueError, "max_length=10000 does not fit"),
        ("image", make_images(4)[0], {"max_length": 8}, ValueError, "max_length=8 applies to text backbones"),
    ],
)
def test_bad_input_gets_a_clear_error(bert_dir, backbone_kind, X, overrides, error, message):
    if backbone_kind == "text":
        estimator = FineTunedClassifier(**params(bert_dir, max_epochs=1, **overrides))
    else:
        estimator = FineTunedClassifier(**params(TINY, image_size=TINY_SIZE, max_epochs=1, **overrides))
    with pytest.raises(error, match=message):
        estimator.fit(X, [0, 1, 0, 1][: len(X)])


def test_long_texts_are_truncated_with_one_warning(bert_dir, texts):
    X, y = texts
    clf = FineTunedClassifier(**params(bert_dir, max_length=4, max_epochs=1))
    with pytest.warns(skft._text.TextTruncationWarning):
        clf.fit(X, y)
    assert max(len(ids) for ids in tokenized_texts(X, clf.net_.module_.normalizer).ids) == 4


def test_registry_lists_and_describes_the_text_backbone(capsys):
    assert MINILM in skft.list_backbones()
    summary = skft.describe_backbone(MINILM)
    text = capsys.readouterr().out
    assert "at most 256 tokens" in text and "masked_mean_normalized" in text and "input size" not in text
    assert [name for name, _ in summary.blocks] == ["embeddings"] + [f"layer_{index}" for index in range(6)]


@pytest.mark.slow
def test_minilm_backbone_features_equal_sentence_transformers_encode():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = ["A gripping, beautifully shot film.", "Dull.", "", "The plot never comes together. " * 5]
    ours = BackboneFeatures(backbone=MINILM, device="cpu", batch_size=3).fit(texts).transform(texts)
    model_dir = text_backbone_spec(MINILM).model_dir
    theirs = sentence_transformers.SentenceTransformer(model_dir, device="cpu").encode(texts)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_the_users_view_on_minilm():
    X, y = _reviews()
    X, y = list(X[:12]) + list(X[-12:]), list(y[:12]) + list(y[-12:])
    clf = FineTunedClassifier(
        backbone=MINILM, mode="repurpose", trainable_layers=2, max_epochs=1, batch_size=8, random_state=0, device="cpu"
    )
    clf.fit(X, y)
    search = GridSearchCV(clf, {"lr": [1e-4, 3e-4]}, cv=2).fit(X, y)
    assert search.best_estimator_.lr_ == search.best_params_["lr"]
    assert cross_val_score(clf, X, y, cv=2).shape == (2,)
    pipeline = make_pipeline(BackboneFeatures(backbone=MINILM, device="cpu"), LogisticRegression())
    assert cross_val_score(pipeline, X, y, cv=2).shape == (2,)


def _reviews():
    """Real reviews sorted by label (both ends hold both classes) when on disk, else the tiny set."""
    try:
        X, y = skft.datasets.load_movie_reviews(download=False)
    except (FileNotFoundError, ImportError):
        return make_texts(24)
    order = np.argsort(y, kind="stable")
    return X[order], y[order]
