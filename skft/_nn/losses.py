"""The training losses: a per-sample loss weighted by ``sample_weight``, plus an optional penalty."""

from abc import ABCMeta, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn


class WeightedLoss(nn.Module, metaclass=ABCMeta):
    """Mean of a per-sample loss weighted by the last column of the target, plus a penalty.

    The estimators pack ``sample_weight`` into the target tensor so that weights travel with
    each batch through skorch's ordinary data path.

    Parameters
    ----------
    penalty : nn.Module, optional
        Called with no argument; its value is added to the training loss (e.g. L2-SP).
    """

    def __init__(self, penalty=None):
        super().__init__()
        self.penalty = penalty

    @abstractmethod
    def per_sample(self, outputs, targets):
        """Return one loss per sample; subclasses define it."""

    def forward(self, outputs, packed_targets):
        targets, weights = packed_targets[:, :-1], packed_targets[:, -1]
        losses = self.per_sample(outputs, targets)
        loss = (losses * weights).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
        if self.penalty is not None and self.training:
            loss = loss + self.penalty()
        return loss


class WeightedCrossEntropy(WeightedLoss):
    """Cross-entropy on logits, one value per sample (targets hold class indices as floats).

    Parameters
    ----------
    label_smoothing : float
    penalty : nn.Module, optional
    """

    def __init__(self, label_smoothing=0.0, penalty=None):
        super().__init__(penalty)
        self.label_smoothing = label_smoothing

    def per_sample(self, outputs, targets):
        return F.cross_entropy(outputs, targets[:, 0].long(), reduction="none", label_smoothing=self.label_smoothing)


class WeightedSquaredError(WeightedLoss):
    """Squared error averaged over targets, one value per sample."""

    def per_sample(self, outputs, targets):
        return ((outputs - targets) ** 2).mean(dim=1)


class WeightedBinaryCrossEntropy(WeightedLoss):
    """Binary cross-entropy on logits averaged over labels, one value per sample (multi-label targets).

    Parameters
    ----------
    label_smoothing : float
        Moves each 0/1 target this share of the way towards 0.5.
    penalty : nn.Module, optional
    """

    def __init__(self, label_smoothing=0.0, penalty=None):
        super().__init__(penalty)
        self.label_smoothing = label_smoothing

    def per_sample(self, outputs, targets):
        smoothed = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        return F.binary_cross_entropy_with_logits(outputs, smoothed, reduction="none").mean(dim=1)
