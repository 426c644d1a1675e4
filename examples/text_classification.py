"""Text classification: fine-tune MiniLM on movie reviews, next to the usual scikit-learn answers.

Rotten Tomatoes review snippets, fresh vs rotten (``skft.datasets.load_movie_reviews``), with the
shipped ``all-MiniLM-L6-v2`` sentence encoder. Three models on the same split:

- TF-IDF (word 1-2-grams) + LogisticRegression: what a scikit-learn user reaches for first;
- frozen MiniLM embeddings (``BackboneFeatures``) + LogisticRegression: sentence embeddings;
- ``FineTunedClassifier`` repurposing the last two transformer layers: fine-tuning.

Offline, a few minutes on CPU (``--quick`` or ``SKFT_QUICK=1``: under a minute).
"""

import os
import sys

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skft import BackboneFeatures, FineTunedClassifier
from skft.datasets import load_movie_reviews


def main(quick=False):
    """Fit the three models on reviews; print and return their held-out accuracy."""
    texts, labels = load_movie_reviews()
    X_train, X_test, y_train, y_test = train_test_split(
        texts,
        labels,
        train_size=300 if quick else 2000,
        test_size=200 if quick else 1000,
        stratify=labels,
        random_state=0,
    )
    models = {
        "TF-IDF + LogisticRegression": make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), LogisticRegression(C=10, max_iter=2000)
        ),
        "frozen MiniLM + LogisticRegression": make_pipeline(
            BackboneFeatures("all-MiniLM-L6-v2"), LogisticRegression(C=10, max_iter=2000)
        ),
        # The last two transformer layers and the head train; the four below are frozen, and their
        # outputs are computed once per text and cached (refits and grid searches reuse them).
        "fine-tuned MiniLM (repurpose, 2 layers)": FineTunedClassifier(
            "all-MiniLM-L6-v2",
            mode="repurpose",
            trainable_layers=2,
            lr=5e-4,
            head_lr_scale=10,
            batch_size=16,
            max_epochs=2 if quick else 3,
            random_state=0,
        ),
    }
    accuracy = {}
    for name, model in models.items():
        accuracy[name] = model.fit(X_train, y_train).score(X_test, y_test)
        print(f"{name:<42} held-out accuracy {accuracy[name]:.3f}")
    print(f"({len(X_train)} training and {len(X_test)} test reviews, fresh vs rotten)")
    return accuracy


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:] or os.environ.get("SKFT_QUICK") == "1")
