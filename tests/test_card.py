"""Model cards: save(path, card=True) writes a Hugging Face model card beside the model."""

import re

import huggingface_hub
import numpy as np
import pytest

import skft
from skft import FineTunedClassifier, FineTunedRegressor

from conftest import TINY, TINY_SIZE, make_images


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X, y = make_images(40, n_classes=2)
    labels = np.array(["cat", "dog"])[y]
    clf = FineTunedClassifier(
        TINY, image_size=TINY_SIZE, max_epochs=3, early_stopping=True, random_state=0, lr=5e-1, device="cpu"
    )
    clf.fit(X, labels)
    path = tmp_path_factory.mktemp("card") / "model.skft"
    clf.save(path, card={"evaluation": (X[:20], labels[:20]), "scores": {"3-fold CV accuracy": 0.75}})
    return clf, path


def test_the_hub_parses_the_card_and_it_holds_every_field(saved):
    clf, path = saved
    card = huggingface_hub.ModelCard.load(path.with_suffix(".md"))
    data = card.data.to_dict()
    assert data["library_name"] == "skft" and data["pipeline_tag"] == "image-classification"
    assert data["base_model"] == clf.backbone_name_ and data["metrics"] == ["accuracy"]
    assert {result.dataset_name for result in card.data.eval_results} >= {
        "validation accuracy",
        "held-out accuracy",
        "3-fold CV accuracy",
    }
    text = card.text
    for expected in (
        "mode: `repurpose`",
        "transfer learning from pretrained weights",
        "`early_stopping=True`",
        "| `cat` | 20 |",
        "- samples: 40",
        "validation accuracy",
        "| block | drift |",
        "![learning curves](model_learning_curves.png)",
        "![confusion matrix](model_confusion_matrix.png)",
        "FineTunedClassifier(backbone='tiny_cnn'",
    ):
        assert expected in text, expected
    assert re.search(r"digest of the pretrained base the fit started from .*: `[0-9a-f]{32}`", text)
    for block in clf.block_names_:
        assert f"| {block} | " in text
    assert (path.parent / "model_learning_curves.png").stat().st_size > 0
    assert (path.parent / "model_confusion_matrix.png").stat().st_size > 0


def test_the_caution_appears_only_when_a_block_moved_far(saved, tmp_path):
    clf, _ = saved
    caution = "fine-tuning can damage the generality"
    assert (max(clf.drift_.values()) >= 0.1) == (caution in clf_card_text(clf, tmp_path))
    calm = FineTunedClassifier(TINY, image_size=TINY_SIZE, mode="feature_extraction", max_epochs=1, device="cpu")
    X, y = make_images(16)
    assert caution not in clf_card_text(calm.fit(X, y), tmp_path)
    clf.drift_ = {**clf.drift_, clf.block_names_[-1]: 0.5}
    try:
        assert caution in clf_card_text(clf, tmp_path)
    finally:
        clf.drift_[clf.block_names_[-1]] = 0.0


def clf_card_text(estimator, folder):
    estimator.save(folder / "m.skft", card=True)
    return (folder / "m.md").read_text()


def test_regressor_card_and_loaded_model_card(tmp_path):
    X, _ = make_images(16)
    reg = FineTunedRegressor(TINY, mode="repurpose", max_epochs=1, random_state=0, device="cpu")
    reg.fit(X, X.mean(axis=(1, 2)))
    reg.save(tmp_path / "reg.skft", card=True)
    card = huggingface_hub.ModelCard.load(tmp_path / "reg.md")
    assert card.data.library_name == "skft" and "pipeline_tag" not in card.data.to_dict()
    assert "- targets: 1, mean" in card.text and "- samples: 16" in card.text
    loaded = skft.load(tmp_path / "reg.skft")
    assert loaded.n_samples_fit_ == 16
    loaded.save(tmp_path / "again.skft", card=True)
    assert "- samples: 16" in (tmp_path / "again.md").read_text()


def test_no_card_unless_asked(tmp_path):
    X, y = make_images(16)
    FineTunedClassifier(TINY, mode="feature_extraction", max_epochs=1, device="cpu").fit(X, y).save(tmp_path / "m.skft")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skft"]
