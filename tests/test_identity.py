"""Identity of shared things: cache keys of the built network, verified disk entries, registrations
that travel by content, and model files that cannot steer the cache or the machine.

Every equivalence here compares against a cold cache (``clear_cache()``, a fresh ``cache_dir``, or
a fresh process).
"""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import skft
from skft import FineTunedClassifier, FineTunedRegressor, cache_info, clear_cache, register_backbone
from skft._cache import DiskStore, prefix_key
from skft._file_sizes import MAX_BATCH_SIZE, MAX_IMAGE_SIZE
from skft.backbones import _registry, get_spec, registration_digest, weights_identity

from conftest import TINY_SIZE, make_images
from identity_nets import seeded_cnn

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "data"


def builder_a():
    return seeded_cnn(seed=0)


def builder_b():
    return seeded_cnn(seed=1)


def builder_tanh():
    return seeded_cnn(seed=0, activation=nn.Tanh)


@pytest.fixture(autouse=True)
def cold_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def registered():
    """Register user backbones under test names; remove them afterwards."""
    names = []

    def register(name, builder):
        register_backbone(name, builder, image_size=TINY_SIZE, min_image_size=4, overwrite=True)
        names.append(name)

    yield register
    for name in names:
        _registry._USER_SPECS.pop(name, None)


@pytest.fixture
def params():
    return dict(image_size=TINY_SIZE, max_epochs=2, batch_size=8, random_state=0, lr=1e-2, device="cpu")


# -- keys of the built thing ---------------------------------------------------------------------


