"""compare_modes on text: the modes on the tiny BERT, and TF-IDF + LogisticRegression as the baseline."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skft import compare_modes

from text_fixtures import make_texts, save_tiny_model


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_model("bert", tmp_path_factory.mktemp("bert"))


def test_compare_modes_on_text_has_the_modes_and_tfidf_as_the_baseline(bert_dir):
    texts, labels = make_texts(32)
    table = compare_modes(
        texts, labels, cv=2, backbone=str(bert_dir), max_epochs=1, batch_size=8, random_state=0, device="cpu"
    )
    assert list(table.index) == [
        "full",
        "repurpose",
        "feature_extraction",
        "full, weights=None",
        "TF-IDF + linear model",
    ]
    tfidf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), LogisticRegression(max_iter=2000)
    )
    expected = cross_val_score(tfidf, texts, labels, cv=2)
    assert table.loc["TF-IDF + linear model", "score_mean"] == pytest.approx(expected.mean())
    assert np.isnan(table.loc["TF-IDF + linear model", "drift"])
    assert table.loc["full", "trainable_params"] > table.loc["repurpose", "trainable_params"] > 0
