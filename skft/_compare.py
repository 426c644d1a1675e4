"""compare_modes: the fine-tuning modes side by side, quality against cost, measured on the user's own data."""

import os
import tempfile
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.multiclass import type_of_target

from ._classification import FineTunedClassifier
from ._images.source import as_image_source, at_image_size, image_batches
from ._nn.lora import import_peft
from ._regression import FineTunedRegressor
from .backbones import backbone_modality

COLUMNS = [
    "score_mean",
    "score_std",
    "fit_time",
    "predict_time",
    "trainable_params",
    "file_bytes",
    "drift",
    "left_out",
]
FLOOR_IMAGE_SIZE = 32


def _pixels(images):
    """Rows of pixels in [0, 1] at a small fixed size: the linear floor's input."""
    rows = []
    for batch in image_batches(at_image_size(as_image_source(images), FLOOR_IMAGE_SIZE), 256):
        x = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
        x = F.interpolate(x, size=(FLOOR_IMAGE_SIZE, FLOOR_IMAGE_SIZE), mode="bilinear", antialias=True)
        rows.append(x.flatten(1))
    return torch.cat(rows).numpy()


def _baseline(modality, is_classifier):
    """The linear model a user reaches for without skft: on raw pixels, or on TF-IDF of the texts."""
    linear = LogisticRegression(max_iter=2000) if is_classifier else Ridge()
    if modality == "text":
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        return "TF-IDF + linear model", make_pipeline(vectorizer, linear)
    return "linear model on pixels", make_pipeline(FunctionTransformer(_pixels), StandardScaler(), linear)


def _candidates(estimator, is_classifier):
    """(name, estimator) per row: the modes the backbone supports, from scratch, and the baseline."""
    modality = backbone_modality(estimator.backbone)
    modes = ["full", "repurpose", "feature_extraction"]
    try:
        import_peft()
        modes.append("lora")
    except ImportError as error:
        warnings.warn(f"compare_modes leaves out the 'lora' row: {error}", UserWarning, stacklevel=3)
    if modality == "text" and is_classifier:
        modes.append("prompt")
    return [
        *((mode, clone(estimator).set_params(mode=mode)) for mode in modes),
        ("full, weights=None", clone(estimator).set_params(mode="full", weights=None)),
        _baseline(modality, is_classifier),
    ]


def _leave_out_refused(candidate):
    """Set the parameters ``candidate``'s mode refuses back to their defaults; say which (``"name=value"``, joined).

    A parameter given to ``compare_modes`` applies to every row that accepts it: ``l2sp_alpha`` does not
    apply to ``"lora"``, ``trainable_layers=None`` only applies to it. Those rows run without it.
    """
    if not hasattr(candidate, "_refused_by_mode"):
        return ""
    refused = list(candidate._refused_by_mode())
    defaults = type(candidate)().get_params()
    left_out = ", ".join(f"{name}={getattr(candidate, name)!r}" for name in refused)
    candidate.set_params(**{name: defaults[name] for name in refused})
    return left_out


def _check_prompts_before_any_fit(candidates, X, y):
    """Fit the ``"prompt"`` row zero-shot on one text per class, so that a prompt it cannot use (classes whose
    prompts tokenise alike, a template that cannot be filled in) is an error before the other rows train."""
    for name, candidate in candidates:
        if name == "prompt":
            labels = np.asarray(y)
            first = np.unique(labels, return_index=True)[1]
            texts = list(X)
            clone(candidate).set_params(prompt_tokens=0).fit([texts[index] for index in first], labels[first])


def _trainable_params(fitted):
    if not hasattr(fitted, "net_"):
        return int(np.size(fitted[-1].coef_) + np.size(fitted[-1].intercept_))
    return fitted.n_trainable_params_


def saved_file_bytes(fitted, **save_kwargs):
    """Size of the file ``fitted.save(path, **save_kwargs)`` writes; NaN where there is none (the baseline).

    Parameters
    ----------
    fitted : fitted estimator
    **save_kwargs
        Passed to ``save`` (e.g. ``full=True``; by default the file holds only what the fit changed).

    Returns
    -------
    int or float
    """
    if not hasattr(fitted, "save"):
        return np.nan
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.skft")
        try:
            fitted.save(path, **save_kwargs)
        except TypeError:  # a parameter that is no plain value (an nn.Module backbone): no model file
            return np.nan
        return os.path.getsize(path)


def mean_drift(fitted):
    """Mean of ``fitted.drift_`` over the blocks that moved (0.0 when none did; NaN without ``drift_``).

    Parameters
    ----------
    fitted : fitted estimator

    Returns
    -------
    float
    """
    if not hasattr(fitted, "drift_"):
        return np.nan
    return float(np.mean([value for value in fitted.drift_.values() if value > 0] or [0.0]))


