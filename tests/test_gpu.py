"""Precision and GPU behaviour: CPU checks run everywhere; tests marked ``gpu`` need CUDA."""

import gc
import os

import numpy as np
import pytest
import torch
from skorch import NeuralNet
from torch import nn

import skft
from skft import FineTunedClassifier, FineTunedRegressor
from skft._nn.precision import DynamicLossScale
from skft.callbacks import LossScaling, fp16_loss_scaling

from conftest import make_images

MODES = ["full", "repurpose", "feature_extraction"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# -- everywhere: validation, bf16 on CPU, the fp16 loss-scaling machinery ------------------------------------


def test_precision_must_be_a_known_option(tiny_params, images_binary):
    with pytest.raises(ValueError, match="precision"):
        FineTunedClassifier(precision="fp8", **tiny_params).fit(*images_binary)


def test_fp16_on_cpu_is_refused_with_the_fix(tiny_params, images_binary):
    with pytest.raises(ValueError, match=r"precision='fp16' needs a CUDA device.*precision='bf16'"):
        FineTunedClassifier(precision="fp16", **tiny_params).fit(*images_binary)


@pytest.mark.parametrize("mode", MODES)
def test_bf16_on_cpu_fits_and_returns_float32(tiny_params, images_binary, mode):
    X, y = images_binary
    reference = FineTunedClassifier(mode=mode, **tiny_params).fit(X, y)
    clf = FineTunedClassifier(mode=mode, precision="bf16", **tiny_params).fit(X, y)
    outputs = clf._network_outputs(X)
    assert outputs.dtype == np.float32 and np.isfinite(outputs).all()
    assert all(p.dtype == torch.float32 for p in clf.net_.module_.parameters())
    assert clf.net_.module_.autocast_dtype is torch.bfloat16
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(X), atol=0.2)


def test_bf16_cache_entries_are_float32_and_kept_apart_from_fp32(tiny_params, images_binary, tmp_path):
    from safetensors.torch import load_file

    X, y = images_binary
    skft.clear_cache()
    for precision in ("fp32", "bf16"):
        FineTunedClassifier(precision=precision, cache_dir=str(tmp_path), **tiny_params).fit(X, y)
    assert len(os.listdir(tmp_path)) == 2
    files = [os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names]
    assert {load_file(path)["activation"].dtype for path in files} == {torch.float32}


def test_bf16_model_saves_and_loads_with_its_precision(tiny_params, images_binary, tmp_path):
    X, y = images_binary
    clf = FineTunedRegressor(precision="bf16", **tiny_params).fit(X, y.astype(float))
    expected = clf.predict(X)
    clf.save(tmp_path / "model.skft")
    skft.clear_cache()
    loaded = skft.load(tmp_path / "model.skft")
    assert loaded.net_.module_.autocast_dtype is torch.bfloat16
    # bf16 kernels may round differently with the batch's make-up (cached vs end-to-end): a loose tolerance.
    np.testing.assert_allclose(loaded.predict(X), expected, atol=1e-2)


def _linear_net(criterion, callbacks=()):
    torch.manual_seed(0)
    return NeuralNet(
        nn.Linear(4, 1),
        criterion=criterion,
        lr=0.1,
        max_epochs=3,
        batch_size=8,
        train_split=None,
        callbacks=list(callbacks),
        optimizer=torch.optim.SGD,
    )


def test_loss_scaling_leaves_training_and_history_unchanged():
    X = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    y = X.sum(dim=1, keepdim=True)
    plain = _linear_net(nn.MSELoss()).fit(X, y)
    criterion, callback = fp16_loss_scaling(nn.MSELoss())
    scaled = _linear_net(criterion, [("loss_scaling", callback)]).fit(X, y)
    # A power-of-two scale, then its inverse: the gradients are exactly those of the plain fit.
    for a, b in zip(plain.module_.parameters(), scaled.module_.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert plain.history[:, "train_loss"] == scaled.history[:, "train_loss"]
    assert callback.loss_scale.skipped_steps == 0


def test_overflowing_gradients_skip_the_step_and_halve_the_scale():
    weight = nn.Parameter(torch.ones(3))
    weight.grad = torch.tensor([1.0, float("inf"), 2.0])
    callback = LossScaling(DynamicLossScale(init_scale=8.0))
    callback.on_grad_computed(None, [("weight", weight)])
    assert weight.grad is None
    assert callback.loss_scale.scale == 4.0 and callback.loss_scale.skipped_steps == 1
    optimizer = torch.optim.AdamW([weight], lr=1.0)
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.ones(3))


