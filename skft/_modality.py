"""What ``X`` must be for a backbone's modality, and which parameters apply to it.

The backbone decides the modality (:func:`skft.backbones.backbone_modality`): image backbones read
image arrays, PIL images or file paths; text encoders read a sequence of str. Each side refuses the
other's input, and the parameters of the other modality, with an error that names them and the fix.
"""

import os

import numpy as np
import scipy.sparse

from ._images.folders import IMAGE_EXTENSIONS
from ._images.source import as_image_source
from ._text import check_texts
from .backbones import backbone_modality

#: The shipped text encoder, named in the errors that point image users with texts to it.
TEXT_EXAMPLE = "all-MiniLM-L6-v2"


def check_samples(X, modality, backbone, image_size=None):
    """Validate ``X`` for a backbone of ``modality``.

    Parameters
    ----------
    X : object
        What the user passed.
    modality : {"image", "text"}
    backbone : object
        The ``backbone`` parameter, named in messages.
    image_size : int, optional
        Images: the side lazily loaded images are resized to (see ``as_image_source``).

    Returns
    -------
    list of str, Tensor or LazyImages
        The texts, or the image source.
    """
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"X is a sparse {type(X).__name__} of shape {X.shape}: a table, but backbone={backbone!r} reads "
            f"{'texts (a sequence of str)' if modality == 'text' else 'images'}. Sparse input is not supported."
        )
    if modality == "text":
        return check_texts(X)
    _refuse_texts(X, backbone)
    return as_image_source(X, image_size)


def _refuse_texts(X, backbone):
    """Refuse str that are no files and not all paths (see :func:`_looks_like_path`): texts for an image backbone."""
    if isinstance(X, (str, bytes)) or hasattr(X, "columns"):
        return
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = X.to_numpy()
    if isinstance(X, np.ndarray):
        if X.ndim != 1 or X.dtype.kind not in "OU":
            return
        X = X.tolist()
    if not isinstance(X, (list, tuple)) or not X or not all(isinstance(item, str) for item in X):
        return
    if any(os.path.isfile(item) for item in X) or all(_looks_like_path(item) for item in X):
        return  # paths: as_image_source names the first one that is not an image file
    shown = X[0] if len(X[0]) <= 60 else X[0][:57] + "..."
    raise TypeError(
        f"X holds str that are not image files (X[0] = {shown!r}), but backbone={backbone!r} reads images (arrays, "
        f"PIL images or file paths). If X holds texts, choose a text backbone, e.g. backbone={TEXT_EXAMPLE!r} (or "
        "'hf:<model id>', or a model directory). If X holds paths, check them (relative paths start from "
        f"{os.getcwd()!r})."
    )


def _looks_like_path(text):
    """Whether a str is meant as a file path: it ends in an image extension, or is one word holding a separator.

    Texts hold separators too ("and/or", "10/10"), but rarely without a space between words.
    """
    separators = [os.sep, os.altsep, "/"]
    has_separator = any(separator and separator in text for separator in separators)
    return text.lower().endswith(IMAGE_EXTENSIONS) or (has_separator and not any(c.isspace() for c in text))


def check_modality_params(estimator, modality, backbone):
    """Refuse parameters that only apply to the other modality (set to something else than their default).

    Parameters
    ----------
    estimator : object
        With ``image_size``, ``max_length`` and (optionally) ``augment``.
    modality : {"image", "text"}
    backbone : object
        Named in messages.
    """
    if modality == "text":
        if estimator.image_size is not None:
            raise ValueError(
                f"image_size={estimator.image_size!r} applies to image backbones, but backbone={backbone!r} is a text "
                "encoder. Leave image_size=None; the length texts are truncated to is max_length."
            )
        if getattr(estimator, "augment", False):
            raise ValueError(
                f"augment={estimator.augment!r} applies to image backbones (random crops and flips), but "
                f"backbone={backbone!r} is a text encoder. Pass augment=False."
            )
    elif estimator.max_length is not None:
        raise ValueError(
            f"max_length={estimator.max_length!r} applies to text backbones, but backbone={backbone!r} reads images. "
            "Leave max_length=None (the input size of images is image_size)."
        )


def set_input_tags(tags, backbone):
    """Describe in scikit-learn's ``Tags`` what ``X`` is for ``backbone`` (decided without building it).

    Images arrive as 3-D or 4-D arrays of values 0..255 or 0..1 (``three_d_array``,
    ``positive_only``); texts as a sequence of str (``string``). Neither is a 2-D table
    (``two_d_array=False``), so scikit-learn's own check suite, which feeds tables, skips these
    estimators; ``tests/sklearn_checks.py`` runs its invariants on images and on texts instead,
    and ``docs/sklearn-contract.md`` lists the checks that do not apply and why.

    Parameters
    ----------
    tags : sklearn.utils.Tags
        Changed in place.
    backbone : str, path or nn.Module
        The estimator's ``backbone`` parameter.

    Returns
    -------
    sklearn.utils.Tags
    """
    tags.input_tags.two_d_array = False
    if backbone_modality(backbone) == "text":
        tags.input_tags.string = True
    else:
        tags.input_tags.three_d_array = True
        tags.input_tags.positive_only = True
    return tags
