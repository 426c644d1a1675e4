"""Model cards: a Markdown file beside a saved model saying what it is, what it learned from and how far it moved.

The format is Hugging Face's (YAML front matter, then Markdown), written and checked with
``huggingface_hub``'s ``ModelCardData`` and ``ModelCard``: the front matter holds ``library_name``,
``pipeline_tag`` (classifiers; no Hugging Face tag names regression on images or texts),
``base_model`` (the backbone), ``metrics`` and, when scores are known, a ``model-index``. skops'
card module was the other candidate: it documents a pickled scikit-learn model and adds a
dependency; huggingface_hub is already installed with transformers and is what the hub parses.

The body: the backbone and the digest of its pretrained weights, the mode and every technique in
use, the classes, the training data's size and class balance, validation (and any given) scores,
``drift_`` per block, the learning curves and (with evaluation data) the confusion matrix as PNG
files beside the card, the code that reproduces the fit, and the founding note's caution when
some block moved far (``drift_`` of :data:`LARGE_DRIFT` or more).
"""

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sklearn.metrics import ConfusionMatrixDisplay

from ._nn.atomic import atomic_write

#: A block whose ``drift_`` reaches this moved far from its pretrained weights: the card warns.
#: (On MiniLM, ``repurpose`` at lr 5e-4 moved its layers 0.16 and barely beat frozen embeddings,
#: docs/modes.md; the shipped defaults stay at 0.01-0.06.)
LARGE_DRIFT = 0.1


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError(
            "model cards are written with huggingface_hub, which is not installed. Install it with: pip install "
            "'skft[card]'."
        ) from None
    return huggingface_hub


def write_model_card(estimator, model_path, *, weights_digest=None, scores=None, evaluation=None):
    """Write the card of a fitted, saved ``estimator`` beside ``model_path`` (``model.skft`` -> ``model.md``).

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor
        Fitted.
    model_path : str or path-like
        Where the model was saved; the card and its images go beside it.
    weights_digest : str, optional
        The digest of the pretrained weights the fit started from.
    scores : dict of str to float, optional
        Scores known from elsewhere, e.g. ``{"5-fold CV accuracy": 0.93}``.
    evaluation : tuple (X, y), optional
        Held-out data: the card scores the model on it and draws the confusion matrix (classifiers).

    Returns
    -------
    huggingface_hub.ModelCard
        The card as written (parsed back by huggingface_hub).
    """
    hub = _hub()
    if evaluation is not None and len(evaluation) != 2:
        raise ValueError(f"card={{'evaluation': ...}} must be a pair (X, y). Got {len(evaluation)} items.")
    model_path = Path(model_path)
    card_path = model_path.with_suffix(".md")
    classifier = hasattr(estimator, "classes_")
    scores = dict(scores or {})
    scores.update(_validation_scores(estimator.history_))
    images = {"learning curves": _learning_curves(estimator, model_path)}
    if evaluation is not None:
        X, y = evaluation
        scores["held-out " + ("accuracy" if classifier else "R²")] = float(estimator.score(X, y))
        if classifier and estimator.threshold_ is None:
            images["confusion matrix"] = _confusion_matrix(estimator, X, y, model_path)
    modality = estimator.net_.module_.modality
    task = f"{modality}-classification" if classifier else None
    metric = "accuracy" if classifier else "r2"
    data = hub.ModelCardData(
        library_name="skft",
        pipeline_tag=task,
        base_model=estimator.backbone_name_,
        metrics=[metric],
        tags=["skft", "scikit-learn", "fine-tuning", estimator.mode],
        model_name=model_path.stem if scores else None,
        eval_results=[
            hub.EvalResult(
                task_type=task or "regression",
                dataset_type=name.replace(" ", "-"),
                dataset_name=name,
                metric_type=_metric_type(name),
                metric_value=value,
            )
            for name, value in scores.items()
        ]
        or None,
    )
    body = _body(estimator, classifier, weights_digest, scores, images)
    card = hub.ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    with atomic_write(card_path) as tmp:
        Path(tmp).write_text(str(card), encoding="utf-8")
    return card


def _body(estimator, classifier, weights_digest, scores, images):
    name = type(estimator).__name__
    lines = [
        f"# {name} on {estimator.backbone_name_}",
        "",
        f"A fine-tuned `{name}` saved by skft {_skft_version()}; load it with `skft.load(path)` (the file runs "
        "no code when loaded).",
        "",
        "## Backbone",
        "",
        f"- backbone: `{estimator.backbone_name_}`, weights `{estimator.weights!r}`",
        f"- digest of the pretrained base the fit started from (what the model file leaves out, checked at load): "
        f"`{weights_digest or 'none (a full file: it stores every tensor)'}`",
        f"- blocks: {len(estimator.block_names_)}, of which {estimator.n_frozen_blocks_} frozen",
        "",
        "## Mode and techniques",
        "",
        *[f"- {technique}" for technique in _techniques(estimator)],
        "",
        "## Training data",
        "",
        *_training_data(estimator, classifier),
        "",
        "## Scores",
        "",
        *([f"- {key}: {value:.4f}" for key, value in scores.items()] or ["- none recorded"]),
        "",
        "## Drift from the pretrained weights",
        "",
        "Relative L2 distance of each block's weights from where the fit started (`drift_`).",
        "",
        "| block | drift |",
        "| --- | --- |",
        *[f"| {block} | {drift:.4f} |" for block, drift in estimator.drift_.items()],
        "",
    ]
    largest = max(estimator.drift_.values(), default=0.0)
    if largest >= LARGE_DRIFT:
        lines += [
            f"**Caution:** a block moved {largest:.2f} (at least {LARGE_DRIFT}) from its pretrained weights; "
            "fine-tuning can damage the generality of pretrained features, so check this model on data unlike "
            "its training data (or use early stopping, L2-SP, layer-wise lr decay or a head-first warm-up).",
            "",
        ]
    for title, image in images.items():
        if image is not None:
            lines += [f"## {title.capitalize()}", "", f"![{title}]({image})", ""]
    lines += ["## Reproducing the fit", "", "```python", *_code(estimator, classifier), "```", ""]
    return "\n".join(lines)


