"""The fit lifecycle around skorch: interrupted and failed fits, and ``warm_start``.

skorch treats ``KeyboardInterrupt`` as "stop training" and swallows it (``NeuralNet.partial_fit``),
which is also how its ``EarlyStopping`` ends a fit. skft keeps what a Ctrl-C left (the weights and
history reached so far) but re-raises it, so that a grid search stops instead of scoring a truncated
fit. It tells the two apart by counting completed epochs: a fit that ran fewer than ``max_epochs``
and was not ended by an ``EarlyStopping`` callback was interrupted.

A fit that fails, or is interrupted before training starts, leaves the estimator as it was: a
half-updated estimator (new ``classes_``, old network) would predict wrong labels.
"""

import copy
import functools

from skorch.callbacks import EarlyStopping
from skorch.history import History

from ..backbones import describe_mismatch
from ..callbacks import EpochsCompleted

_PROGRESS = "skft_epochs_completed"


class FitInterrupted(KeyboardInterrupt):
    """What ``fit`` raises after a Ctrl-C during training, once it has kept what training reached."""


def keeps_previous_fit_on_error(fit):
    """Decorate ``fit`` so that an exception leaves the fitted attributes as they were before the call.

    :class:`FitInterrupted` is the exception: its fit has deliberately kept the new, partly
    trained network.

    Parameters
    ----------
    fit : callable
        ``fit(estimator, *args, **kwargs)``.

    Returns
    -------
    callable
    """

    @functools.wraps(fit)
    def guarded_fit(estimator, *args, **kwargs):
        before = _fitted_attributes(estimator)
        try:
            return fit(estimator, *args, **kwargs)
        except FitInterrupted:
            raise
        except BaseException:
            for name in set(_fitted_attributes(estimator)) - set(before):
                delattr(estimator, name)
            vars(estimator).update(before)
            raise

    return guarded_fit


def _fitted_attributes(estimator):
    return {name: value for name, value in vars(estimator).items() if name.endswith("_") and not name.startswith("_")}


def fit_reporting_interrupt(net, X, y):
    """Fit a fresh skorch ``net`` and tell whether a ``KeyboardInterrupt`` cut the fit short.

    The counter goes first among the user's callbacks: after skorch's own scoring callbacks, so an
    epoch counts once its losses are in the history.

    Parameters
    ----------
    net : skorch.NeuralNet
        Not yet initialised; fitted in place.
    X, y
        What ``net.fit`` takes.

    Returns
    -------
    bool
        True when the fit was interrupted (Ctrl-C, or a callback raising ``KeyboardInterrupt``),
        False when it ran every epoch or an ``EarlyStopping`` callback ended it.
    """
    progress = EpochsCompleted()
    net.callbacks = [(_PROGRESS, progress), *(net.callbacks or [])]
    net.fit(X, y)
    return progress.completed_ < net.max_epochs and not _stopped_early(net)


def _stopped_early(net):
    return any(
        isinstance(callback, EarlyStopping) and callback.misses_ >= callback.patience for _, callback in net.callbacks_
    )


def fit_interrupted(history):
    """The :class:`FitInterrupted` that ``fit`` raises after keeping the interrupted training's state.

    Parameters
    ----------
    history : skorch.History

    Returns
    -------
    FitInterrupted
    """
    return FitInterrupted(
        f"fit was interrupted during epoch {len(history)}. The estimator keeps the weights and history reached so "
        "far (it can predict); fit again with warm_start=True to continue from them."
    )


def continue_from(network, previous):
    """Give a newly built network the weights of a previous fit's network (``warm_start=True``).

    Tensors are copied and assigned, never written into the new network's own tensors (which may be
    shared, frozen, with other estimators).

    Parameters
    ----------
    network : FineTuneNetwork
        Built for this fit.
    previous : nn.Module
        ``net_.module_`` of the previous fit.

    Raises
    ------
    ValueError
        When the two networks differ in a tensor's name or shape.
    """
    state = previous.state_dict()
    problem = describe_mismatch(network.state_dict(), state, source="the fitted network", target="the new one")
    if problem is not None:
        raise ValueError(
            f"warm_start=True cannot continue the previous fit: the network built now differs from it ({problem}). "
            "Keep the backbone, feature_layer, head and the classes or number of targets of the previous fit, or "
            "pass warm_start=False to start again from the pretrained weights."
        )
    network.load_state_dict({name: tensor.detach().clone() for name, tensor in state.items()}, assign=True)


def continued_history(previous, history):
    """The history of a continued fit (``warm_start=True``): the previous epochs, then this fit's.

    Like skorch's ``partial_fit``, epochs are numbered on from the previous fit. The callbacks of
    the continued fit saw only its own epochs (a warm-up or LR schedule runs again in full).

    Parameters
    ----------
    previous : skorch.History
        ``history_`` of the fit being continued; not changed.
    history : skorch.History
        The continued fit's own epochs.

    Returns
    -------
    skorch.History
    """
    combined = History(copy.deepcopy(list(previous)))
    for row in history:
        combined.append({**row, "epoch": len(combined) + 1} if "epoch" in row else row)
    return combined
