"""``device="accelerate"``: one fit through Hugging Face Accelerate (skorch's AccelerateMixin).

In one process it must train exactly the model ``device="cpu"`` trains; on two CPU processes
started by ``torchrun`` (gloo DistributedDataParallel, the multi-GPU code path with another
backend) both processes must end with the same model, each having trained on half of every epoch.
"""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import skft
from skft import FineTunedClassifier, FineTunedRegressor

from conftest import make_images

accelerate_state = pytest.importorskip("accelerate.state")

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "accelerate_worker.py")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(autouse=True)
def accelerate_device(request, monkeypatch):
    """Make Accelerate pick the CPU (the GPU for tests marked ``gpu``), whatever earlier tests chose.

    Accelerate keeps its device in a per-process singleton; its own tests reset it the same way.
    """
    if request.node.get_closest_marker("gpu") is None:
        monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    else:
        monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    accelerate_state.AcceleratorState._reset_state(reset_partial_state=True)
    yield
    accelerate_state.AcceleratorState._reset_state(reset_partial_state=True)


# -- one process -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "repurpose", "feature_extraction"])
def test_one_process_trains_the_model_a_plain_fit_trains(tiny_params, images_binary, mode):
    X, y = images_binary
    params = {**tiny_params, "mode": mode, "early_stopping": True, "lr_schedule": "cosine"}
    plain = FineTunedClassifier(**params).fit(X, y)
    accelerated = FineTunedClassifier(**{**params, "device": "accelerate"}).fit(X, y)
    np.testing.assert_allclose(accelerated.predict_proba(X), plain.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(accelerated.history_[:, "valid_loss"], plain.history_[:, "valid_loss"], atol=1e-6)


def test_the_fitted_net_is_local_and_holds_no_accelerator(tiny_params, images_binary, tmp_path):
    X, y = images_binary
    clf = FineTunedClassifier(**{**tiny_params, "device": "accelerate"}).fit(X, y)
    assert clf.net_.accelerator is None
    assert clf.net_.device == "cpu"
    assert not isinstance(clf.net_.module_, torch.nn.parallel.DistributedDataParallel)
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    path = tmp_path / "model.skft"
    clf.save(path)
    skft.clear_cache()
    loaded = skft.load(path)
    assert loaded.get_params()["device"] == "accelerate"
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)


def test_regressor_and_warm_start_work_through_accelerate(tiny_params):
    X, labels = make_images(30, n_classes=3)
    y = labels.astype(float)
    reg = FineTunedRegressor(**{**tiny_params, "device": "accelerate", "warm_start": True}).fit(X, y)
    first = reg.predict(X)
    reg.fit(X, y)
    assert len(reg.history_) == 2 * tiny_params["max_epochs"]
    assert not np.allclose(reg.predict(X), first)


def test_verbose_zero_prints_nothing(tiny_params, images_binary, capsys):
    FineTunedClassifier(**{**tiny_params, "device": "accelerate"}).fit(*images_binary)
    assert capsys.readouterr().out == ""
    FineTunedClassifier(**{**tiny_params, "device": "accelerate", "verbose": 1}).fit(*images_binary)
    assert "train_loss" in capsys.readouterr().out


def test_bf16_through_accelerate_matches_bf16_without_it(tiny_params, images_binary):
    X, y = images_binary
    plain = FineTunedClassifier(**{**tiny_params, "precision": "bf16"}).fit(X, y)
    accelerated = FineTunedClassifier(**{**tiny_params, "precision": "bf16", "device": "accelerate"}).fit(X, y)
    np.testing.assert_allclose(accelerated.predict_proba(X), plain.predict_proba(X), atol=1e-6)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_one_process_on_cuda_trains_the_model_a_plain_cuda_fit_trains(tiny_params, images_binary, precision):
    X, y = images_binary
    params = {**tiny_params, "mode": "full", "precision": precision}
    plain = FineTunedClassifier(**{**params, "device": "cuda"}).fit(X, y)
    accelerated = FineTunedClassifier(**{**params, "device": "accelerate"}).fit(X, y)
    assert accelerated.net_.device == "cuda:0"
    assert all(parameter.is_cuda for parameter in accelerated.net_.module_.parameters())
    np.testing.assert_allclose(accelerated.predict_proba(X), plain.predict_proba(X), atol=1e-4)


