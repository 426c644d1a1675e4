"""Bad input to fit and predict, refused clearly: invalid Unicode, negative weights, an impossible
early-stopping split, paths that do not exist."""

import numpy as np
import pytest

from skft import FineTunedClassifier, FineTunedRegressor

from conftest import TINY, make_images


def test_a_text_with_a_lone_surrogate_is_a_value_error_naming_its_index(bert_dir, texts):
    X, y = texts
    broken = list(X)
    broken[3] = "caf\udce9 review"  # b"caf\xe9" decoded as UTF-8 with errors="surrogateescape"
    clf = FineTunedClassifier(bert_dir, mode="feature_extraction", max_epochs=1, device="cpu", random_state=0)
    with pytest.raises(ValueError, match=r"X\[3\] holds a lone surrogate \('\\udce9' at character 3\)"):
        clf.fit(broken, y)
    with pytest.raises(ValueError, match=r"X\[1\] holds a lone surrogate"):
        clf.fit(X, y).predict([X[0], broken[3]])


@pytest.mark.parametrize("Estimator", [FineTunedClassifier, FineTunedRegressor])
def test_a_negative_sample_weight_is_a_value_error(Estimator, tiny_params):
    X, y = make_images(8)
    weights = np.ones(8)
    weights[5] = -0.5
    with pytest.raises(ValueError, match=r"sample_weight has 1 negative value\(s\), e.g. -0.5 at index 5.*>= 0"):
        Estimator(**tiny_params).fit(X, y, sample_weight=weights)


@pytest.mark.parametrize(
    "n_samples, n_classes, fraction",
    [(9, 3, 0.1), (7, 4, 0.5)],  # fewer held-out samples than classes; a class with a single sample
    ids=["fraction too small", "one sample of a class"],
)
def test_early_stopping_that_cannot_hold_out_every_class_names_its_parameters(
    n_samples, n_classes, fraction, tiny_params
):
    X, y = make_images(n_samples, n_classes=n_classes)
    clf = FineTunedClassifier(**tiny_params, early_stopping=True, validation_fraction=fraction)
    with pytest.raises(ValueError, match=rf"early_stopping=True holds out validation_fraction={fraction}.*"):
        clf.fit(X, y)


@pytest.mark.parametrize("path", ["photos/cat.jpg", "cat.PNG", "scans/2024/page1"])
def test_a_str_that_looks_like_a_missing_path_is_file_not_found_naming_it(path):
    X, y = [path, path], [0, 1]
    with pytest.raises(FileNotFoundError, match=rf"X\[0\] = '{path}' is not an image file"):
        FineTunedClassifier(TINY, device="cpu").fit(X, y)


def test_texts_for_an_image_backbone_still_get_the_text_backbone_hint():
    X, y = ["a great film, 10/10", "http://t.co/x1"], [0, 1]  # one item looks like a path, not all
    with pytest.raises(TypeError, match="choose a text backbone"):
        FineTunedClassifier(TINY, device="cpu").fit(X, y)
