"""export_onnx: the whole prediction path as an ONNX graph, checked before writing; OnnxClassifier/OnnxRegressor."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from skft import FineTunedClassifier, FineTunedRegressor, OnnxClassifier, OnnxRegressor

from conftest import TINY, make_images, tiny_classifier

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def images():
    X, y = make_images(24, n_classes=3, channels=3)
    return X, np.array(["cat", "dog", "owl"])[y]


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "feature_extraction"},
        {"mode": "repurpose", "head": (8,)},
        {"mode": "full"},
        {"mode": "lora", "trainable_layers": None, "lora_rank": 2, "max_epochs": 1},
    ],
    ids=lambda params: params["mode"],
)
def test_image_round_trip_in_every_mode(images, tmp_path, params):
    X, y = images
    clf = tiny_classifier(**params).fit(X, y)
    path = tmp_path / "model.onnx"
    assert clf.export_onnx(path) is clf
    exported = OnnxClassifier(path)
    new = make_images(5, n_classes=3, channels=3, seed=7)[0]
    np.testing.assert_allclose(exported.predict_proba(new), clf.predict_proba(new), atol=TOLERANCE)
    np.testing.assert_array_equal(exported.predict(new), clf.predict(new))
    np.testing.assert_array_equal(exported.classes_, clf.classes_)


def test_grey_images_and_object_labels(tmp_path):
    X, y = make_images(16)
    clf = tiny_classifier(mode="repurpose").fit(X, np.array(["no", "yes"], dtype=object)[y])  # as pandas gives
    clf.export_onnx(tmp_path / "grey.onnx")
    exported = OnnxClassifier(tmp_path / "grey.onnx")
    np.testing.assert_allclose(exported.predict_proba(X), clf.predict_proba(X), atol=1e-4)
    np.testing.assert_array_equal(exported.predict(X), clf.predict(X))


def test_an_onnx_classifier_in_a_pipeline_scores_as_the_original(images, tmp_path):
    X, y = images
    clf = tiny_classifier(mode="repurpose").fit(X, y)
    clf.export_onnx(tmp_path / "model.onnx")
    as_uint8 = FunctionTransformer(lambda images: np.asarray(images).astype(np.uint8))
    pipeline = make_pipeline(as_uint8, OnnxClassifier(tmp_path / "model.onnx")).fit(X, y)
    assert pipeline.score(X, y) == clf.score(X, y)
    copy = pickle.loads(pickle.dumps(clone(pipeline[-1])))
    np.testing.assert_array_equal(copy.predict(X), clf.predict(X))


def test_multi_label_export_keeps_the_thresholds(tmp_path):
    X, labels = make_images(30, n_classes=3)
    Y = np.column_stack([labels == 0, labels != 0, labels == 2]).astype(int)
    clf = tiny_classifier(mode="repurpose", threshold="auto", max_epochs=3).fit(X, Y)
    clf.export_onnx(tmp_path / "tags.onnx")
    exported = OnnxClassifier(tmp_path / "tags.onnx")
    np.testing.assert_array_equal(exported.threshold_, clf.threshold_)
    np.testing.assert_allclose(exported.predict_proba(X), clf.predict_proba(X), atol=TOLERANCE)
    np.testing.assert_array_equal(exported.predict(X), clf.predict(X))


@pytest.mark.parametrize("two_d", [False, True])
def test_regressor_round_trip(tmp_path, two_d):
    X, _ = make_images(16)
    y = X.mean(axis=(1, 2)) / 255 * 10
    y = np.column_stack([y, -y]) if two_d else y
    reg = FineTunedRegressor(TINY, mode="repurpose", max_epochs=2, random_state=0, device="cpu").fit(X, y)
    reg.export_onnx(tmp_path / "reg.onnx")
    predicted = OnnxRegressor(tmp_path / "reg.onnx").predict(X)
    assert predicted.shape == y.shape
    np.testing.assert_allclose(predicted, reg.predict(X), atol=TOLERANCE)
    with pytest.raises(ValueError, match="Load it with OnnxRegressor"):
        OnnxClassifier(tmp_path / "reg.onnx").predict(X)


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "feature_extraction"},
        {"mode": "full"},
        {"mode": "lora", "trainable_layers": None, "lora_rank": 2},
        {"mode": "prompt", "label_prompts": {0: "bad", 1: "good"}},
        {"mode": "prompt", "label_prompts": {0: "bad", 1: "good"}, "prompt_tokens": 2},
    ],
    ids=["feature_extraction", "full", "lora", "prompt", "prompt_tuning"],
)
def test_text_round_trip_in_every_mode(bert_dir, texts, tmp_path, params):
    X, y = texts
    clf = FineTunedClassifier(bert_dir, max_epochs=2, batch_size=8, lr=1e-2, device="cpu", random_state=0, **params)
    clf.fit(X, y)
    clf.export_onnx(tmp_path / "model.onnx")
    assert (tmp_path / "tokenizer.json").is_file()
    exported = OnnxClassifier(tmp_path / "model.onnx", batch_size=5)
    new = X[:11] + ["", "a great film that is not at all dull " * 3]
    np.testing.assert_allclose(exported.predict_proba(new), clf.predict_proba(new), atol=TOLERANCE)
    np.testing.assert_array_equal(exported.predict(new), clf.predict(new))


def test_the_documented_recipe_runs_a_text_export(bert_dir, texts, tmp_path):
    transformers = pytest.importorskip("transformers")
    import onnxruntime

    X, y = texts
    clf = FineTunedClassifier(bert_dir, mode="repurpose", max_epochs=1, device="cpu", random_state=0).fit(X, y)
    clf.export_onnx(tmp_path / "model.onnx")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    session = onnxruntime.InferenceSession(tmp_path / "model.onnx")
    tokens = tokenizer(X[:6], padding=True, return_tensors="np", return_token_type_ids=False)
    probabilities = session.run(None, dict(tokens))[0]
    np.testing.assert_allclose(probabilities, clf.predict_proba(X[:6]), atol=TOLERANCE)


def test_export_errors_are_clear(images, tmp_path):
    X, y = images
    with pytest.raises(NotFittedError):
        tiny_classifier().export_onnx(tmp_path / "model.onnx")
    clf = tiny_classifier(mode="feature_extraction").fit(X, y)
    with pytest.raises(FileNotFoundError, match="does not exist. Create it first"):
        clf.export_onnx(tmp_path / "missing" / "model.onnx")
    clf.predict_proba = lambda samples: np.full((len(samples), 3), 1 / 3)
    with pytest.raises(ValueError, match=r"differ from the estimator's by up to 0\.\d+ .*was not written"):
        clf.export_onnx(tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_classifier_refuses_what_the_graph_cannot_read(images, tmp_path):
    X, y = images
    tiny_classifier(mode="feature_extraction").fit(X, y).export_onnx(tmp_path / "model.onnx")
    exported = OnnxClassifier(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="16 x 16 pixels.*Resize them first"):
        exported.predict(np.zeros((2, 20, 20, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        exported.predict(X / 255.0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OnnxClassifier(tmp_path / "nothing.onnx").predict(X)