# -- errors ------------------------------------------------------------------------------------------------


def test_missing_accelerate_names_the_install_command(tiny_params, images_binary, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    clf = FineTunedClassifier(**{**tiny_params, "device": "accelerate"})
    with pytest.raises(ImportError, match=r"pip install 'skft\[accelerate\]'"):
        clf.fit(*images_binary)
    assert not hasattr(clf, "net_")


def test_a_launcher_precision_that_differs_is_refused_with_the_fix(tiny_params, images_binary, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(ValueError, match=r"mixed_precision='bf16'.*pass precision='bf16'"):
        FineTunedClassifier(**{**tiny_params, "device": "accelerate"}).fit(*images_binary)
    FineTunedClassifier(**{**tiny_params, "device": "accelerate", "precision": "bf16"}).fit(*images_binary)


def test_an_accelerator_the_user_made_with_mixed_precision_is_reported(tiny_params, images_binary):
    from accelerate import Accelerator

    Accelerator(mixed_precision="bf16")
    clf = FineTunedClassifier(**{**tiny_params, "device": "accelerate"})
    with pytest.raises(ValueError, match="could not set up Accelerate.*mixed_precision='no'"):
        clf.fit(*images_binary)
    assert not hasattr(clf, "net_")


def test_fp16_through_accelerate_on_cpu_is_refused(tiny_params, images_binary):
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
        FineTunedClassifier(**{**tiny_params, "device": "accelerate", "precision": "fp16"}).fit(*images_binary)


def test_an_unknown_device_lists_accelerate(tiny_params, images_binary):
    with pytest.raises(ValueError, match="'accelerate'"):
        FineTunedClassifier(**{**tiny_params, "device": "tpu9"}).fit(*images_binary)


# -- two processes -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    """Run tests/accelerate_worker.py on two CPU processes (torchrun, gloo) and read both ranks' results."""
    out_dir = tmp_path_factory.mktemp("accelerate")
    # The workers import the skft under test (this checkout), not whichever one is installed.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        WORKER,
        str(out_dir),
    ]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-5000:]
    return [json.loads((out_dir / f"rank_{rank}.json").read_text()) for rank in (0, 1)]


def test_both_processes_end_with_the_same_model(two_process_results):
    first, second = two_process_results
    for name in first:
        np.testing.assert_array_equal(first[name]["proba"], second[name]["proba"], err_msg=name)
        assert first[name]["backbone_sums"] == second[name]["backbone_sums"], name
        assert first[name]["net_class"] == "AcceleratedNet"
        assert first[name]["net_device"] == "cpu"
        assert not first[name]["holds_accelerator"]


def test_each_process_trains_on_half_of_every_epoch(two_process_results):
    for result in two_process_results:
        # 40 images. With early stopping 20 train: 5 batches of 4, padded to 6 so that both processes
        # take the same number of steps.
        assert result["feature_extraction"]["train_images_per_epoch"] == [20, 20, 20]
        assert result["repurpose_early_stopping"]["train_images_per_epoch"] == [12, 12, 12]
        assert result["full_warmup"]["train_images_per_epoch"] == [24, 24, 24]


def test_gradients_are_averaged_over_the_processes(two_process_results, tiny_params):
    """Two processes with 20 images each take the step one process takes with all 40."""
    X, y = make_images(40, n_classes=2)
    single = FineTunedClassifier(**{**tiny_params, "mode": "feature_extraction", "batch_size": 40}).fit(X, y)
    np.testing.assert_allclose(
        two_process_results[0]["feature_extraction"]["proba"], single.predict_proba(X), atol=1e-5
    )


def test_validation_loss_is_the_same_on_every_process(two_process_results):
    first, second = (result["repurpose_early_stopping"]["valid_loss"] for result in two_process_results)
    assert None not in first
    assert first == second


def test_blocks_held_by_warm_up_do_not_move_under_distributed_training(two_process_results):
    for result in two_process_results:
        start, after_warm_up, after_next = result["full_warmup"]["backbone_sums"][:3]
        assert after_warm_up == start
        assert after_next != start
