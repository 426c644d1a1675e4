"""Every skorch callback skft uses: the public unfreezing schedule, and the ones the estimators add to a fit.

:class:`GradualUnfreezing` works with any skorch net whose module is skft's network (``net_.module_``
of a fitted estimator), and is what ``warmup_epochs`` uses inside the estimators. The others are
added by the estimators: counting completed epochs (to tell an interrupt from early stopping), early
stopping that keeps the stopping epoch's row in the table, the learning-rate schedule, and fp16 loss
scaling.
"""

import torch
from skorch.callbacks import Callback, EarlyStopping, LRScheduler, PrintLog

from ._nn.accelerate import unwrapped
from ._nn.optim import WarmupThenDecay
from ._nn.precision import DynamicLossScale, GradientScaledLoss, unscale_gradients

__all__ = [
    "EarlyStoppingWithLastRow",
    "EpochsCompleted",
    "GradualUnfreezing",
    "LossScaling",
    "fp16_loss_scaling",
    "schedule_callback",
]


class GradualUnfreezing(Callback):
    """Unfreeze the backbone's trainable blocks from the top, a few at a time.

    Until ``start_epoch`` only the head trains; from then on ``blocks_per_step`` more blocks
    (counted back from the top) train every ``every`` epochs, up to all the blocks the mode
    lets train. Blocks waiting their turn get no gradient and stay in eval mode. With
    ``start_epoch=w`` and a large ``blocks_per_step`` this is LP-FT: a linear probe for ``w``
    epochs, then fine-tuning.

    Parameters
    ----------
    every : int, default=1
        Epochs between two unfreezing steps.
    start_epoch : int, default=0
        The first epoch (0-based) at which blocks train.
    blocks_per_step : int, default=1
        Blocks unfrozen at each step.

    Examples
    --------
    >>> from skft import FineTunedClassifier
    >>> from skft.callbacks import GradualUnfreezing
    >>> clf = FineTunedClassifier(mode="full", callbacks=[GradualUnfreezing(every=2)])
    """

    def __init__(self, every=1, start_epoch=0, blocks_per_step=1):
        self.every = every
        self.start_epoch = start_epoch
        self.blocks_per_step = blocks_per_step

    def initialize(self):
        for name in ("every", "blocks_per_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int. Got {value!r} instead.")
        if not isinstance(self.start_epoch, int) or self.start_epoch < 0:
            raise ValueError(f"start_epoch must be a non-negative int. Got {self.start_epoch!r} instead.")
        return self

    def trainable_at(self, epoch, maximum):
        """How many blocks train in ``epoch`` (0-based) when at most ``maximum`` may.

        Parameters
        ----------
        epoch : int
        maximum : int

        Returns
        -------
        int
        """
        if epoch < self.start_epoch:
            return 0
        return min(maximum, self.blocks_per_step * (1 + (epoch - self.start_epoch) // self.every))

    def on_epoch_begin(self, net, **kwargs):
        module = unwrapped(net.module_)
        epoch = len(net.history) - 1
        module.set_trainable_blocks(self.trainable_at(epoch, module.n_blocks_after_prefix))


class EpochsCompleted(Callback):
    """Count the epochs whose scoring callbacks have all run (skft adds it to every fit).

    Attributes
    ----------
    completed_ : int
    """

    def on_train_begin(self, net, **kwargs):
        self.completed_ = 0

    def on_epoch_end(self, net, **kwargs):
        self.completed_ += 1


class EarlyStoppingWithLastRow(EarlyStopping):
    """skorch's ``EarlyStopping``, with the epoch that ends the fit printed in the epoch table.

    skorch runs ``PrintLog`` after every other callback, so an ``EarlyStopping`` that stops the fit
    (by raising ``KeyboardInterrupt`` at the end of an epoch) leaves that epoch out of the table. This
    one prints the row first, then its "Stopping since ..." line.
    """

    def on_epoch_end(self, net, **kwargs):
        sink, messages = self.sink, []
        self.sink = messages.append
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            for _, callback in net.callbacks_:
                if isinstance(callback, PrintLog):
                    callback.on_epoch_end(net, **kwargs)
            raise
        finally:
            self.sink = sink
            for message in messages:
                self._sink(message, verbose=net.verbose)


class LossScaling(Callback):
    """Unscale fp16 gradients before the optimizer step; skip the step when any is inf or NaN.

    Parameters
    ----------
    loss_scale : DynamicLossScale
        Shared with the :class:`GradientScaledLoss` criterion.
    """

    def __init__(self, loss_scale):
        self.loss_scale = loss_scale

    def on_grad_computed(self, net, named_parameters, **kwargs):
        parameters = [parameter for _, parameter in named_parameters if parameter.grad is not None]
        finite = unscale_gradients([parameter.grad for parameter in parameters], self.loss_scale.scale)
        if not finite:
            for parameter in parameters:
                parameter.grad = None
        self.loss_scale.update(finite)


def fp16_loss_scaling(criterion):
    """Wrap ``criterion`` for fp16 training; return it with the callback that completes the scaling.

    Parameters
    ----------
    criterion : nn.Module

    Returns
    -------
    criterion : GradientScaledLoss
    callback : LossScaling
    """
    loss_scale = DynamicLossScale()
    return GradientScaledLoss(criterion, loss_scale), LossScaling(loss_scale)


def schedule_callback(lr_schedule, total_steps):
    """A skorch ``LRScheduler`` for ``"cosine"`` or ``"onecycle"``, stepped every batch.

    ``"cosine"``: linear warm-up over the first 10% of steps from 0.1x, then cosine decay to 0.
    ``"onecycle"``: linear warm-up over 30% from lr/25, then cosine decay to lr/1e4 (the
    one-cycle policy with PyTorch's default factors).

    Parameters
    ----------
    lr_schedule : {"cosine", "onecycle"}
    total_steps : int
        Optimizer steps in the whole fit.

    Returns
    -------
    skorch.callbacks.LRScheduler
    """
    if lr_schedule == "cosine":
        multiplier = WarmupThenDecay(total_steps, 0.1, 0.1, 0.0)
    else:
        multiplier = WarmupThenDecay(total_steps, 0.3, 1 / 25, 1e-4 / 25)
    return LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=multiplier, step_every="batch")
