"""Public skorch callbacks for fine-tuning: unfreezing schedules.

They work with any skorch net whose module is skft's network (``net_.module_`` of a fitted
estimator), and are what ``warmup_epochs`` uses inside the estimators.
"""

from skorch.callbacks import Callback

from ._nn.accelerate import unwrapped


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
        module.set_trainable_blocks(self.trainable_at(epoch, len(module.backbone) - module.n_frozen))
