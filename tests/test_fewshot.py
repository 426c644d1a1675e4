"""Small data (issue 23): calibrated zero-shot prompts, and fine-tuning that starts from them."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback

pytest.importorskip("transformers")

import skft
from skft import FineTunedClassifier
from skft._base import FineTunedEstimatorBase
from skft._defaults import PROMPT_START, PromptStartDefaults, prompt_start_defaults, resolve_max_epochs
from skft._nn.pairs import sample_pairs

PROMPTS = {0: "bad", 1: "good"}


def classifier(backbone, **overrides):
    params = dict(label_prompts=PROMPTS, max_epochs=2, batch_size=8, device="cpu", random_state=0)
    return FineTunedClassifier(backbone, **{**params, **overrides})


def imbalanced(texts):
    X, y = texts
    keep = np.flatnonzero((y == 1) | (np.arange(len(y)) % 4 == 0))
    return [X[i] for i in keep], y[keep]


def test_calibration_changes_only_the_bias_and_the_temperature(bert_dir, texts):
    X, y = imbalanced(texts)
    plain = classifier(bert_dir, mode="prompt", prompt_calibration=False).fit(X, y)
    skft.clear_cache()
    calibrated = classifier(bert_dir, mode="prompt").fit(X, y)
    before, after = plain.net_.module_.state_dict(), calibrated.net_.module_.state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed == {"head.scale", "head.bias"}
    assert float(after["head.scale"]) != 20.0 and float(after["head.bias"].abs().max()) > 0
    # The calibrated logits are the plain similarities rescaled and shifted per class, nothing else.
    plain_logits = np.log(plain.predict_proba(X)) - np.log(plain.predict_proba(X))[:, :1]
    calibrated_logits = np.log(calibrated.predict_proba(X)) - np.log(calibrated.predict_proba(X))[:, :1]
    scale, bias = float(after["head.scale"]), after["head.bias"].numpy().astype(float)
    expected = plain_logits * scale / 20.0 + (bias - bias[0])
    np.testing.assert_allclose(calibrated_logits, expected, atol=1e-4)


def test_calibration_moves_predictions_towards_the_training_balance(bert_dir, texts):
    X, y = imbalanced(texts)
    plain = classifier(bert_dir, mode="prompt", prompt_calibration=False).fit(X, y)
    calibrated = classifier(bert_dir, mode="prompt").fit(X, y)
    assert calibrated.score(X, y) >= plain.score(X, y)
    assert calibrated.head_init_ == "zero-shot"


class LogitsAtStart(Callback):
    """Records the network's logits on the training inputs before the first step."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.logits = net.forward(X, training=False).numpy()


@pytest.mark.parametrize("mode", ["feature_extraction", "repurpose"])
def test_head_from_prompts_predicts_what_calibrated_prompt_predicts_before_any_step(bert_dir, texts, mode):
    X, y = imbalanced(texts)
    prompt = classifier(bert_dir, mode="prompt").fit(X, y)
    expected = prompt.net_.forward(prompt._network_inputs(prompt.net_.module_, X, "cpu", None), training=False)
    skft.clear_cache()
    tuned = classifier(bert_dir, mode=mode, head_init="prompt", callbacks=[("at_start", LogitsAtStart())]).fit(X, y)
    assert tuned.head_init_ == "prompt"
    at_start = dict(tuned.net_.callbacks_)["at_start"]
    np.testing.assert_allclose(at_start.logits, expected.numpy(), rtol=1e-4, atol=1e-4)
    assert (at_start.logits.argmax(1) == expected.numpy().argmax(1)).all()


def test_head_init_auto_resolves_by_backbone(bert_dir, texts):
    X, y = texts
    assert classifier(bert_dir, mode="feature_extraction").fit(X, y).head_init_ == "prompt"
    assert classifier(bert_dir, mode="feature_extraction", head=(4,)).fit(X, y).head_init_ == "random"
    assert classifier(bert_dir, mode="feature_extraction", head_init="random").fit(X, y).head_init_ == "random"


def test_head_init_auto_starts_from_the_prompts_only_where_they_describe_the_classes_in_words(bert_dir, texts):
    X, y = texts
    words = np.array(["bad", "good"])[y]
    assert classifier(bert_dir, mode="feature_extraction", label_prompts=None).fit(X, words).head_init_ == "prompt"
    # A label such as 0 says nothing a prompt could use; prompts that tokenise alike ([UNK]) tell no class apart.
    assert classifier(bert_dir, mode="feature_extraction", label_prompts=None).fit(X, y).head_init_ == "random"
    unknown = np.array(["\U0001f600", "\U0001f641"])[y]
    assert classifier(bert_dir, mode="feature_extraction", label_prompts=None).fit(X, unknown).head_init_ == "random"
    with pytest.raises(ValueError, match="label_prompts"):
        classifier(bert_dir, mode="feature_extraction", label_prompts=None, head_init="prompt").fit(X, unknown)


def test_head_init_prompt_refuses_a_hidden_head(bert_dir, texts):
    X, y = texts
    with pytest.raises(ValueError, match="head_init='prompt'.*head=\\(4,\\)"):
        classifier(bert_dir, mode="feature_extraction", head=(4,), head_init="prompt").fit(X, y)


