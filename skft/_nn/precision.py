"""Mixed precision: autocast in the network's forward, and dynamic loss scaling for fp16.

``precision="bf16"`` runs the network's forward under ``torch.autocast`` with bfloat16 (CPU and
CUDA); ``"fp16"`` with float16 (CUDA only). Parameters, optimizer state and everything returned to
the user stay float32.

float16 gradients underflow without loss scaling. torch's ``GradScaler`` needs to own the
optimizer step (``scaler.step(optimizer)``), which skorch performs itself, and skft wraps skorch
rather than subclassing it. So the scaling is split across skorch's two public seams instead:

- the criterion is wrapped in :class:`GradientScaledLoss`, whose value is the loss unchanged (so
  skorch's history records the true loss) but whose gradient is multiplied by the current scale;
- the :class:`LossScaling` callback runs in ``on_grad_computed`` (after ``backward``, before the
  optimizer step): it divides the gradients by the scale and, when any is inf or NaN, drops every
  gradient (torch optimizers skip parameters whose ``grad`` is None, so the step is skipped) and
  halves the scale; after ``growth_interval`` finite steps in a row it doubles the scale.

These are the rules and defaults of ``torch.amp.GradScaler``.
"""

from contextlib import nullcontext

import torch
from torch import nn

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision):
    """The dtype the forward autocasts to for ``precision``, or None for float32.

    Parameters
    ----------
    precision : {"fp32", "bf16", "fp16"}

    Returns
    -------
    torch.dtype or None
    """
    return PRECISIONS[precision]


def check_precision(precision, device):
    """Raise when ``precision`` cannot run on ``device``.

    Parameters
    ----------
    precision : {"fp32", "bf16", "fp16"}
    device : str
        A resolved device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Raises
    ------
    ValueError
        For ``"fp16"`` off CUDA, and ``"bf16"`` on a GPU without bfloat16 support.
    """
    on_cuda = torch.device(device).type == "cuda"
    if precision == "fp16" and not on_cuda:
        raise ValueError(
            f"precision='fp16' needs a CUDA device, but the fit runs on {device!r}. Pass precision='bf16' "
            "(supported on CPU) or 'fp32', or device='cuda'."
        )
    if precision == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"precision='bf16' is not supported by this GPU ({torch.cuda.get_device_name(device)}). "
            "Pass precision='fp16' or 'fp32'."
        )


def autocast_context(dtype, device_type):
    """``torch.autocast`` for ``dtype`` on ``device_type``, or a no-op when ``dtype`` is None.

    Parameters
    ----------
    dtype : torch.dtype or None
    device_type : str
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    context manager
    """
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type, dtype=dtype)


class DynamicLossScale:
    """The current fp16 loss scale and its update rule (``torch.amp.GradScaler``'s defaults).

    Parameters
    ----------
    init_scale : float, default=2**16
    growth_factor : float, default=2.0
    backoff_factor : float, default=0.5
    growth_interval : int, default=2000
        Finite steps in a row after which the scale grows.
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.scale = init_scale
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.finite_steps = 0
        self.skipped_steps = 0

    def update(self, finite):
        """Grow the scale after enough finite steps; shrink it after an overflow."""
        if finite:
            self.finite_steps += 1
            if self.finite_steps == self.growth_interval:
                self.scale *= self.growth_factor
                self.finite_steps = 0
        else:
            self.scale *= self.backoff_factor
            self.finite_steps = 0
            self.skipped_steps += 1


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx, tensor, scale):
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class GradientScaledLoss(nn.Module):
    """A criterion whose training loss keeps its value but back-propagates ``scale`` times its gradient.

    Parameters
    ----------
    loss : nn.Module
        The criterion to wrap.
    loss_scale : DynamicLossScale
        Shared with the :class:`LossScaling` callback.
    """

    def __init__(self, loss, loss_scale):
        super().__init__()
        self.loss = loss
        self.loss_scale = loss_scale

    def forward(self, outputs, targets):
        value = self.loss(outputs, targets)
        return _ScaleGradient.apply(value, self.loss_scale.scale) if self.training else value


def unscale_gradients(gradients, scale):
    """Divide ``gradients`` by ``scale`` in place and say whether they are all finite.

    Parameters
    ----------
    gradients : list of Tensor
    scale : float

    Returns
    -------
    bool
    """
    if not gradients:
        return True
    for gradient in gradients:
        gradient.mul_(1.0 / scale)
    return bool(torch.stack([torch.isfinite(gradient).all() for gradient in gradients]).all())
