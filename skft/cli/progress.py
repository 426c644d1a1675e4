"""Progress of long work (model searches, comparisons), quiet unless a caller opens a report.

Inside a :func:`fit_progress` block, estimators carrying :class:`FitProgress` report their fits:

- on a terminal, one bar over the block's fits and one over the current fit's epochs, redrawn in place;
- anywhere else (a log file, CI, a notebook's captured output), whole lines only: one when a fit
  ends, and one after an epoch only when the last line is :data:`LINE_INTERVAL` seconds old -- never a
  carriage return or a cursor code;
- with ``verbose=0``, nothing.
"""

import contextlib
import contextvars
import sys
import time

from skorch.callbacks import Callback

LINE_INTERVAL = 10.0
"""Seconds between two lines about the same fit when the output is not a terminal."""

_REPORT = contextvars.ContextVar("skft_fit_report", default=None)


def is_terminal(stream):
    """Whether ``stream`` is an interactive terminal (where redrawing a line in place works).

    Parameters
    ----------
    stream : file-like

    Returns
    -------
    bool
    """
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


@contextlib.contextmanager
def fit_progress(n_fits, desc, *, verbose=1, stream=None):
    """Report the fits made inside the block; estimators carrying :class:`FitProgress` feed the report.

    Parameters
    ----------
    n_fits : int
        How many fits the work inside the block makes.
    desc : str
        What the fits are, e.g. ``"search"``; starts every line and labels the bar.
    verbose : int, default=1
        ``0``: report nothing.
    stream : file-like, optional
        Where to write; ``sys.stderr`` (as it is when the block opens) by default. Bars when it is a
        terminal, lines otherwise.

    Yields
    ------
    None
    """
    stream = sys.stderr if stream is None else stream
    if not verbose:
        report = None
    elif is_terminal(stream):
        report = _Bars(n_fits, desc, stream)
    else:
        report = _Lines(n_fits, desc, stream)
    token = _REPORT.set(report)
    try:
        yield
    finally:
        _REPORT.reset(token)
        if report is not None:
            report.close()


def _scores(net):
    """The last epoch's losses and validation scores, as ``name value`` text."""
    last = net.history[-1]
    names = [name for name in ("train_loss", "valid_loss", "valid_acc") if name in last]
    return ", ".join(f"{name} {last[name]:.3f}" for name in names)


class _Bars:
    """Two tqdm bars on a terminal: the block's fits (kept) and the current fit's epochs (cleared after it)."""

    def __init__(self, n_fits, desc, stream):
        from tqdm import tqdm

        self._tqdm = tqdm
        self._stream = stream
        self._fits = tqdm(total=n_fits, desc=desc, unit="fit", file=stream, position=0, dynamic_ncols=True)
        self._epochs = None

    def fit_begin(self, net):
        self._epochs = self._tqdm(
            total=net.max_epochs,
            desc="epochs",
            unit="epoch",
            file=self._stream,
            position=1,
            leave=False,
            dynamic_ncols=True,
        )

    def epoch_end(self, net):
        self._epochs.set_postfix_str(_scores(net), refresh=False)
        self._epochs.update()

    def fit_end(self, net):
        self._epochs.close()
        self._epochs = None
        self._fits.update()

    def close(self):
        if self._epochs is not None:  # a fit that raised
            self._epochs.close()
        self._fits.close()


class _Lines:
    """Whole lines for logs: one per finished fit, one per epoch at most every :data:`LINE_INTERVAL` seconds."""

    def __init__(self, n_fits, desc, stream):
        self._n_fits, self._desc, self._stream = n_fits, desc, stream
        self._done = 0
        self._fit_start = self._last_line = None

    def _write(self, text):
        self._stream.write(f"{self._desc}: fit {self._done + 1}/{self._n_fits}, {text}\n")
        self._stream.flush()
        self._last_line = time.monotonic()

    def fit_begin(self, net):
        self._fit_start = self._last_line = time.monotonic()

    def epoch_end(self, net):
        more_to_come = len(net.history) < net.max_epochs  # the last epoch is told by fit_end
        if more_to_come and time.monotonic() - self._last_line >= LINE_INTERVAL:
            self._write(f"epoch {len(net.history)}/{net.max_epochs}: {_scores(net)}")

    def fit_end(self, net):
        epochs = len(net.history)
        self._write(
            f"trained {epochs} epoch{'s' * (epochs != 1)} in {time.monotonic() - self._fit_start:.1f} s, {_scores(net)}"
        )
        self._done += 1

    def close(self):
        pass


class FitProgress(Callback):
    """A skorch callback that feeds the report of the enclosing :func:`fit_progress` block.

    Outside such a block it does nothing, so an estimator that carries it stays quiet in library
    use; it holds no state, so it clones and pickles freely.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        _notify("fit_begin", net)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        _notify("epoch_end", net)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        _notify("fit_end", net)


def _notify(event, net):
    report = _REPORT.get()
    if report is not None:
        getattr(report, event)(net)
