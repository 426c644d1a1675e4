"""Every kind of image a user has, and a clear error for every mistake."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from sklearn.exceptions import NotFittedError

from skft import BackboneFeatures, FineTunedClassifier, FineTunedRegressor, load_image_folder
from skft._images.decoding import LazyImages, load_image
from skft._images.source import as_image_source

from conftest import TINY, TINY_SIZE, make_images

HYPOTHESIS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def _save_all(images, folder, extension=".png"):
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{index}{extension}"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def png_data(tmp_path_factory):
    """24 RGB images, as an array and as PNG files (lossless: the same pixels)."""
    X, y = make_images(24, channels=3)
    return X, y, _save_all(X, tmp_path_factory.mktemp("png"))


@pytest.fixture(scope="module")
def features():
    return BackboneFeatures(backbone=TINY, image_size=TINY_SIZE).fit(make_images(2)[0])


@pytest.fixture(scope="module")
def fitted(png_data):
    X, y, _ = png_data
    return FineTunedClassifier(backbone=TINY, image_size=TINY_SIZE, max_epochs=2, batch_size=8, random_state=0).fit(
        X, y
    )


# -- inputs that work ---------------------------------------------------------------------


def test_fitting_on_files_gives_the_model_that_fitting_on_their_pixels_gives(png_data, tiny_params):
    X, y, paths = png_data
    params = dict(tiny_params, early_stopping=True, validation_fraction=0.25)
    from_pixels = FineTunedClassifier(**params).fit(X, y)
    from_files = FineTunedClassifier(**params).fit([str(path) for path in paths], y)
    assert "valid_loss" in from_files.history_[-1]
    np.testing.assert_array_equal(from_files.predict_proba(paths), from_pixels.predict_proba(X))
    assert from_files.score(paths, y) == from_pixels.score(X, y)


@pytest.mark.parametrize(
    "as_paths",
    [
        lambda paths: paths,
        lambda paths: [str(path) for path in paths],
        lambda paths: tuple(str(path) for path in paths),
        lambda paths: np.array([str(path) for path in paths]),
        lambda paths: np.array(paths, dtype=object),
        lambda paths: pd.Series([str(path) for path in paths], index=np.arange(100, 100 + len(paths))),
    ],
    ids=["Path", "str", "tuple", "str-array", "object-array", "Series"],
)
def test_every_container_of_paths(png_data, features, as_paths):
    X, _, paths = png_data
    np.testing.assert_array_equal(features.transform(as_paths(paths)), features.transform(X))


def test_paths_pil_images_and_arrays_can_be_mixed(png_data, features):
    X, _, paths = png_data
    mixed = [paths[0], Image.fromarray(X[1]), X[2], torch.from_numpy(X[3])]
    np.testing.assert_array_equal(features.transform(mixed), features.transform(X[:4]))


@pytest.mark.parametrize(
    "extension, options",
    [(".jpg", {"quality": 95}), (".png", {}), (".bmp", {}), (".webp", {"lossless": True}), (".tif", {})],
)
def test_image_file_formats(tmp_path, extension, options):
    pixels = make_images(1, channels=3, size=20)[0][0]
    path = tmp_path / f"image{extension}"
    Image.fromarray(pixels).save(path, **options)
    loaded = load_image(path).permute(1, 2, 0).numpy()
    assert loaded.shape == (20, 20, 3) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, np.asarray(Image.open(path).convert("RGB")))
    if extension != ".jpg":
        np.testing.assert_array_equal(loaded, pixels)


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), 40), Image.new("L", (8, 8), 220)]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert (load_image(path) == 40).all()


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 8, 3), dtype=np.uint8)
    pixels[:, :4] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: displays turned by 90 degrees
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    assert tuple(load_image(tmp_path / "rotated.jpg").shape) == (3, 8, 4)


@pytest.mark.parametrize(
    "mode, make, expected",
    [
        ("L", lambda: Image.new("L", (5, 7), 200), 200),
        ("RGB", lambda: Image.new("RGB", (5, 7), (200, 200, 200)), 200),
        ("RGBA", lambda: Image.new("RGBA", (5, 7), (200, 200, 200, 0)), 200),
        ("LA", lambda: Image.new("LA", (5, 7), (200, 10)), 200),
        ("P", lambda: Image.new("RGB", (5, 7), (200, 200, 200)).convert("P", palette=Image.Palette.ADAPTIVE), 200),
        ("P+transparency", lambda: _palette_with_transparency(200), 200),
        ("1", lambda: Image.new("1", (5, 7), 1), 255),
        ("I;16", lambda: Image.fromarray(np.full((7, 5), 200 * 257, dtype=np.uint16)), 200),
        ("I", lambda: Image.fromarray(np.full((7, 5), 200, dtype=np.int32)), 200),
        ("I 16-bit", lambda: Image.fromarray(np.full((7, 5), 200 * 257, dtype=np.int32)), 200),
        ("F 0..1", lambda: Image.fromarray(np.full((7, 5), 200 / 255, dtype=np.float32)), 200),
        ("F 0..255", lambda: Image.fromarray(np.full((7, 5), 200.0, dtype=np.float32)), 200),
        ("CMYK", lambda: Image.new("RGB", (5, 7), (200, 200, 200)).convert("CMYK"), 200),
    ],
)
def test_pil_images_of_every_mode_become_rgb(mode, make, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_image(make(), image_size=4)
    assert loaded.shape == (3, 4, 4) and loaded.dtype == torch.uint8
    assert (loaded.int() - expected).abs().max() <= 1, mode


def _palette_with_transparency(value):
    image = Image.new("P", (5, 7), 0)
    image.putpalette([value] * 768)
    image.info["transparency"] = bytes(256)
    return image


def test_pil_images_fit_and_predict(tiny_params):
    X, y = make_images(20, channels=3)
    images = [Image.fromarray(x) for x in X]
    clf = FineTunedClassifier(**tiny_params).fit(images, y)
    np.testing.assert_array_equal(clf.predict_proba(images), clf.predict_proba(X))


def test_arrays_of_different_sizes_and_layouts(tiny_params):
    X, y = make_images(12)
    ragged = [np.zeros((10, 12), np.uint8), np.full((20, 8, 3), 0.5), np.zeros((3, 5, 5), np.uint8)] * 4
    for images in (ragged, np.array(ragged, dtype=object)):
        clf = FineTunedClassifier(**tiny_params).fit(images, y)
        assert clf.predict(images[:5]).shape == (5,)


def test_a_ragged_array_is_resized_like_the_network_resizes(fitted):
    X, _ = make_images(3, channels=3, size=24)
    ragged = list(X) + [np.zeros((5, 6, 3), np.uint8)]
    np.testing.assert_allclose(fitted.predict_proba(ragged)[:3], fitted.predict_proba(X), atol=0.02)


def test_uniform_arrays_stay_one_tensor_and_others_load_lazily(png_data, tmp_path, monkeypatch):
    X, _, paths = png_data
    assert torch.is_tensor(as_image_source(X)) and torch.is_tensor(as_image_source(list(X)))
    opened = []
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args) or Image.new("L", (2, 2)))
    lazy = as_image_source([paths[0]] * 50_000, image_size=8)
    assert isinstance(lazy, LazyImages) and len(lazy) == 50_000 and not opened
    subset = lazy[np.array([3, 7])]
    assert len(subset) == 2 and not opened
    assert tuple(subset[0].shape) == (3, 8, 8) and len(opened) == 1


def test_a_nested_list_of_numbers_is_an_array(fitted):
    X, _ = make_images(4, channels=3)
    np.testing.assert_array_equal(fitted.predict_proba(X.tolist()), fitted.predict_proba(X))


def test_torch_tensors_and_16_bit_images(fitted):
    X, _ = make_images(4, channels=3)
    np.testing.assert_array_equal(fitted.predict_proba(torch.from_numpy(X)), fitted.predict_proba(X))
    sixteen = X.astype(np.uint16) * 257
    np.testing.assert_allclose(fitted.predict_proba(sixteen), fitted.predict_proba(X), atol=1e-6)


def test_tiny_source_images_are_upsampled(fitted):
    assert fitted.predict(np.zeros((2, 1, 1), np.uint8)).shape == (2,)
    assert fitted.predict([np.zeros((2, 3), np.uint8), Image.new("RGB", (1, 1))]).shape == (2,)


def test_one_image_at_predict(fitted, png_data):
    X, _, paths = png_data
    expected = fitted.predict_proba(X[:1])
    for one in (X[:1], [paths[0]], [Image.fromarray(X[0])], [X[0]]):
        np.testing.assert_array_equal(fitted.predict_proba(one), expected)


def test_a_batch_larger_than_the_data(tiny_params):
    X, y = make_images(10)
    for Estimator in (FineTunedClassifier, FineTunedRegressor):
        estimator = Estimator(**{**tiny_params, "batch_size": 64}).fit(X, y)
        assert estimator.predict(X[:3]).shape == (3,)


def test_labels_unseen_in_fit_score_as_wrong(fitted, png_data):
    X, y, _ = png_data
    predicted = fitted.predict(X)
    unseen = np.where(np.arange(len(y)) < 6, 7, predicted)
    assert fitted.score(X, unseen) == pytest.approx(18 / 24)


def test_num_workers_load_files_in_other_processes(png_data, tiny_params):
    X, y, paths = png_data
    in_process = FineTunedClassifier(**tiny_params).fit(paths, y).predict_proba(paths)
    clf = FineTunedClassifier(**tiny_params, num_workers=1).fit(paths, y)
    assert clf.net_.iterator_train__num_workers == clf.net_.iterator_valid__num_workers == 1
    np.testing.assert_allclose(clf.predict_proba(paths), in_process, atol=1e-6)
    features = BackboneFeatures(backbone=TINY, image_size=TINY_SIZE, batch_size=5, num_workers=1).fit(paths)
    np.testing.assert_array_equal(features.transform(paths), features.transform(X))


def test_load_image_folder(tmp_path, tiny_params):
    X, y = make_images(12, channels=3)
    for index, (image, label) in enumerate(zip(X, np.array(["cat", "dog"])[y])):
        folder = tmp_path / label / ("nested" if index % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.{'PNG' if index % 2 else 'jpg'}")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"")
    (tmp_path / ".cache").mkdir()
    Image.fromarray(X[0]).save(tmp_path / ".cache" / "x.png")
    Image.fromarray(X[0]).save(tmp_path / "outside_any_class.png")
    paths, labels = load_image_folder(tmp_path)
    assert len(paths) == 12 and sorted(set(labels)) == ["cat", "dog"]
    assert all(Path(path).parent.relative_to(tmp_path).parts[0] == label for path, label in zip(paths, labels))
    assert list(labels) == sorted(labels)
    clf = FineTunedClassifier(**tiny_params).fit(paths, labels)
    assert set(clf.predict(paths)) <= {"cat", "dog"}


def test_load_image_folder_follows_class_links_but_no_links_inside_a_class(tmp_path):
    X, _ = make_images(2, channels=3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.fromarray(X[0]).save(elsewhere / "0.png")
    root = tmp_path / "data"
    (root / "dog").mkdir(parents=True)
    Image.fromarray(X[1]).save(root / "dog" / "1.png")
    (root / "dog" / "loop").symlink_to(root / "dog", target_is_directory=True)
    (root / "cat").symlink_to(elsewhere, target_is_directory=True)
    paths, labels = load_image_folder(root)
    assert [str(Path(path).relative_to(root)) for path in paths] == ["cat/0.png", "dog/1.png"]
    assert list(labels) == ["cat", "dog"]


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.*not a folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no images in class folders.*root/<class>/<image>"):
        load_image_folder(tmp_path)


# -- mistakes, each with a clear answer ---------------------------------------------------


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((0, 16, 16), np.uint8), ValueError, r"X is empty \(shape \(0, 16, 16\)\)"),
        ([], ValueError, "X is empty"),
        (pd.Series([], dtype=object), ValueError, "X is empty"),
        (np.zeros(16, np.uint8), ValueError, r"X has 1 dimensions \(shape \(16,\)\)"),
        (np.zeros((4, 64), np.uint8), ValueError, r"a table, not images.*X.reshape\(-1, 8, 8\)"),
        (np.zeros((2, 1, 8, 8, 3), np.uint8), ValueError, r"X has 5 dimensions \(shape \(2, 1, 8, 8, 3\)\)"),
        (np.zeros((2, 8, 8, 2), np.uint8), ValueError, r"\(2, 8, 8, 2\): no axis holds 1, 3 or 4 channels"),
        (np.zeros((2, 5, 8, 8), np.uint8), ValueError, "no axis holds 1, 3 or 4 channels"),
        (np.zeros((2, 0, 8), np.uint8), ValueError, "without pixels"),
        (np.full((2, 8, 8), np.nan), ValueError, "X contains NaN or infinite values"),
        (np.full((2, 8, 8), np.inf, np.float32), ValueError, "X contains NaN or infinite values"),
        (np.full((2, 8, 8), 2.0), ValueError, r"from 2 to 2.*divide by 255"),
        (np.full((2, 8, 8), 300), ValueError, r"0..255.*from 300 to 300"),
        (np.full((2, 8, 8), -1, np.int8), ValueError, r"from -1 to -1"),
        (np.zeros((2, 8, 8), bool), TypeError, r"dtype bool.*astype\(np.uint8\) \* 255"),
        (np.zeros((2, 8, 8), complex), ValueError, "holds complex numbers"),
        ([[1, 2, 3], [4, 5, 6]], ValueError, r"X has shape \(2, 3\): a table"),
        ([[[1, 2], [3]]], TypeError, "nested list whose items are not all numbers of one shape"),
        ([np.zeros((8, 8)), np.full((4, 4), np.nan)], ValueError, r"X\[1\] contains NaN"),
        ([np.zeros((8, 8)), np.full((4, 4), 7.0)], ValueError, r"X\[1\]: float images must lie in \[0, 1\]"),
        ([np.zeros((8, 8)), np.zeros((5, 5, 2))], ValueError, r"X\[1\] has shape \(5, 5, 2\): no axis holds"),
        ([np.zeros((8, 8)), np.zeros((2, 4, 4, 3))], ValueError, r"X\[1\] has shape \(2, 4, 4, 3\); one image"),
        ([np.zeros((8, 8)), {"image": 1}], TypeError, r"X\[1\] is a dict"),
        ("photos/cat.png", TypeError, r"single path 'photos/cat.png'.*\[X\].*load_image_folder"),
        (Image.new("RGB", (4, 4)), TypeError, r"one PIL image.*\[X\]"),
        (pd.DataFrame({"path": ["a.png"]}), TypeError, r"DataFrame with columns \['path'\].*df\['path'\]"),
        (42, TypeError, "Got int instead"),
        (np.array(3), TypeError, "single value"),
    ],
)
def test_bad_images_are_refused_with_the_fix(X, error, match, fitted, features):
    with pytest.raises(error, match=match):
        as_image_source(X)
    for method in (fitted.predict, fitted.predict_proba, features.transform):
        with pytest.raises(error, match=match):
            method(X)


def test_bad_images_are_refused_by_fit_before_any_training(tiny_params):
    X, y = make_images(4)
    for Estimator in (FineTunedClassifier, FineTunedRegressor):
        with pytest.raises(ValueError, match="X is empty"):
            Estimator(**tiny_params).fit(X[:0], y[:0])
        with pytest.raises(ValueError, match="X contains NaN"):
            Estimator(**tiny_params).fit(np.full((4, 8, 8), np.nan), y)
        with pytest.raises(ValueError, match=r"X and y have different lengths: 4 images but 3 targets"):
            Estimator(**tiny_params).fit([Image.new("L", (4, 4))] * 4, y[:3])


def test_a_missing_file_is_named(png_data, fitted, tmp_path):
    _, y, paths = png_data
    missing = tmp_path / "nowhere" / "cat.png"
    for bad in ([paths[0], missing], [paths[0], str(missing)]):
        with pytest.raises(FileNotFoundError, match=r"X\[1\] = '.*nowhere/cat.png' is not an image file"):
            fitted.predict(bad)
    with pytest.raises(FileNotFoundError, match=r"X\[0\] = .* \(it is a folder\)"):
        FineTunedClassifier(backbone=TINY).fit([tmp_path, paths[0]], y[:2])


@pytest.fixture(scope="module")
def broken_files(png_data, tmp_path_factory):
    X, _, paths = png_data
    folder = tmp_path_factory.mktemp("broken")
    not_an_image = folder / "notes.png"
    not_an_image.write_text("these are my notes, not a picture")
    truncated = folder / "truncated.jpg"
    Image.fromarray(make_images(1, channels=3, size=64)[0][0]).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:700])
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    return {"not an image": not_an_image, "truncated": truncated, "empty": empty}


@pytest.mark.parametrize("kind", ["not an image", "truncated", "empty"])
def test_a_file_that_cannot_be_read_is_named(kind, broken_files, png_data, fitted, features, tiny_params):
    _, y, paths = png_data
    bad = broken_files[kind]
    X = list(paths[:7]) + [bad]
    pattern = rf"could not read the image file '.*{bad.name}'"
    with pytest.raises(ValueError, match=pattern):
        FineTunedClassifier(**tiny_params).fit(X, y[:8])
    with pytest.raises(ValueError, match=pattern):
        fitted.predict(X)
    with pytest.raises(ValueError, match=pattern):
        features.transform(X)


def test_a_truncated_pil_image_is_named(broken_files, fitted):
    with Image.open(broken_files["truncated"]) as image:
        with pytest.raises(ValueError, match=r"could not read the PIL image from '.*truncated.jpg'"):
            fitted.predict([image])


def test_a_pil_image_with_values_out_of_range_is_named(fitted):
    image = Image.fromarray(np.full((4, 4), -3.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"PIL image \(F, 4x4\) has mode 'F' and values from -3 to -3"):
        fitted.predict([image])


@pytest.mark.parametrize("Estimator", [FineTunedClassifier, FineTunedRegressor])
@pytest.mark.parametrize(
    "y, match",
    [
        (np.array([0.0, 1.0, np.nan, 1.0]), r"1 missing target\(s\) \(NaN or None\), at position\(s\) 2"),
        (np.array(["a", None, "b", np.nan], dtype=object), r"2 missing target\(s\).*1, 3"),
    ],
)
def test_missing_targets_are_located(Estimator, y, match, tiny_params):
    X, _ = make_images(4)
    with pytest.raises(ValueError, match=match):
        Estimator(**tiny_params).fit(X, y)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_every_method_before_fit_is_not_fitted_error(method):
    X, y = make_images(4)
    with pytest.raises(NotFittedError):
        getattr(FineTunedClassifier(backbone=TINY), method)(*((X, y) if method == "score" else (X,)))
    with pytest.raises(NotFittedError):
        BackboneFeatures(backbone=TINY).transform(X)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"num_workers": -1}, "'num_workers' parameter"),
        ({"augment": "yes"}, "'augment' parameter.*'yes'"),
    ],
)
def test_bad_loading_parameters_are_named(params, match, tiny_params):
    X, y = make_images(8)
    with pytest.raises(ValueError, match=match):
        FineTunedClassifier(**{**tiny_params, **params}).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"feature_layer": 3}, "feature_layer=3.*3 blocks.*-3 to 2"),
        ({"backbone": "tiny_cn"}, "Did you mean.*tiny_cnn"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"num_workers": -1}, "'num_workers' parameter"),
        ({"image_size": 2}, "image_size=2 is too small.*at least 4"),
    ],
)
def test_bad_backbone_features_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        BackboneFeatures(**{"backbone": TINY, "image_size": TINY_SIZE, **params}).fit(make_images(2)[0])


# -- properties of the conversion ------------------------------------------------------------

DTYPES = {
    np.uint8: 255,
    np.uint16: 65535,
    np.int16: 255,
    np.int64: 255,
    np.float32: 1.0,
    np.float64: 1.0,
}


@st.composite
def valid_arrays(draw):
    n, height, width = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    channels_last = draw(st.booleans())
    dtype = draw(st.sampled_from(sorted(DTYPES, key=str)))
    full_scale = DTYPES[dtype]
    if channels is None:
        shape = (n, height, width)
    else:
        shape = (n, height, width, channels) if channels_last else (n, channels, height, width)
    elements = st.floats(0, 1, width=32) if full_scale == 1.0 else st.integers(0, full_scale)
    return draw(hnp.arrays(dtype, shape, elements=elements)), channels, channels_last


@HYPOTHESIS
@given(valid_arrays())
def test_valid_arrays_become_one_channels_first_tensor_with_the_same_values(case):
    array, channels, channels_last = case
    tensor = as_image_source(array)
    if channels is None:
        expected = array[:, None]
    else:  # when both axes could hold the channels, the last one wins
        expected = np.moveaxis(array, -1, 1) if channels_last or array.shape[-1] in (1, 3, 4) else array
    assert tensor.shape == expected.shape and tensor.is_contiguous()
    scale = DTYPES[array.dtype.type]
    if tensor.dtype == torch.uint8:
        np.testing.assert_array_equal(tensor.numpy(), expected)
    else:
        assert tensor.dtype == torch.float32
        np.testing.assert_allclose(tensor.numpy(), expected / scale, rtol=1e-6, atol=1e-7)


@HYPOTHESIS
@given(
    hnp.arrays(
        st.sampled_from([np.uint8, np.int32, np.float64, np.float16, bool, complex, np.uint16]),
        hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5),
    )
)
def test_any_array_becomes_images_or_a_value_or_type_error(array):
    try:
        tensor = as_image_source(array)
    except (ValueError, TypeError) as error:
        assert str(error).startswith("X")
        return
    assert tensor.ndim == 4 and tensor.shape[1] in (1, 3, 4) and tensor.numel() > 0
    assert tensor.dtype in (torch.uint8, torch.float32)
    assert torch.isfinite(tensor.float()).all() and 0 <= tensor.float().min() and tensor.float().max() <= 255


@st.composite
def ragged_constant_images(draw):
    images = []
    for _ in range(draw(st.integers(1, 4))):
        height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
        layout = draw(st.sampled_from(["hw", "hwc", "chw"]))
        channels = draw(st.sampled_from([1, 3, 4]))
        shape = {"hw": (height, width), "hwc": (height, width, channels), "chw": (channels, height, width)}[layout]
        value = draw(st.integers(0, 255))
        dtype = draw(st.sampled_from([np.uint8, np.float32, np.int64]))
        images.append((np.full(shape, value / 255 if dtype == np.float32 else value, dtype=dtype), value))
    return images


@HYPOTHESIS
@given(ragged_constant_images(), st.integers(1, 12))
def test_lists_of_arrays_of_any_sizes_decode_to_rgb_uint8_at_the_network_size(images, image_size):
    differently_sized = np.zeros((10, 11), np.uint8)  # so that the list is never uniform
    source = as_image_source([image for image, _ in images] + [differently_sized], image_size)
    assert isinstance(source, LazyImages) and len(source) == len(images) + 1
    for index, (_, value) in enumerate(images):
        decoded = source[index]
        assert tuple(decoded.shape) == (3, image_size, image_size) and decoded.dtype == torch.uint8
        assert (decoded.int() - value).abs().max() <= 1