@pytest.mark.parametrize("second", [builder_b, builder_tanh], ids=["other weights", "relu to tanh"])
def test_a_re_registered_name_gets_a_new_key_and_predicts_as_a_cold_cache(registered, params, second):
    X, y = make_images(20)
    registered("reused_name", builder_a)
    first = FineTunedClassifier(backbone="reused_name", mode="feature_extraction", **params).fit(X, y)
    registered("reused_name", second)
    warm = FineTunedClassifier(backbone="reused_name", mode="feature_extraction", **params).fit(X, y)
    assert warm.prefix_key_ != first.prefix_key_
    warm_proba = warm.predict_proba(X)
    clear_cache()
    cold = FineTunedClassifier(backbone="reused_name", mode="feature_extraction", **params).fit(X, y)
    np.testing.assert_allclose(warm_proba, cold.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize(
    "edit",
    [
        lambda module: module.__setitem__(1, nn.Tanh()),
        lambda module: setattr(module[2][0], "stride", (1, 1)),
    ],
    ids=["relu to tanh", "conv stride"],
)
def test_a_user_module_changed_without_changing_a_tensor_gets_a_new_key(params, edit):
    X, y = make_images(20)
    module = seeded_cnn()
    before = FineTunedClassifier(backbone=module, mode="feature_extraction", **params).fit(X, y)
    edit(module)
    after = FineTunedClassifier(backbone=module, mode="feature_extraction", **params).fit(X, y)
    assert after.prefix_key_ != before.prefix_key_
    assert cache_info().misses == 40
    warm = after.predict_proba(X)
    clear_cache()
    cold = FineTunedClassifier(backbone=module, mode="feature_extraction", **params).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(warm, cold, atol=1e-6)


def test_the_key_has_no_name_in_it(registered, params):
    X, y = make_images(12)
    registered("first_name", builder_a)
    registered("second_name", builder_a)
    one = FineTunedClassifier(backbone="first_name", mode="feature_extraction", **params).fit(X, y)
    other = FineTunedClassifier(backbone="second_name", mode="feature_extraction", **params).fit(X, y)
    assert one.prefix_key_ == other.prefix_key_
    assert cache_info().misses == 12


def test_a_fitted_network_edited_in_place_never_reads_what_it_was(params):
    X, y = make_images(16)
    clf = FineTunedClassifier(backbone=seeded_cnn(), mode="feature_extraction", **params).fit(X, y)
    clf.predict_proba(X)
    with torch.no_grad():
        clf.net_.module_.backbone[0][0][0].weight.mul_(-1)
    served = clf.predict_proba(X)
    with torch.inference_mode():
        logits = clf.net_.module_(torch.from_numpy(X[:, None]))
    np.testing.assert_allclose(served, torch.softmax(logits, dim=1).numpy(), atol=1e-5)


def test_weights_names_are_identified_by_the_file_they_resolve_to():
    spec = get_spec("efficientnet_lite0")
    default, named = weights_identity("DEFAULT", spec), weights_identity("IMAGENET1K_V1", spec)
    assert default == named and default[0] == "file"
    assert default[1] == os.path.abspath(spec.weights_file("DEFAULT"))
    assert weights_identity(None, spec) == ("name", None)


# -- the disk cache ----------------------------------------------------------------------------------


_TWO_PROCESSES = """
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
import skft
from test_identity import {builder}
from conftest import make_images
skft.register_backbone("shared_name", {builder}, image_size=16, min_image_size=4)
X, y = make_images(20)
clf = skft.FineTunedClassifier(backbone="shared_name", mode="feature_extraction", image_size=16, max_epochs=2,
                               batch_size=8, random_state=0, lr=1e-2, device="cpu", cache_dir={cache_dir!r})
proba = clf.fit(X, y).predict_proba(X)
print(json.dumps({{"disk_hits": skft.cache_info().disk_hits, "proba": proba.tolist()}}))
"""


def _in_a_new_process(builder, cache_dir):
    script = _TWO_PROCESSES.format(root=str(TESTS.parent), tests=str(TESTS), builder=builder, cache_dir=str(cache_dir))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_processes_with_different_builders_under_one_name_never_read_each_others_entries(tmp_path):
    shared = tmp_path / "shared"
    first = _in_a_new_process("builder_a", shared)
    assert first["disk_hits"] == 0 and any(shared.rglob("*.safetensors"))
    second = _in_a_new_process("builder_b", shared)
    assert second["disk_hits"] == 0
    alone = _in_a_new_process("builder_b", tmp_path / "fresh")
    np.testing.assert_allclose(second["proba"], alone["proba"], atol=1e-6)
    again = _in_a_new_process("builder_a", shared)
    assert again["disk_hits"] == 20
    np.testing.assert_allclose(again["proba"], first["proba"], atol=1e-6)


def test_a_disk_entry_recorded_for_another_key_is_ignored(params, tmp_path):
    X, y = make_images(20)
    random_weights = dict(params, weights=None, backbone=seeded_cnn(), mode="feature_extraction")
    one = FineTunedClassifier(cache_dir=str(tmp_path), **random_weights).fit(X, y)
    other = FineTunedClassifier(cache_dir=str(tmp_path), **dict(random_weights, random_state=1)).fit(X, y)
    assert one.prefix_key_ != other.prefix_key_
    reference = other.predict_proba(X)
    source, target = tmp_path / one.prefix_key_, tmp_path / other.prefix_key_
    for entry in source.rglob("*.safetensors"):
        os.replace(entry, target / entry.relative_to(source))
    clear_cache()
    again = FineTunedClassifier(cache_dir=str(tmp_path), **dict(random_weights, random_state=1)).fit(X, y)
    assert cache_info().disk_hits == 0 and cache_info().misses == 20
    np.testing.assert_allclose(again.predict_proba(X), reference, atol=1e-6)


def test_disk_entries_record_their_key_and_image(params, tmp_path):
    X, y = make_images(8)
    clf = FineTunedClassifier(backbone=seeded_cnn(), mode="feature_extraction", cache_dir=str(tmp_path), **params)
    clf.fit(X, y)
    for entry in tmp_path.rglob("*.safetensors"):
        with safe_open(str(entry), framework="pt") as handle:
            assert handle.metadata()["prefix_key"] == clf.prefix_key_
            assert handle.metadata()["image"] == entry.stem


def test_keys_that_are_not_hex_digests_never_become_paths(tmp_path):
    for key in ["/etc", "../up", "ABCDEF0123456789ABCDEF0123456789", "0" * 31]:
        with pytest.raises(ValueError, match="32 lowercase hex"):
            DiskStore(tmp_path, key, (1,))
    store = DiskStore(tmp_path, "0" * 32, (1,))
    with pytest.raises(ValueError, match="image digest"):
        store.get("../../escape")


def test_clear_cache_with_cache_dir_empties_the_disk_store_and_nothing_else(params, tmp_path):
    X, y = make_images(10)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "ab").mkdir()
    FineTunedClassifier(backbone=seeded_cnn(), mode="feature_extraction", cache_dir=str(tmp_path), **params).fit(X, y)
    assert any(tmp_path.rglob("*.safetensors"))
    clear_cache(cache_dir=tmp_path)
    assert cache_info().entries == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ab", "notes.txt"]


# -- registrations that travel -------------------------------------------------------------------


def test_a_worker_that_knows_the_name_with_another_spec_gets_the_carried_one(registered, params):
    registered("travelling_name", builder_a)
    estimator = FineTunedClassifier(backbone="travelling_name", **params)
    carried = pickle.dumps(estimator)
    registered("travelling_name", builder_b)  # what a reused worker registered earlier
    pickle.loads(carried)
    assert get_spec("travelling_name").registration["builder"] is builder_a


def test_a_worker_with_the_same_spec_keeps_it(registered, params):
    registered("travelling_name", builder_a)
    carried = pickle.dumps(FineTunedClassifier(backbone="travelling_name", **params))
    spec = get_spec("travelling_name")
    pickle.loads(carried)
    assert get_spec("travelling_name") is spec


def test_registration_digest_follows_the_spec_not_the_name(registered):
    registered("digest_a", builder_a)
    registered("digest_b", builder_a)
    registered("digest_c", builder_tanh)
    assert registration_digest("digest_a") == registration_digest("digest_b") != registration_digest("digest_c")