def test_finite_gradients_are_unscaled_and_the_scale_grows_after_the_interval():
    weight = nn.Parameter(torch.ones(2))
    callback = LossScaling(DynamicLossScale(init_scale=4.0, growth_interval=2))
    for _ in range(2):
        weight.grad = torch.tensor([4.0, 8.0])
        callback.on_grad_computed(None, [("weight", weight)])
    torch.testing.assert_close(weight.grad, torch.tensor([1.0, 2.0]))
    assert callback.loss_scale.scale == 8.0


# -- CUDA ----------------------------------------------------------------------------------------------------


def _cuda_params(tiny_params):
    return dict(tiny_params, device="cuda")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", MODES)
def test_fit_and_predict_on_cuda(tiny_params, images_binary, mode):
    X, y = images_binary
    clf = FineTunedClassifier(mode=mode, **_cuda_params(tiny_params)).fit(X, y)
    assert all(p.is_cuda for p in clf.net_.module_.parameters())
    outputs = clf._network_outputs(X)
    assert outputs.dtype == np.float32 and np.isfinite(outputs).all()
    assert set(clf.predict(X)) <= set(y)


@pytest.mark.gpu
@needs_cuda
def test_a_cuda_fit_leaves_the_random_states_as_they_were_and_is_reproducible(tiny_params, images_binary):
    X, y = images_binary
    torch.manual_seed(5)
    cpu, cuda = torch.random.get_rng_state(), torch.cuda.get_rng_state()
    # tiny_cnn's last block has Dropout, which draws from the GPU's generator while training.
    first = FineTunedClassifier(mode="full", **_cuda_params(tiny_params)).fit(X, y).predict_proba(X)
    assert torch.equal(torch.random.get_rng_state(), cpu) and torch.equal(torch.cuda.get_rng_state(), cuda)
    torch.cuda.manual_seed(6)
    np.testing.assert_array_equal(
        FineTunedClassifier(mode="full", **_cuda_params(tiny_params)).fit(X, y).predict_proba(X), first
    )


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("mode", ["full", "repurpose"])
def test_mixed_precision_on_cuda(tiny_params, images_binary, precision, mode):
    X, y = images_binary
    params = _cuda_params(tiny_params)
    reference = FineTunedClassifier(mode=mode, **params).fit(X, y)
    clf = FineTunedClassifier(mode=mode, precision=precision, **params).fit(X, y)
    outputs = clf._network_outputs(X)
    assert outputs.dtype == np.float32 and np.isfinite(outputs).all()
    assert all(p.dtype == torch.float32 for p in clf.net_.module_.parameters())
    assert np.isfinite(clf.history_[:, "train_loss"]).all()
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(X), atol=0.2)
    if precision == "fp16":
        assert dict(clf.net_.callbacks_)["loss_scaling"].loss_scale.skipped_steps <= 2


@pytest.mark.gpu
@needs_cuda
def test_gpu_memory_does_not_grow_over_fits_and_predict_keeps_nothing(tiny_params):
    X, y = make_images(64, n_classes=3, channels=3)
    params = _cuda_params(tiny_params)
    left_over = []
    for seed in range(5):
        clf = FineTunedClassifier(
            mode="repurpose", precision="fp16" if seed % 2 else "fp32", **dict(params, random_state=seed)
        ).fit(X, y)
        before_predict = torch.cuda.memory_allocated()
        clf.predict(X)
        assert torch.cuda.memory_allocated() == before_predict
        del clf
        gc.collect()
        left_over.append(torch.cuda.memory_allocated())
    assert left_over[-1] <= left_over[0]
