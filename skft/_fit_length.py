"""How long a fit trained, and a warning when its training loss barely moved."""

import warnings

from sklearn.exceptions import ConvergenceWarning

#: A fit whose last epoch's training loss is above this share of its first epoch's warns.
BARELY_MOVED = 0.98


def count_training_steps(history):
    """Optimizer steps in a skorch history: its training batches.

    Parameters
    ----------
    history : skorch.history.History

    Returns
    -------
    int
    """
    return sum(1 for row in history for batch in row["batches"] if "train_loss" in batch)


def warn_if_loss_barely_moved(history, max_epochs, lr):
    """Warn (``ConvergenceWarning``) when the last epoch's training loss is almost the first's.

    Parameters
    ----------
    history : skorch.history.History
    max_epochs, lr
        The estimator's parameters, quoted in the message.
    """
    losses = [row["train_loss"] for row in history if "train_loss" in row]
    if len(losses) < 2 or not losses[-1] > BARELY_MOVED * losses[0]:
        return
    warnings.warn(
        f"The training loss barely moved: {losses[0]:.4g} in the first epoch, {losses[-1]:.4g} in the last, over "
        f"{count_training_steps(history)} optimizer steps. The head may still be near where it started. Train "
        f"longer (max_epochs={max_epochs!r}; 'auto' gives small data at least 100 steps) or faster (lr={lr!r}).",
        ConvergenceWarning,
        stacklevel=4,
    )
