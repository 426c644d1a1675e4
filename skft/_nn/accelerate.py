"""One fit on several GPUs (or CPU processes) through Hugging Face Accelerate.

``device="accelerate"`` trains through skorch's :class:`~skorch.hf.AccelerateMixin`: Accelerate
wraps the network in ``DistributedDataParallel`` when the script was started by a launcher
(``accelerate launch``, ``torchrun``) with several processes, gives each process its own shard of
every epoch's batches, and averages the gradients. In a plain ``python`` process it trains on the
one device Accelerate picks (a GPU when there is one).

skft's own ``precision`` (autocast and fp16 loss scaling, as on one device) stays in charge of
mixed precision, so a model trains alike with and without Accelerate; the ``Accelerator`` is made
with ``mixed_precision="no"``.

Once trained, the net is an ordinary local skorch net on this process's device: it predicts without
talking to the other processes, pickles and saves like any other.
"""

import os

import torch
from skorch import NeuralNet
from skorch.hf import AccelerateMixin
from torch.nn.parallel import DistributedDataParallel

ACCELERATE = "accelerate"
_ACCELERATE_PRECISIONS = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
_SKFT_PRECISIONS = {value: key for key, value in _ACCELERATE_PRECISIONS.items()}


def make_accelerator(precision, unfreezes_gradually):
    """The ``Accelerator`` for one fit with ``device="accelerate"``.

    Parameters
    ----------
    precision : {"fp32", "bf16", "fp16"}
        The estimator's ``precision``; compared with a launcher's mixed-precision setting.
    unfreezes_gradually : bool
        Whether blocks start training part-way through the fit (warm-up, :class:`GradualUnfreezing`);
        ``DistributedDataParallel`` then has to look for parameters without a gradient on every step.

    Returns
    -------
    accelerate.Accelerator

    Raises
    ------
    ImportError
        When the ``accelerate`` package is not installed.
    ValueError
        When ``accelerate config`` / ``accelerate launch`` asked for a different mixed precision than
        ``precision``, or another ``Accelerator`` in this process already fixed one.
    """
    try:
        from accelerate import Accelerator, DistributedDataParallelKwargs
    except ImportError:
        raise ImportError(
            "device='accelerate' needs the accelerate package. Install it with pip install 'skft[accelerate]', "
            "or pass device='auto'."
        ) from None
    launcher_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher_precision not in ("no", _ACCELERATE_PRECISIONS[precision]):
        raise ValueError(
            f"accelerate's configuration asks for mixed_precision={launcher_precision!r}, but the estimator has "
            f"precision={precision!r}. skft applies mixed precision itself: pass precision="
            f"{_SKFT_PRECISIONS.get(launcher_precision, 'fp32')!r} to the estimator, or set mixed_precision to 'no' in "
            "accelerate config (or accelerate launch --mixed_precision no)."
        )
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if unfreezes_gradually else []
    try:
        return Accelerator(mixed_precision="no", kwargs_handlers=handlers)
    except ValueError as error:
        raise ValueError(
            f"device='accelerate' could not set up Accelerate in this process: {error} skft's fits use "
            "Accelerator(mixed_precision='no') and apply the estimator's precision themselves; do not create "
            "another Accelerator with mixed precision in the same process."
        ) from None


def accelerated_device(accelerator):
    """The device this process trains on, in the form skft's other devices take.

    Parameters
    ----------
    accelerator : accelerate.Accelerator

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda:<local rank>"``.
    """
    device = torch.device(accelerator.device)
    return "cpu" if device.type == "cpu" else str(device)


def unwrapped(module):
    """skft's network inside a ``DistributedDataParallel`` wrapper, or ``module`` itself.

    Parameters
    ----------
    module : nn.Module
        ``net.module_`` of a skorch net, during or after training.

    Returns
    -------
    nn.Module
    """
    return module.module if isinstance(module, DistributedDataParallel) else module


class AcceleratedNet(AccelerateMixin, NeuralNet):
    """A skorch ``NeuralNet`` that trains through Accelerate, then predicts as a local net.

    Differences from ``AccelerateMixin`` alone:

    - the network is unwrapped after the callbacks' ``on_train_end`` (an ``EarlyStopping`` that
      restores its best weights restores them into the wrapped network it saved them from), and
      the net then holds no ``Accelerator``: it predicts on this process's device without the other
      processes, and pickles;
    - the validation loss of each batch is averaged over the processes, so every process records
      the same ``valid_loss`` and early stopping ends the fit on the same epoch everywhere;
    - ``verbose=0`` prints nothing (the epoch table is printed by the main process otherwise).

    Parameters
    ----------
    *args, **kwargs
        Those of ``AccelerateMixin`` and ``NeuralNet``. Pass ``unwrap_after_train=False``: the net
        unwraps itself once the fit's callbacks are done.
    """

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        try:
            return super().partial_fit(X, y, classes=classes, **fit_params)
        finally:
            self._release_accelerator()

    def _release_accelerator(self):
        """Unwrap the network, keep it on this process's device and let go of the ``Accelerator``."""
        accelerator = self.accelerator
        self._unwrap_accelerator()
        self.device = accelerated_device(accelerator)
        accelerator.free_memory()
        self.accelerator = None

    def _initialize_accelerator(self):
        if self._wrapped_with_accelerator:
            return self
        # skft's criteria have no trainable parameters, and on several CPU processes Accelerate
        # would wrap them in DistributedDataParallel anyway, which refuses such a module: they are
        # only moved to the device.
        criteria, self._criteria = self._criteria, []
        try:
            for name in criteria:
                setattr(self, name + "_", getattr(self, name + "_").to(self.accelerator.device))
            return super()._initialize_accelerator()
        finally:
            self._criteria = criteria

    def _initialize_callbacks(self):
        if not self.verbose:
            # PrintLog writes to any sink but print whatever verbose says; Accelerate's default
            # sink (print on the main process only) would ignore verbose=0.
            self.callbacks__print_log__sink = print
        return super()._initialize_callbacks()

    def validation_step(self, batch, **fit_params):
        step = super().validation_step(batch, **fit_params)
        if self._wrapped_with_accelerator:
            step["loss"] = self.accelerator.reduce(step["loss"].detach(), reduction="mean")
        return step

    def get_iterator(self, dataset, training=False):
        if self._wrapped_with_accelerator:
            return super().get_iterator(dataset, training=training)
        return NeuralNet.get_iterator(self, dataset, training=training)

    def evaluation_step(self, batch, training=False):
        if self._wrapped_with_accelerator:
            return super().evaluation_step(batch, training=training)
        return NeuralNet.evaluation_step(self, batch, training=training)
