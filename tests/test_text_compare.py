"""compare_modes on text: every mode on the tiny BERT (prompt included), TF-IDF + LogisticRegression as the baseline."""

import sys

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

import skft._compare
from skft import FineTunedClassifier, compare_modes
from skft._compare import COLUMNS

from text_fixtures import make_texts, save_tiny_model

TEXT_ROWS = [
    "full",
    "repurpose",
    "feature_extraction",
    "lora",
    "prompt",
    "full, weights=None",
    "TF-IDF + linear model",
]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_model("bert", tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def data():
    return make_texts(32)


def _params(bert_dir):
    return dict(backbone=str(bert_dir), max_epochs=1, batch_size=8, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def table(bert_dir, data):
    texts, labels = data
    # The tiny vocabulary has no digits: the labels' own prompts ("0", "1") would both be [UNK].
    return compare_modes(texts, labels, cv=2, label_prompts={0: "bad", 1: "good"}, **_params(bert_dir))


def test_compare_modes_on_text_has_the_modes_prompt_and_tfidf_as_the_baseline(table, data):
    texts, labels = data
    assert list(table.index) == TEXT_ROWS
    assert list(table.columns) == COLUMNS
    tfidf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), LogisticRegression(max_iter=2000)
    )
    expected = cross_val_score(tfidf, texts, labels, cv=2)
    assert table.loc["TF-IDF + linear model", "score_mean"] == pytest.approx(expected.mean())
    assert np.isnan(table.loc["TF-IDF + linear model", "drift"])
    assert np.isnan(table.loc["TF-IDF + linear model", "file_bytes"])


def test_text_rows_count_what_they_train_and_store(table):
    params, sizes = table["trainable_params"], table["file_bytes"]
    assert params["full"] > params["repurpose"] > params["lora"] > params["feature_extraction"] > params["prompt"] == 0
    assert table.loc["prompt", "drift"] == 0.0
    assert sizes["prompt"] < sizes["full"] and sizes["feature_extraction"] < sizes["full"]
    assert sizes["lora"] < sizes["repurpose"] < sizes["full"]


def test_the_prompt_row_uses_the_estimators_prompts(bert_dir, data):
    texts, labels = data
    params = {**_params(bert_dir), "label_prompts": {0: "not funny, dull, awful", 1: "a very good film, great"}}
    row = compare_modes(texts, labels, cv=2, **params).loc["prompt"]
    expected = cross_val_score(FineTunedClassifier(mode="prompt", **params), texts, labels, cv=2)
    assert row["score_mean"] == pytest.approx(expected.mean())
    assert row["trainable_params"] == 0


def test_a_text_regressor_has_no_prompt_row_and_no_lora_row_without_peft(bert_dir, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    texts, labels = data
    with pytest.warns(UserWarning, match=r'pip install "skft\[lora\]"'):
        regression = compare_modes(texts, np.asarray(labels) * 2.0 + 0.5, cv=2, **_params(bert_dir))
    assert list(regression.index) == [row for row in TEXT_ROWS if row not in ("lora", "prompt")]


def test_class_prompts_that_tokenise_alike_are_refused_before_any_row_trains(bert_dir, data, monkeypatch):
    texts, labels = data  # the tiny vocabulary has no digits: the prompts "0" and "1" both become [UNK]
    fitted_rows = []
    monkeypatch.setattr(skft._compare, "cross_validate", lambda *args, **kwargs: fitted_rows.append(args))
    with pytest.raises(ValueError, match="label_prompts"):
        compare_modes(texts, labels, cv=2, **_params(bert_dir))
    assert fitted_rows == []
