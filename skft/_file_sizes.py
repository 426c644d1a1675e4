"""Numbers a model file sets that size tensors or strings, checked before anything is built from them.

A model file is untrusted input: a ``head`` width, the number of classes or targets, ``lora_rank``
or ``prompt_tokens`` of 10^9 would make the rebuild allocate gigabytes before any other check,
and a ``prompt_template`` with a huge format width would make formatting it do the same. So each
is compared, before the network is built, with the tensors the file actually stores (whose size
the file's own length bounds), or else held to a stated bound:

- ``head`` and the outputs (``classes_`` / ``n_targets_``): the widths of the stored head layers;
- ``lora_rank``: the rows of every stored LoRA ``A`` matrix (at most :data:`MAX_LORA_RANK` when the
  file stores none);
- ``prompt_tokens``: the rows of the stored prompt vectors; the number of classes of
  ``mode="prompt"``: the rows of the stored class prompt embeddings;
- ``prompt_template`` and ``label_prompts``: each class's prompt text, as the template fills it in,
  at most :data:`MAX_PROMPT_CHARS` characters (counted without formatting); format widths and
  precisions at most :data:`MAX_FORMAT_WIDTH`.

- ``batch_size``, ``image_size`` and ``image_size_``: at most :data:`MAX_BATCH_SIZE` and
  :data:`MAX_IMAGE_SIZE`, which size the batches of ``predict``.

``max_length`` is bounded by the backbone's position embeddings.
"""

import re
import string
from numbers import Integral

#: The largest ``batch_size`` a model file may set.
MAX_BATCH_SIZE = 4096
#: The largest ``image_size`` or ``image_size_`` (pixels per side) a model file may set.
MAX_IMAGE_SIZE = 2048

#: The largest ``lora_rank`` a model file that stores no adapter matrix may set.
MAX_LORA_RANK = 1024
#: The longest class prompt text (the template filled in) a model file may make skft build.
MAX_PROMPT_CHARS = 100_000
#: The largest width or precision in a format field of a model file's ``prompt_template``.
MAX_FORMAT_WIDTH = 1000

_PROMPT_TOKENS = "backbone.prompt.tokens"
_CLASS_EMBEDDINGS = "head.class_embeddings"


def check_file_sizes(estimator, tensors, path):
    """Refuse a file whose numbers would size a tensor or string beyond what its tensors or the bounds allow.

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor
        Built from the file's parameters, its fitted attributes set, nothing else built yet.
    tensors : dict of str to Tensor
        The file's tensors.
    path : str
        For messages.

    Raises
    ------
    ValueError
        Naming the field and what the file's tensors (or the bound) give.
    """
    _check_predict_sizes(estimator, path)
    if estimator.mode == "prompt":
        _check_prompt_sizes(estimator, tensors, path)
    else:
        _check_head(estimator, tensors, path)
    if estimator.mode == "lora":
        ranks = {int(tensor.shape[0]) for name, tensor in tensors.items() if ".lora_A." in name}
        if ranks - {estimator.lora_rank} or (not ranks and not 1 <= estimator.lora_rank <= MAX_LORA_RANK):
            _refuse(path, "lora_rank", estimator.lora_rank, f"its adapter matrices have rank(s) {sorted(ranks)}")


def _check_predict_sizes(estimator, path):
    """Refuse numbers a file could use to exhaust memory at predict time."""
    limits = (("batch_size", MAX_BATCH_SIZE), ("image_size", MAX_IMAGE_SIZE), ("image_size_", MAX_IMAGE_SIZE))
    for field, limit in limits:
        value = getattr(estimator, field)
        if value is not None and not (isinstance(value, Integral) and 1 <= value <= limit):
            raise ValueError(
                f"model file {path!r} sets {field}={value!r}; skft loads models with {field} from 1 to {limit}. "
                "The file is damaged or was crafted; save the model again."
            )


def _check_head(estimator, tensors, path):
    layers = sorted(
        (int(name.split(".")[1]), int(tensor.shape[0]))
        for name, tensor in tensors.items()
        if re.fullmatch(r"head\.\d+\.weight", name) and tensor.ndim == 2
    )
    stored = [width for _, width in layers]
    hidden = list(estimator.head) if isinstance(estimator.head, (tuple, list)) else None
    if hidden is None or stored[:-1] != hidden:
        _refuse(path, "head", _shown(estimator.head), f"its stored head layers have widths {stored}")
    outputs = "classes_" if hasattr(estimator, "classes_") else "n_targets_"
    if stored[-1:] != [estimator._n_outputs()]:
        _refuse(path, outputs, _shown(getattr(estimator, outputs)), f"its output layer has {stored[-1:]} outputs")


def _check_prompt_sizes(estimator, tensors, path):
    if estimator.prompt_tokens:
        stored = tensors.get(_PROMPT_TOKENS)
        if stored is None or stored.shape[0] != estimator.prompt_tokens:
            rows = None if stored is None else int(stored.shape[0])
            _refuse(path, "prompt_tokens", estimator.prompt_tokens, f"it stores {rows} prompt vectors")
    embeddings = tensors.get(_CLASS_EMBEDDINGS)
    if embeddings is None or embeddings.shape[0] != len(estimator.classes_):
        rows = None if embeddings is None else int(embeddings.shape[0])
        _refuse(path, "classes_", _shown(estimator.classes_), f"it stores {rows} class prompt embeddings")
    _check_prompt_texts(estimator.prompt_template, estimator.label_prompts or {}, estimator.classes_, path)


def _check_prompt_texts(template, label_prompts, classes, path):
    """Bound each class's prompt text, counting its length from the template's parts without formatting."""
    if not isinstance(template, str) or len(template) > MAX_PROMPT_CHARS:
        _refuse(path, "prompt_template", _shown(template), f"a template is a str of at most {MAX_PROMPT_CHARS} chars")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        _refuse(path, "prompt_template", _shown(template), f"it is not a format string ({error})")
    widths = [int(number) for _, _, spec, _ in parts for number in re.findall(r"\d+", spec or "")]
    if any(width > MAX_FORMAT_WIDTH for width in widths) or any("{" in (spec or "") for _, _, spec, _ in parts):
        _refuse(path, "prompt_template", _shown(template), f"format widths are at most {MAX_FORMAT_WIDTH}")
    literal = sum(len(text) for text, _, _, _ in parts)
    n_fields = sum(field is not None for _, field, _, _ in parts)
    for label in classes:
        label = label.item() if hasattr(label, "item") else label
        value = str(label_prompts.get(label, label))
        # repr/ascii conversions write at most 10 characters per character, a width at most MAX_FORMAT_WIDTH.
        longest = literal + n_fields * (10 * len(value) + 2 + MAX_FORMAT_WIDTH)
        if longest > MAX_PROMPT_CHARS:
            _refuse(
                path,
                "label_prompts" if label in label_prompts else "prompt_template",
                _shown(value),
                f"class prompts are at most {MAX_PROMPT_CHARS} characters",
            )


def _shown(value):
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _refuse(path, field, value, why):
    raise ValueError(
        f"model file {path!r} sets {field}={value}, which does not match what it stores: {why}. The file is "
        "damaged or was crafted; save the model again."
    )
