"""The ``"auto"`` defaults: learning rate per mode and trainable blocks, per backbone.

The values for ``efficientnet_lite0`` and ``all-MiniLM-L6-v2`` come from
``benchmarks/defaults_sweep.py`` (the numbers and the commands are in ``docs/defaults.md``); their
``"scratch"`` rates (``weights=None``) are measured for Lite0 and taken from the literature for MiniLM
(BERT-style encoders train from scratch at about 1e-4). Any other backbone (a torchvision name, your
own network) gets the ``FALLBACK`` row: values that were safe for the shipped image backbone,
conservative for ``full``.
"""

from dataclasses import dataclass

AUTO = "auto"
#: For a backbone whose table has no value for these modes: the mode whose value they use.
_MEASURED_LIKE = {"lora": "repurpose", "prompt": "feature_extraction"}


@dataclass(frozen=True)
class BackboneDefaults:
    """What ``"auto"`` resolves to for one backbone.

    Parameters
    ----------
    lr : dict of str to float
        Learning rate per mode (``"full"``, ``"repurpose"``, ``"feature_extraction"``, optionally
        ``"lora"`` and ``"prompt"``), and ``"scratch"``: ``mode="full"`` with ``weights=None``
        (random initialisation).
    trainable_layers : int
        Blocks that train with ``mode="repurpose"``, counted back from ``feature_layer`` (capped at
        the blocks there are).
    measured : bool
        Whether the values come from the sweep (``docs/defaults.md``) or from the literature.
    """

    lr: dict
    trainable_layers: int
    measured: bool


DEFAULTS = {
    "efficientnet_lite0": BackboneDefaults(
        lr={"full": 3e-4, "repurpose": 3e-4, "feature_extraction": 3e-3, "lora": 1e-3, "scratch": 1e-3},
        trainable_layers=3,
        measured=True,
    ),
    "all-MiniLM-L6-v2": BackboneDefaults(
        lr={"full": 2e-5, "repurpose": 1e-4, "feature_extraction": 1e-2, "lora": 1e-3, "scratch": 1e-4},
        trainable_layers=2,
        measured=True,
    ),
}

FALLBACK = BackboneDefaults(
    lr={"full": 1e-4, "repurpose": 3e-4, "feature_extraction": 1e-3, "scratch": 1e-3},
    trainable_layers=2,
    measured=False,
)


def backbone_defaults(backbone_name):
    """The ``"auto"`` values for a backbone: its own row, else :data:`FALLBACK`.

    Parameters
    ----------
    backbone_name : str
        The resolved backbone's name (``backbone_name_`` of a fitted estimator).

    Returns
    -------
    BackboneDefaults
    """
    return DEFAULTS.get(backbone_name, FALLBACK)


def resolve_lr(lr, backbone_name, mode, pretrained):
    """The learning rate a fit uses: ``lr`` itself, or the backbone's value for ``mode`` when it is ``"auto"``.

    Parameters
    ----------
    lr : float or "auto"
    backbone_name : str
    mode : str
    pretrained : bool
        False for ``weights=None``: ``mode="full"`` then uses the ``"scratch"`` value.

    Returns
    -------
    float
    """
    if lr != AUTO:
        return float(lr)
    table = backbone_defaults(backbone_name).lr
    if mode == "full" and not pretrained:
        return table["scratch"]
    if mode in table:
        return table[mode]
    # Not measured for this backbone: adapters train like the last blocks; learned prompts like a head.
    return table[_MEASURED_LIKE[mode]]


def resolve_trainable_layers(trainable_layers, backbone_name, n_blocks):
    """``trainable_layers`` itself, or the backbone's value (capped at ``n_blocks``) when it is ``"auto"``.

    Parameters
    ----------
    trainable_layers : int or "auto"
    backbone_name : str
    n_blocks : int
        Blocks kept up to ``feature_layer``.

    Returns
    -------
    int
    """
    if trainable_layers != AUTO:
        return trainable_layers
    return min(backbone_defaults(backbone_name).trainable_layers, n_blocks)


#: ``max_epochs="auto"``: at least this many passes over the data (what ``max_epochs`` was before it
#: had an ``"auto"``; enough data reaches ``MIN_STEPS`` long before).
AUTO_EPOCHS = 10
#: ``max_epochs="auto"``: at least this many optimizer steps, so that a fit on a few examples per class
#: (one or two batches per epoch) trains as long as one on hundreds. Measured with
#: ``benchmarks/fewshot.py`` (``docs/defaults.md``, "How long a small fit trains").
MIN_STEPS = 100


def resolve_max_epochs(max_epochs, n_train, batch_size):
    """``max_epochs`` itself, or when it is ``"auto"`` enough epochs for :data:`MIN_STEPS` steps (at least 10).

    Parameters
    ----------
    max_epochs : int or "auto"
    n_train : int
        Training examples (after the early-stopping split); 0 for a network that will not train.
    batch_size : int

    Returns
    -------
    int
    """
    if max_epochs != AUTO:
        return max_epochs
    steps_per_epoch = -(-n_train // batch_size)
    if steps_per_epoch == 0:
        return AUTO_EPOCHS
    return max(AUTO_EPOCHS, -(-MIN_STEPS // steps_per_epoch))


@dataclass(frozen=True)
class PromptStartDefaults:
    """What ``"auto"`` resolves to for a classifier whose head starts from the class prompts, on small data.

    Parameters
    ----------
    lr : dict of str to float
        Learning rate per mode (modes without a value keep :class:`BackboneDefaults`'s).
    trainable_layers : int
        Blocks that train with ``mode="repurpose"`` (capped at the blocks there are).
    """

    lr: dict
    trainable_layers: int


#: ``"auto"`` for a head that starts as the calibrated zero-shot classifier (``head_init``) with at most
#: :data:`SMALL_DATA_PER_CLASS` examples in the rarest class. The head already classifies: every block
#: may adapt, in small steps (at ``repurpose``'s usual rate the blocks move away from what the prompts
#: encode). Measured on MiniLM (``benchmarks/fewshot.py``; ``docs/defaults.md``, "Small data").
PROMPT_START = {"all-MiniLM-L6-v2": PromptStartDefaults(lr={"repurpose": 5e-5}, trainable_layers=6)}
SMALL_DATA_PER_CLASS = 256


def prompt_start_defaults(backbone_name, examples_per_class):
    """The small-data ``"auto"`` values for a head started from the class prompts, or None.

    Parameters
    ----------
    backbone_name : str
    examples_per_class : int
        Training examples of the rarest class.

    Returns
    -------
    PromptStartDefaults or None
        None where :data:`PROMPT_START` has no row for the backbone, or the data is larger than
        :data:`SMALL_DATA_PER_CLASS` per class: ``"auto"`` then resolves as usual.
    """
    if examples_per_class > SMALL_DATA_PER_CLASS:
        return None
    return PROMPT_START.get(backbone_name)