# -- model files -----------------------------------------------------------------------------------


def _read(path):
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}, json.loads(handle.metadata()["skft"])


def _forge(source, target, edit_config=None, edit_tensors=None):
    tensors, config = _read(source)
    if edit_config is not None:
        edit_config(config)
    if edit_tensors is not None:
        edit_tensors(tensors)
    save_file(tensors, str(target), metadata={"skft": json.dumps(config)})
    return target


@pytest.fixture
def saved_classifier(registered, params, tmp_path):
    registered("file_cnn", builder_a)
    X, y = make_images(20)
    clf = FineTunedClassifier(backbone="file_cnn", mode="repurpose", **params).fit(X, y)
    path = tmp_path / "model.skft"
    # Every tensor in the file, frozen blocks included: what a forged file could change.
    clf.save(path, full=True)
    return path, X, y


def test_a_forged_prefix_key_and_cache_dir_write_nothing_anywhere(saved_classifier, tmp_path):
    path, X, _ = saved_classifier
    outside = tmp_path / "outside"

    def edit(config):
        config["fitted"]["prefix_key_"] = str(outside)
        config["params"]["cache_dir"] = str(tmp_path / "chosen_by_the_file")

    loaded = skft.load(_forge(path, tmp_path / "forged.skft", edit))
    clear_cache()
    loaded.predict(X)
    assert not outside.exists() and not (tmp_path / "chosen_by_the_file").exists()
    assert loaded.cache_dir is None and loaded.prefix_key_ != str(outside)
    clear_cache()
    loaded.set_params(cache_dir=str(tmp_path / "mine")).predict(X)
    assert not outside.exists()
    assert {entry.parent.parent.name for entry in (tmp_path / "mine").rglob("*.safetensors")} == {loaded.prefix_key_}


def test_a_file_with_other_frozen_tensors_does_not_poison_a_later_fit(saved_classifier, params, tmp_path):
    path, X, y = saved_classifier

    def scramble(tensors):
        tensors["backbone.block_0.0.0.weight"] = tensors["backbone.block_0.0.0.weight"].flip(0).contiguous()

    forged = skft.load(_forge(path, tmp_path / "forged.skft", edit_tensors=scramble))
    clear_cache()
    forged.predict_proba(X)
    after = FineTunedClassifier(backbone="file_cnn", mode="repurpose", **params).fit(X, y).predict_proba(X)
    clear_cache()
    cold = FineTunedClassifier(backbone="file_cnn", mode="repurpose", **params).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(after, cold, atol=1e-6)


def test_a_loaded_model_keys_the_cache_by_its_network(saved_classifier):
    path, X, _ = saved_classifier
    _, config = _read(path)
    assert "prefix_key_" not in config["fitted"] and config["params"]["cache_dir"] is None
    loaded = skft.load(path)
    assert loaded.prefix_key_ == prefix_key(loaded.net_.module_, loaded.precision)


def test_num_workers_resets_to_zero_at_load(saved_classifier, tmp_path):
    path, X, _ = saved_classifier
    loaded = skft.load(_forge(path, tmp_path / "forged.skft", lambda c: c["params"].update(num_workers=5000)))
    assert loaded.num_workers == 0


@pytest.mark.parametrize(
    "field, where, value",
    [
        ("batch_size", "params", MAX_BATCH_SIZE + 1),
        ("image_size", "params", MAX_IMAGE_SIZE + 1),
        ("image_size_", "fitted", 10**6),
    ],
)
def test_sizes_above_the_caps_are_refused_at_load(saved_classifier, tmp_path, field, where, value):
    path, _, _ = saved_classifier
    forged = _forge(path, tmp_path / "forged.skft", lambda c: c[where].update({field: value}))
    with pytest.raises(ValueError, match=rf"{field}={value}.*from 1 to"):
        skft.load(forged)


def test_files_written_by_b38b638_load_and_predict_as_when_saved():
    expected = json.loads((FIXTURES / "b38b638_expected.json").read_text())
    X, _ = make_images(expected["n_images"], n_classes=2, seed=expected["images_seed"])
    classifier = skft.load(FIXTURES / "b38b638_classifier.skft")
    regressor = skft.load(FIXTURES / "b38b638_regressor.skft")
    assert isinstance(classifier, FineTunedClassifier) and isinstance(regressor, FineTunedRegressor)
    assert classifier.prefix_key_ == prefix_key(classifier.net_.module_, classifier.precision)
    np.testing.assert_allclose(classifier.predict_proba(X), expected["classifier_proba"], atol=1e-6)
    np.testing.assert_allclose(regressor.predict(X), expected["regressor_predict"], atol=1e-5)
    # Those files predate lr_ in the file: it resolves from the saved parameters, trainable_layers_ from the network.
    assert classifier.lr_ == float(classifier.lr) and classifier.trainable_layers_ >= 1
