"""The identity rule, as a property: whatever sequence of registrations, module edits, saves, loads, clones and fits
ran before in this process (and in another process sharing a ``cache_dir``), a prediction equals the same
computation done in a new process with every cache empty.

Sequences are drawn from a seeded generator; every fit they make is then recomputed in one fresh process with
``cache_bytes=0`` and no ``cache_dir``, and the probabilities are compared.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

import skft
from skft import FineTunedClassifier, register_backbone

from conftest import make_images
from identity_nets import VARIANTS

TESTS = Path(__file__).parent
NAME = "identity_property_net"
SIZE = 16
SHIPPED = "efficientnet_lite0"
ACTIONS = ("register", "fit", "fit", "fit_shipped", "edit", "edit", "save_load", "clone_fit")


def _params(variant, mode, seed, cache_dir=None):
    """A small fit of the registered net (``variant`` names its builder) or of the shipped backbone."""
    backbone, size = (SHIPPED, 32) if variant == SHIPPED else (NAME, SIZE)
    return dict(
        backbone=backbone,
        mode=mode,
        image_size=size,
        max_epochs=2,
        batch_size=8,
        lr=1e-2,
        random_state=seed,
        device="cpu",
        cache_dir=cache_dir,
    )


def _run_sequence(rng, X, y, cache_dir, tmp_path, n_steps=10):
    """Apply random actions; return the fits made as (variant, mode, seed, probabilities).

    A model the sequence edited in place is not a fresh fit: it is not recorded, but its file must load
    to the same predictions as the edited model (compared with the cache emptied).
    """
    variant = str(rng.choice(sorted(VARIANTS)))
    register_backbone(NAME, VARIANTS[variant], image_size=SIZE, min_image_size=4, overwrite=True)
    records, last = [], None
    for step in range(n_steps):
        action = str(rng.choice(ACTIONS))
        if action == "register":
            variant = str(rng.choice(sorted(VARIANTS)))
            register_backbone(NAME, VARIANTS[variant], image_size=SIZE, min_image_size=4, overwrite=True)
        elif action in ("fit", "fit_shipped", "clone_fit") or last is None:
            mode = str(rng.choice(["feature_extraction", "repurpose"]))
            seed = int(rng.integers(3))
            fitted_variant = SHIPPED if action == "fit_shipped" else variant
            estimator = FineTunedClassifier(**_params(fitted_variant, mode, seed, cache_dir))
            if action == "clone_fit" and last is not None:
                fitted_variant = SHIPPED if last["variant"] == SHIPPED else variant
                estimator = clone(last["estimator"]).set_params(mode=mode, random_state=seed)
            estimator.fit(X, y)
            last = dict(estimator=estimator, variant=fitted_variant, mode=mode, seed=seed, edited=False)
            records.append((fitted_variant, mode, seed, estimator.predict_proba(X)))
        elif action == "edit":
            with torch.no_grad():
                for tensor in last["estimator"].net_.module_.parameters():
                    tensor.add_(0.5)
            last["edited"] = True
        elif action == "save_load" and last["variant"] in (variant, SHIPPED):
            # a file loads against the registration it was saved with
            path = tmp_path / f"model_{step}.skft"
            last["estimator"].save(path)
            skft.clear_cache()
            loaded = skft.load(path).predict_proba(X)
            skft.clear_cache()
            np.testing.assert_allclose(loaded, last["estimator"].predict_proba(X), atol=1e-6)
            if not last["edited"]:
                records.append((last["variant"], last["mode"], last["seed"], loaded))
    return records


_REFERENCE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    import skft
    from conftest import make_images
    from identity_nets import VARIANTS
    skft.set_config(cache_bytes=0)
    X, y = make_images(24, seed=3)
    out = []
    for variant, mode, seed, cache_dir in json.loads(sys.argv[1]):
        if variant in VARIANTS:
            skft.register_backbone({name!r}, VARIANTS[variant], image_size={size}, min_image_size=4, overwrite=True)
        backbone, size = ({name!r}, {size}) if variant in VARIANTS else (variant, 32)
        params = dict(backbone=backbone, mode=mode, image_size=size, max_epochs=2, batch_size=8, lr=1e-2,
                      random_state=seed, device="cpu")
        out.append(skft.FineTunedClassifier(**params).fit(X, y).predict_proba(X).tolist())
    print(json.dumps(out))
    """
)


def _fresh_process_probabilities(records):
    """What each recorded fit predicts when computed in a new process with every cache empty."""
    jobs = [[variant, mode, seed, None] for variant, mode, seed, _ in records]
    script = _REFERENCE.format(tests=str(TESTS), name=NAME, size=SIZE)
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(jobs)], capture_output=True, text=True, check=True, cwd=TESTS
    )
    return [np.array(p) for p in json.loads(result.stdout.strip().splitlines()[-1])]


@pytest.mark.parametrize("sequence_seed", [0, 1, 2])
def test_every_prediction_equals_a_fresh_cold_process(sequence_seed, tmp_path):
    skft.clear_cache()
    X, y = make_images(24, seed=3)
    rng = np.random.default_rng(sequence_seed)
    records = _run_sequence(rng, X, y, tmp_path / "cache", tmp_path)
    for (variant, mode, seed, got), expected in zip(records, _fresh_process_probabilities(records)):
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{variant} {mode} seed={seed}")


_SHARER = textwrap.dedent(
    """
    import json, sys
    import torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    import skft
    from conftest import make_images
    from identity_nets import VARIANTS
    X, y = make_images(24, seed=3)
    variant, cache_dir = sys.argv[1], sys.argv[2]
    skft.register_backbone({name!r}, VARIANTS[variant], image_size={size}, min_image_size=4, overwrite=True)
    params = dict(backbone={name!r}, mode="repurpose", image_size={size}, max_epochs=2, batch_size=8, lr=1e-2,
                  random_state=0, device="cpu", cache_dir=cache_dir)
    print(json.dumps(skft.FineTunedClassifier(**params).fit(X, y).predict_proba(X).tolist()))
    """
)


def test_two_processes_sharing_a_cache_dir_with_different_builders_under_one_name(tmp_path):
    script = _SHARER.format(tests=str(TESTS), name=NAME, size=SIZE)
    probabilities = {}
    for variant in ("relu", "tanh", "stride1", "reseeded", "relu"):
        result = subprocess.run(
            [sys.executable, "-c", script, variant, str(tmp_path / "shared")],
            capture_output=True,
            text=True,
            check=True,
            cwd=TESTS,
        )
        probabilities.setdefault(variant, []).append(np.array(json.loads(result.stdout.strip().splitlines()[-1])))
    expected = _fresh_process_probabilities([(variant, "repurpose", 0, None) for variant in sorted(probabilities)])
    for (variant, runs), reference in zip(sorted(probabilities.items()), expected):
        for got in runs:
            np.testing.assert_allclose(got, reference, atol=1e-5, err_msg=variant)
