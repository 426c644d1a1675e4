"""Exporting a fitted estimator's whole prediction path to ONNX, checked against the estimator before it is written.

The graph takes what a user has before skft's own preprocessing:

- images: ``pixels``, uint8 of shape ``(batch, image_size, image_size, 3)`` (RGB, channels last, as
  numpy and PIL hold them; resizing stays outside the graph, the normalisation is inside it);
- texts: ``input_ids`` and ``attention_mask``, int64 of shape ``(batch, sequence)``, from the
  backbone's tokenizer, whose files are written beside the ``.onnx`` file (the layout Hugging Face's
  ``AutoTokenizer.from_pretrained(folder)`` reads);

and returns ``probabilities`` (classifiers: softmax, or per-label sigmoid for multi-label ``y``)
or ``predictions`` (regressors, in the units of ``y``), one row per input. The batch size (and for
texts the sequence length) is dynamic. The model's metadata property ``"skft"`` holds, as JSON,
what :class:`skft.OnnxClassifier` and :class:`skft.OnnxRegressor` need (classes, thresholds, input
kind and size) and nothing else.

The export uses torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``):
``torch.export`` (``dynamo=True``) cannot trace the network's ``start_block`` seam and peft's
layers. Before anything is written, onnxruntime runs the graph on a sample batch and its output
must equal the estimator's ``predict_proba`` (or ``predict``) to :data:`TOLERANCE`; the export
fails otherwise, naming the largest difference.
"""

import copy
import io
import json
import os
import warnings

import numpy as np
import torch
from torch import nn

from ._nn.atomic import atomic_write
from ._text import pad_token_ids, tokenized_texts

#: The largest absolute difference allowed between onnxruntime's and the estimator's outputs.
TOLERANCE = 1e-4
#: The ONNX operator set of the exported graphs.
OPSET = 17
#: The version of the metadata written under the ``"skft"`` key.
METADATA_FORMAT = 1
#: The texts every text export is checked on (of different lengths: the batch holds padding).
SAMPLE_TEXTS = ("A short one.", "", "A somewhat longer sample text, with punctuation, numbers like 42 and an Ümlaut.")
_SAMPLE_IMAGES = 4
#: The dtype kinds of ``classes_`` an export can store as JSON (bool, int, unsigned, float, str; object arrays
#: of those, as pandas gives).
EXPORTABLE_LABEL_KINDS = "biufUO"


def import_onnxruntime():
    """Return the ``onnxruntime`` module, or raise an ImportError naming the ``onnx`` extra.

    Returns
    -------
    module
    """
    try:
        import onnxruntime
    except ImportError:
        raise _missing_extra() from None
    return onnxruntime


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise _missing_extra() from None
    return onnx


def _missing_extra():
    return ImportError(
        "ONNX export and OnnxClassifier/OnnxRegressor need onnxruntime (and, to export, onnx). Install them with: "
        "pip install 'skft[onnx]'."
    )


class Rescale(nn.Module):
    """``x * scale + offset`` per column: a regressor's standardised outputs back in the units of ``y``.

    Parameters
    ----------
    scale, offset : array-like of shape (n_targets,)
    """

    def __init__(self, scale, offset):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))
        self.register_buffer("offset", torch.as_tensor(np.asarray(offset, dtype=np.float32)))

    def forward(self, x):
        return x * self.scale + self.offset


class _PredictionPath(nn.Module):
    """The exported graph: the user's input, the fitted network, then ``output`` (softmax, sigmoid, scaling)."""

    def __init__(self, network, output):
        super().__init__()
        self.network = network
        self.output = output

    def forward(self, *inputs):
        # Images arrive channels last (N, H, W, 3) uint8; texts as (input_ids, attention_mask).
        x = inputs[0].permute(0, 3, 1, 2) if len(inputs) == 1 else inputs
        return self.output(self.network(x))