def test_head_from_prompts_round_trips_through_a_model_file(bert_dir, texts, tmp_path):
    X, y = texts
    clf = classifier(bert_dir, mode="feature_extraction", head_init="prompt").fit(X, y)
    clf.save(tmp_path / "model.skft")
    skft.clear_cache()
    loaded = skft.load(tmp_path / "model.skft")
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize(
    ("n_train", "batch_size", "expected"),
    [(16, 32, 100), (32, 32, 100), (128, 32, 25), (512, 32, 10), (5000, 32, 10), (0, 32, 10), (16, 8, 50)],
)
def test_auto_fit_length_gives_small_data_enough_steps(n_train, batch_size, expected):
    assert resolve_max_epochs("auto", n_train, batch_size) == expected
    assert resolve_max_epochs(7, n_train, batch_size) == 7


def test_auto_fit_length_is_reported_and_a_fit_that_barely_moved_warns(bert_dir, texts):
    X, y = texts
    clf = classifier(bert_dir, mode="feature_extraction", max_epochs="auto", head_init="random", lr=0.1).fit(X, y)
    assert clf.max_epochs_ == 25 and clf.n_steps_ == 100 and len(clf.history_) == 25
    with pytest.warns(ConvergenceWarning, match="barely moved.*max_epochs=2"):
        classifier(bert_dir, mode="feature_extraction", head_init="random", lr=1e-9).fit(X, y)
    # A head that starts as the calibrated zero-shot classifier may stay near it: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        classifier(bert_dir, mode="feature_extraction", head_init="prompt", lr=1e-9).fit(X, y)


def test_pairs_are_balanced_and_never_pair_an_example_with_itself_when_its_class_has_two():
    codes = torch.tensor([0, 0, 0, 1, 1, 2])
    first, second, same = sample_pairs(codes, 200, torch.Generator().manual_seed(0))
    assert same.sum() == 100
    assert (codes[first][same] == codes[second][same]).all()
    # Class 2 has one example: it pairs with itself; every other same-class pair has two different examples.
    assert ((first[same] != second[same]) | (codes[first][same] == 2)).all()
    assert (codes[first][~same] != codes[second][~same]).all()


def test_pair_fits_with_and_without_the_cache_are_equal(bert_dir, texts, monkeypatch):
    X, y = texts
    params = dict(mode="repurpose", trainable_layers=1, pair_steps=3, max_epochs=1, head_init="random")
    skft.clear_cache()
    cached = classifier(bert_dir, **params).fit(X, y)
    assert cached.prefix_key_ is not None
    skft.clear_cache()
    with monkeypatch.context() as patch:
        patch.setattr(FineTunedEstimatorBase, "_prefix_key", lambda self, network: None)
        uncached = classifier(bert_dir, **params).fit(X, y)
    assert uncached.prefix_key_ is None
    np.testing.assert_allclose(cached.predict_proba(X), uncached.predict_proba(X), atol=1e-5)
    without_pairs = classifier(bert_dir, **{**params, "pair_steps": 0}).fit(X, y)
    assert not np.allclose(without_pairs.predict_proba(X), cached.predict_proba(X), atol=1e-5)


def test_pair_steps_need_trainable_blocks(bert_dir, texts):
    X, y = texts
    with pytest.raises(ValueError, match="pair_steps=2.*mode='feature_extraction'"):
        classifier(bert_dir, mode="feature_extraction", pair_steps=2).fit(X, y)


@pytest.mark.parametrize(("examples_per_class", "expected"), [(8, (5e-5, 6)), (256, (5e-5, 6)), (257, None)])
def test_small_data_defaults_for_a_head_started_from_the_prompts_resolve_as_documented(examples_per_class, expected):
    defaults = prompt_start_defaults("all-MiniLM-L6-v2", examples_per_class)
    assert (defaults and (defaults.lr["repurpose"], defaults.trainable_layers)) == expected
    assert defaults is None or "full" not in defaults.lr  # full keeps its own rate
    assert prompt_start_defaults("some other backbone", examples_per_class) is None


def test_small_data_defaults_are_what_a_fit_reports(bert_dir, texts, monkeypatch):
    X, y = texts
    monkeypatch.setitem(PROMPT_START, str(bert_dir), PromptStartDefaults(lr={"repurpose": 0.123}, trainable_layers=99))
    started = classifier(bert_dir, mode="repurpose", lr="auto").fit(X, y)
    assert (started.head_init_, started.lr_) == ("prompt", 0.123)
    every_block = len(started.block_names_)
    assert started.trainable_layers_ == every_block  # capped at the blocks there are
    for other in (dict(head_init="random"), dict(head=(4,))):  # no prompt head to keep close to
        usual = classifier(bert_dir, mode="repurpose", lr="auto", **other).fit(X, y)
        assert usual.lr_ != 0.123 and usual.trainable_layers_ == 2 < every_block
    as_given = classifier(bert_dir, mode="repurpose", lr="auto", trainable_layers=1).fit(X, y)
    assert (as_given.lr_, as_given.trainable_layers_) == (0.123, 1)
    fits = {}
    for copies in (16, 17):  # 256 and 272 examples per class
        fits[copies] = classifier(bert_dir, mode="repurpose", lr="auto", max_epochs=1)
        fits[copies].fit(X * copies, np.concatenate([y] * copies))
    assert (fits[16].class_count_.min(), fits[16].lr_, fits[16].trainable_layers_) == (256, 0.123, every_block)
    assert (fits[17].class_count_.min(), fits[17].trainable_layers_) == (272, 2) and fits[17].lr_ != 0.123
