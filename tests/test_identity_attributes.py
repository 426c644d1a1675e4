"""Keys describe everything a forward can read: plain attributes of modules, not only tensors.

Two user networks that differ only in a plain attribute (a tensor, a ``functools.partial``, a NumPy
scalar, a dict of settings) must get different prefix keys, and the second fit must predict as a
cold cache does. An attribute the digest cannot describe makes the prefix uncacheable, with one
warning per fit. Every equivalence here compares against a cold cache.
"""

import enum
import functools
import re
import types
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_identity import cold_cache  # noqa: F401 -- every test starts and ends with an empty cache

from skft import BackboneFeatures, FineTunedClassifier, cache_info, clear_cache
from skft.backbones import UndescribableAttribute, module_digest

from conftest import TINY_SIZE, make_images
from identity_nets import apply_setting, cnn_reading, flattening_cnn, scale_by, scale_by_entry


class Scale(enum.Enum):
    SMALL = 2.0
    LARGE = 5.0


PARAMS = dict(
    mode="feature_extraction", image_size=TINY_SIZE, max_epochs=2, batch_size=8, random_state=0, lr=1e-2, device="cpu"
)

SETTINGS = {
    "tensor": (torch.tensor(2.0), torch.tensor(5.0), scale_by),
    "partial": (
        functools.partial(F.leaky_relu, negative_slope=0.1),
        functools.partial(F.leaky_relu, negative_slope=3.0),
        apply_setting,
    ),
    "numpy float32": (np.float32(2.0), np.float32(5.0), scale_by),
    "numpy array": (np.array([2.0], dtype=np.float32), np.array([5.0], dtype=np.float32), scale_by),
    "dict of settings": ({"scale": 2.0}, {"scale": 5.0}, scale_by_entry),
    "enum": (Scale.SMALL, Scale.LARGE, lambda x, setting: x * setting.value),
}


@pytest.mark.parametrize("first, second, read", SETTINGS.values(), ids=SETTINGS.keys())
def test_networks_differing_only_in_a_plain_attribute_get_different_keys(first, second, read):
    X, y = make_images(20)
    before = FineTunedClassifier(backbone=cnn_reading(first, read), **PARAMS).fit(X, y)
    after = FineTunedClassifier(backbone=cnn_reading(second, read), **PARAMS).fit(X, y)
    assert after.prefix_key_ != before.prefix_key_
    assert cache_info().hits == 0
    warm = after.predict_proba(X)
    clear_cache()
    cold = FineTunedClassifier(backbone=cnn_reading(second, read), **PARAMS).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(warm, cold, atol=1e-6)


def test_equal_plain_attributes_share_a_key():
    X, y = make_images(12)
    one = FineTunedClassifier(backbone=cnn_reading(torch.tensor(2.0), scale_by), **PARAMS).fit(X, y)
    other = FineTunedClassifier(backbone=cnn_reading(torch.tensor(2.0), scale_by), **PARAMS).fit(X, y)
    assert one.prefix_key_ == other.prefix_key_
    assert cache_info().hits > 0


def test_a_closure_is_described_by_the_values_it_captured():
    def scaled(factor):
        return lambda x: x * factor

    digests = {module_digest([("", cnn_reading(scaled(factor), apply_setting))]) for factor in (2.0, 5.0, 2.0)}
    assert len(digests) == 2


def test_an_undescribable_attribute_makes_the_prefix_uncacheable_with_one_warning_per_fit():
    X, y = make_images(20)
    backbone = cnn_reading(types.SimpleNamespace(scale=2.0), scale_by_entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = FineTunedClassifier(backbone=backbone, **PARAMS).fit(X, y)
        first_proba = first.predict_proba(X)
    messages = [str(w.message) for w in caught if "not cached" in str(w.message)]
    assert len(messages) == 1
    path = re.search(r"module '([^']+)' holds attribute 'setting'", messages[0]).group(1)
    assert isinstance(dict(first.net_.module_.named_modules())[path].setting, types.SimpleNamespace)
    assert "register_buffer('setting'" in messages[0]
    assert first.prefix_key_ is None and cache_info().entries == 0
    # Computed fresh every time, so a changed setting is seen.
    backbone[0][2].setting.scale = 5.0
    with pytest.warns(UserWarning, match="not cached"):
        second = FineTunedClassifier(backbone=backbone, **PARAMS).fit(X, y)
    assert not np.allclose(second.predict_proba(X), first_proba, atol=1e-3)
    clear_cache()
    reference = FineTunedClassifier(backbone=cnn_reading({"scale": 5.0}, scale_by_entry), **PARAMS).fit(X, y)
    np.testing.assert_allclose(second.predict_proba(X), reference.predict_proba(X), atol=1e-6)


def test_module_digest_names_the_module_and_attribute_it_cannot_describe():
    with pytest.raises(UndescribableAttribute, match=r"'net.0.2'.*'setting'.*SimpleNamespace.*register_buffer"):
        module_digest([("net", cnn_reading(types.SimpleNamespace(scale=2.0), scale_by_entry))])


def test_the_feature_size_memo_sees_a_changed_stride():
    X = make_images(4)[0]
    wide = BackboneFeatures(backbone=flattening_cnn(stride=1), image_size=TINY_SIZE).fit(X)
    narrow = BackboneFeatures(backbone=flattening_cnn(stride=2), image_size=TINY_SIZE).fit(X)
    assert wide.n_features_out_ == 4 * TINY_SIZE * TINY_SIZE
    assert narrow.n_features_out_ == 4 * (TINY_SIZE // 2) ** 2 == narrow.transform(X).shape[1]
    y = np.arange(len(X)) % 2
    clf = FineTunedClassifier(backbone=flattening_cnn(stride=2), **{**PARAMS, "max_epochs": 1}).fit(X, y)
    assert clf.predict_proba(X).shape == (len(X), 2)
