"""Progress bars for long work (model searches, comparisons), quiet unless a caller opens one."""

import contextlib
import contextvars

from skorch.callbacks import Callback
from tqdm import tqdm

_FITS_BAR = contextvars.ContextVar("skft_fits_bar", default=None)


@contextlib.contextmanager
def fit_progress(n_fits, desc):
    """Show a bar over ``n_fits`` fits; estimators carrying :class:`FitProgress` advance it.

    Parameters
    ----------
    n_fits : int
        How many fits the work inside the block makes.
    desc : str
        The bar's label.

    Yields
    ------
    tqdm
        The bar over fits (on stderr).
    """
    bar = tqdm(total=n_fits, desc=desc, unit="fit")
    token = _FITS_BAR.set(bar)
    try:
        yield bar
    finally:
        _FITS_BAR.reset(token)
        bar.close()


class FitProgress(Callback):
    """A skorch callback: a bar over the epochs of each fit, and one step of the :func:`fit_progress` bar per fit.

    Outside a :func:`fit_progress` block it does nothing, so an estimator that carries it stays
    quiet in library use; it holds no state between fits, so it clones and pickles freely.
    """

    def initialize(self):
        self.epochs_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        active = _FITS_BAR.get() is not None
        self.epochs_ = tqdm(total=net.max_epochs, desc="epochs", unit="epoch", leave=False) if active else None

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if self.epochs_ is not None:
            self.epochs_.set_postfix(train_loss=f"{net.history[-1, 'train_loss']:.3f}")
            self.epochs_.update()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if self.epochs_ is not None:
            self.epochs_.close()
            self.epochs_ = None
            _FITS_BAR.get().update()