def write_onnx(estimator, path, output, output_name, metadata, reference):
    """Export ``estimator``'s prediction path to ``path`` after checking it against the estimator.

    Parameters
    ----------
    estimator : FineTunedEstimatorBase
        Fitted.
    path : str or path-like
        The ``.onnx`` file; its folder must exist. Text exports also write the tokenizer's files there.
    output : nn.Module
        What turns the network's outputs into the exported ones.
    output_name : str
        ``"probabilities"`` or ``"predictions"``.
    metadata : dict
        JSON data stored under the ``"skft"`` metadata key (input kind and size are added here).
    reference : callable
        ``reference(samples) -> ndarray`` of shape (N, n_outputs): what the graph must reproduce.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    FileNotFoundError
        When the folder of ``path`` does not exist.
    ValueError
        When onnxruntime's outputs differ from ``reference`` by more than :data:`TOLERANCE`.
    """
    onnxruntime = import_onnxruntime()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot export to {path!r}: its folder {folder!r} does not exist. Create it first (os.makedirs)."
        )
    network = estimator.net_.module_
    network = network if next(network.parameters()).device.type == "cpu" else copy.deepcopy(network).cpu()
    samples, feeds, dynamic = _sample_inputs(network, estimator)
    graph = _exported_bytes(_PredictionPath(network, output).eval(), feeds, output_name, dynamic)
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    exported = session.run(None, {name: value.numpy() for name, value in feeds.items()})[0]
    expected = np.asarray(reference(samples), dtype=np.float64).reshape(exported.shape)
    difference = float(np.abs(exported - expected).max())
    if not difference <= TOLERANCE:
        raise ValueError(
            f"the ONNX graph's {output_name} differ from the estimator's by up to {difference:.3g} (more than "
            f"{TOLERANCE:g}) on a sample batch, so {path!r} was not written. This happens with precision='bf16' or "
            "'fp16' (the graph runs in float32): fit with precision='fp32' to export."
        )
    metadata = {"format": METADATA_FORMAT, **metadata, **_input_metadata(network, estimator)}
    graph = _with_metadata(graph, metadata)
    with atomic_write(path) as tmp, open(tmp, "wb") as file:
        file.write(graph)
    if network.modality == "text":
        network.normalizer.preprocessing.tokenizer.save_pretrained(folder)
    return path


def _sample_inputs(network, estimator):
    """What the estimator predicts on, the graph's inputs for the same samples, and the graph's dynamic axes."""
    if network.modality == "text":
        samples = list(SAMPLE_TEXTS)
        tokens = tokenized_texts(samples, network.normalizer)
        input_ids, attention_mask = pad_token_ids(tokens.ids, tokens.pad_token_id)
        axes = {0: "batch", 1: "sequence"}
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return samples, feeds, dict.fromkeys(feeds, axes)
    size = estimator.image_size_
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 256, size=(_SAMPLE_IMAGES, size, size, 3), dtype=np.uint8)
    return samples, {"pixels": torch.from_numpy(samples)}, {"pixels": {0: "batch"}}


def _exported_bytes(module, feeds, output_name, dynamic):
    """The ONNX graph of ``module`` traced on ``feeds``, serialised."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated and that traced shape checks become constants.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        # Indexing with computed indices exports as several operators (correct here: the parity check runs it).
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            module,
            tuple(feeds.values()),
            buffer,
            input_names=list(feeds),
            output_names=[output_name],
            dynamic_axes={**dynamic, output_name: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def _input_metadata(network, estimator):
    if network.modality == "text":
        text_input = network.normalizer
        return {
            "input": "text",
            "max_length": text_input.max_length,
            "pad_token_id": text_input.preprocessing.pad_token_id,
        }
    return {"input": "image", "image_size": estimator.image_size_}


def _with_metadata(graph, metadata):
    model = _import_onnx().load_from_string(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "skft", json.dumps(metadata)
    return model.SerializeToString()