def _techniques(estimator):
    params = estimator.get_params(deep=False)
    yield f"mode: `{estimator.mode}` ({estimator.trainable_layers_} block(s) after the frozen prefix train)"
    if estimator.weights is not None:
        yield "transfer learning from pretrained weights"
    yield f"trained parameters: {estimator.n_trainable_params_:,}"
    yield (
        f"optimizer `{params['optimizer']}`, lr {estimator.lr_:g}, batch size {params['batch_size']}, "
        f"{params['max_epochs']} epoch(s), weight decay {params['weight_decay']:g}"
    )
    if params["head"]:
        yield f"layers added before the output: {tuple(params['head'])}"
    defaults = type(estimator)().get_params(deep=False)
    tuned = (
        "lr_decay",
        "head_lr_scale",
        "warmup_epochs",
        "l2sp_alpha",
        "lr_schedule",
        "early_stopping",
        "augment",
        "label_smoothing",
        "class_weight",
        "precision",
        "bn_trainable",
        "dropout",
        "tta",
        "threshold",
    )
    for key in tuned:
        if key in params and params[key] != defaults[key]:
            yield f"`{key}={params[key]!r}`"
    if estimator.mode == "lora":
        yield f"LoRA rank {params['lora_rank']}, alpha {estimator.lora_alpha_:g} (merged into the weights)"


def _training_data(estimator, classifier):
    count = getattr(estimator, "n_samples_fit_", None)
    lines = [f"- samples: {count if count is not None else 'not recorded'}"]
    if not classifier:
        mean = ", ".join(f"{value:.4g}" for value in estimator.target_mean_)
        scale = ", ".join(f"{value:.4g}" for value in estimator.target_scale_)
        return lines + [f"- targets: {estimator.n_targets_}, mean {mean}, standard deviation {scale}"]
    kind = "labels (multi-label)" if estimator.threshold_ is not None else "classes"
    lines.append(f"- {kind}: {', '.join(f'`{label}`' for label in estimator.classes_.tolist())}")
    counts = getattr(estimator, "class_count_", None)
    if counts is not None:
        lines += ["", "| class | samples |", "| --- | --- |"]
        lines += [f"| `{label}` | {int(n)} |" for label, n in zip(estimator.classes_.tolist(), counts)]
    return lines


def _validation_scores(history):
    """The last epoch's validation scores in ``history`` (accuracy, multi-label F1, loss), if any."""
    last = history[-1] if len(history) else {}
    names = {"valid_acc": "validation accuracy", "valid_f1": "validation f1_samples", "valid_loss": "validation loss"}
    return {label: float(last[key]) for key, label in names.items() if key in last}


def _metric_type(score_name):
    """The hub's metric type of a score named like "validation accuracy" or "5-fold CV f1_samples"."""
    for keyword, metric in (("accuracy", "accuracy"), ("f1", "f1"), ("loss", "loss"), ("R²", "r2")):
        if keyword in score_name:
            return metric
    return score_name


def _code(estimator, classifier):
    defaults = type(estimator)().get_params(deep=False)
    changed = {key: value for key, value in estimator.get_params(deep=False).items() if value != defaults[key]}
    arguments = ", ".join(f"{key}={value!r}" for key, value in changed.items())
    data = "images" if estimator.net_.module_.modality == "image" else "texts"
    return [
        f"from skft import {type(estimator).__name__}",
        "",
        f"# X: the {getattr(estimator, 'n_samples_fit_', 'N')} training {data}; y: their "
        + ("labels" if classifier else "targets"),
        f"model = {type(estimator).__name__}({arguments}).fit(X, y)",
    ]


def _learning_curves(estimator, model_path):
    """The training and validation loss per epoch, drawn beside the card; None without matplotlib or history."""
    pyplot = _pyplot()
    columns = [key for key in ("train_loss", "valid_loss") if len(estimator.history_) and key in estimator.history_[0]]
    if pyplot is None or not columns:
        return None
    figure, ax = pyplot.subplots(figsize=(5, 3.5))
    for key in columns:
        ax.plot(estimator.history_[:, "epoch"], estimator.history_[:, key], marker="o", label=key.replace("_", " "))
    ax.set(xlabel="epoch", ylabel="loss", title="learning curves")
    ax.legend()
    return _saved_figure(pyplot, figure, model_path, "learning_curves")


def _confusion_matrix(estimator, X, y, model_path):
    """scikit-learn's confusion matrix display of ``estimator`` on ``(X, y)``, drawn beside the card."""
    pyplot = _pyplot()
    if pyplot is None:
        return None
    figure, ax = pyplot.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(y, estimator.predict(X), labels=estimator.classes_, ax=ax, colorbar=False)
    return _saved_figure(pyplot, figure, model_path, "confusion_matrix")


def _saved_figure(pyplot, figure, model_path, what):
    name = f"{model_path.stem}_{what}.png"
    figure.tight_layout()
    with atomic_write(model_path.parent / name) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    pyplot.close(figure)
    return name


def _pyplot():
    """matplotlib's pyplot with a non-interactive backend, or None without matplotlib (the card has no images)."""
    try:
        import matplotlib
    except ImportError:
        return None
    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as pyplot

    return pyplot


def _skft_version():
    try:
        return version("skft")
    except PackageNotFoundError:
        return "(development)"