def compare_modes(X, y, *, cv=5, **estimator_params):
    """Cross-validate every mode the backbone supports, random initialisation and a linear baseline on ``X, y``.

    Rows (index ``candidate``), in this order:

    - ``"full"``, ``"repurpose"``, ``"feature_extraction"``: those modes with the pretrained weights.
    - ``"lora"``: low-rank adapters on the blocks ``"repurpose"`` trains (the estimator's
      ``trainable_layers``) and the head. Left out, with a ``UserWarning``, when peft is not
      installed (``pip install "skft[lora]"``).
    - ``"prompt"`` (classifiers of texts only): the encoder unchanged, each text given the class
      whose prompt it is most similar to, with the estimator's ``prompt_template``,
      ``label_prompts`` and ``prompt_tokens`` (zero-shot by default).
    - ``"full, weights=None"``: the network trained from random initialisation (what pretraining buys).
    - the baseline a user would reach for without fine-tuning, a ``LogisticRegression`` (``Ridge``
      for continuous targets): ``"linear model on pixels"`` (raw pixels at 32 px) for an image
      backbone, ``"TF-IDF + linear model"`` (word 1-2-grams, sublinear tf, ``min_df=2``) for a
      text backbone.

    Parameters
    ----------
    X : images or texts
        Anything the estimators accept (a sequence of str for a text backbone).
    y : array-like
        Labels (a classifier is used) or continuous targets (a regressor).
    cv : int or cross-validation generator, default=5
    **estimator_params
        Parameters of the skft estimator for every candidate, e.g. ``image_size=64, max_epochs=3``.
        Leave ``lr`` out (``"auto"``) for a fair table: each candidate then trains at the learning
        rate measured for its mode (``weights=None`` at its own, higher one); a number passed here
        is used by every candidate.

    Returns
    -------
    pandas.DataFrame
        One row per candidate with the columns of :data:`COLUMNS`:

        - ``score_mean``, ``score_std``: accuracy or R^2 over the folds;
        - ``fit_time``: mean seconds per fold to fit. A frozen prefix's activations are computed
          once per image and reused by later fits in the process (folds, and ``"lora"`` after
          ``"repurpose"``, which freeze the same blocks): the first fit on them pays that once;
        - ``predict_time``: mean seconds per fold to predict and score the held-out part;
        - ``trainable_params``: how many parameters the fit trained (the estimator's
          ``n_trainable_params_``: for ``"lora"`` the adapters and the head, for zero-shot
          ``"prompt"`` 0; for the baseline its coefficients and intercepts);
        - ``file_bytes``: the size of the file ``save`` writes for the first fold's estimator
          (by default only what the fit changed; NaN for the baseline, and for a backbone given
          as an ``nn.Module``, which ``save`` refuses);
        - ``drift``: mean relative distance of the trained blocks from their starting values
          (NaN for the baseline);
        - ``left_out``: the parameters of ``**estimator_params`` the row's mode refuses, which it
          ran without (at their defaults), as ``"name=value"`` joined by ``", "``; ``""`` when it
          took them all. ``l2sp_alpha > 0`` and ``bn_trainable=True`` do not apply to ``"lora"``;
          ``trainable_layers=None`` (every block) applies only to ``"lora"``.

    Raises
    ------
    ValueError
        Before any row trains, when the ``"prompt"`` row cannot use its class prompts (classes whose
        prompts the tokenizer reads alike, e.g. emoji labels: pass ``label_prompts``).

    Warns
    -----
    UserWarning
        When peft is not installed: the ``"lora"`` row is left out.

    Examples
    --------
    >>> import numpy as np
    >>> from skft import compare_modes
    >>> X = np.random.default_rng(0).integers(0, 255, size=(24, 32, 32), dtype=np.uint8)
    >>> table = compare_modes(X, [0, 1] * 12, cv=2, image_size=32, max_epochs=1, random_state=0)
    >>> list(table.index)
    ['full', 'repurpose', 'feature_extraction', 'lora', 'full, weights=None', 'linear model on pixels']
    >>> list(table.columns)
    ['score_mean', 'score_std', 'fit_time', 'predict_time', 'trainable_params', 'file_bytes', 'drift', 'left_out']
    """
    import pandas as pd

    is_classifier = type_of_target(np.asarray(y)) in ("binary", "multiclass")
    estimator = (FineTunedClassifier if is_classifier else FineTunedRegressor)(**estimator_params)
    rows = {}
    candidates = _candidates(estimator, is_classifier)
    _check_prompts_before_any_fit(candidates, X, y)
    for name, candidate in candidates:
        left_out = _leave_out_refused(candidate)
        result = cross_validate(candidate, X, y, cv=cv, return_estimator=True)
        rows[name] = {
            "score_mean": float(np.mean(result["test_score"])),
            "score_std": float(np.std(result["test_score"])),
            "fit_time": float(np.mean(result["fit_time"])),
            "predict_time": float(np.mean(result["score_time"])),
            "trainable_params": _trainable_params(result["estimator"][0]),
            "file_bytes": saved_file_bytes(result["estimator"][0]),
            "drift": float(np.mean([mean_drift(fitted) for fitted in result["estimator"]])),
            "left_out": left_out,
        }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)
    table.index.name = "candidate"
    return table
