"""``OnnxClassifier`` and ``OnnxRegressor``: an ONNX export of a fitted skft estimator as a scikit-learn estimator.

They run the graph :meth:`FineTunedClassifier.export_onnx` wrote with onnxruntime and need only
onnxruntime and numpy (texts also the ``tokenizers`` package, to read the tokenizer saved beside
the graph). The file's ``"skft"`` metadata is JSON data: classes, thresholds, input kind and size;
nothing read from it runs code or becomes a path.
"""

import json
import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from ._onnx_export import EXPORTABLE_LABEL_KINDS, METADATA_FORMAT, import_onnxruntime

_DOCS_PARAMETERS = """path : str or path-like
        An ``.onnx`` file written by ``export_onnx``.
    batch_size : int, default=64
        Inputs per onnxruntime call."""


class _OnnxEstimator(BaseEstimator):
    """Shared part: reading the file, preparing inputs, running the graph in batches."""

    _estimator_kind = None

    def __init__(self, path, *, batch_size=64):
        self.path = path
        self.batch_size = batch_size

    def fit(self, X=None, y=None):
        """Read the file (the model is trained already; ``X`` and ``y`` are ignored).

        Parameters
        ----------
        X, y : ignored

        Returns
        -------
        self
        """
        self._loaded()
        return self

    def __sklearn_is_fitted__(self):
        return True

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_session", None)
        return state

    def _loaded(self):
        """The onnxruntime session and the file's metadata, read on first use."""
        if getattr(self, "_session", None) is None or self._session[0] != os.fspath(self.path):
            onnxruntime = import_onnxruntime()
            path = os.fspath(self.path)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"path={path!r} does not exist. Pass the .onnx file export_onnx wrote.")
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            metadata = _checked_metadata(session.get_modelmeta().custom_metadata_map, path, self._estimator_kind)
            tokenizer = (
                _tokenizer(os.path.dirname(os.path.abspath(path)), metadata) if metadata["input"] == "text" else None
            )
            self._session = (path, session, metadata, tokenizer)
        return self._session[1:]

    def _outputs(self, X):
        """The graph's outputs for ``X``, batch by batch."""
        session, metadata, tokenizer = self._loaded()
        if metadata["input"] == "text":
            texts = _texts(X)
            batches = (
                _token_feeds(tokenizer, texts[start : start + self.batch_size], int(metadata["pad_token_id"]))
                for start in _starts(texts, self)
            )
        else:
            pixels = _pixels(X, metadata["image_size"])
            batches = ({"pixels": pixels[start : start + self.batch_size]} for start in _starts(pixels, self))
        return np.concatenate([session.run(None, feeds)[0] for feeds in batches]).astype(np.float64)


class OnnxClassifier(ClassifierMixin, _OnnxEstimator):
    """A classifier exported with :meth:`FineTunedClassifier.export_onnx`, run by onnxruntime.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    classes_ : ndarray
        The fitted estimator's ``classes_``.
    threshold_ : ndarray of shape (n_labels,) or None
        Per-label thresholds of a multi-label export; None otherwise.

    See Also
    --------
    FineTunedClassifier.export_onnx : writes the file.

    Notes
    -----
    ``X`` is what the exported graph takes, prepared as skft prepares it: uint8 images at the
    model's size, ``(N, S, S)`` grey, ``(N, S, S, 3)`` RGB or ``(N, S, S, 4)`` RGBA (channels last;
    resize other sizes first), or a sequence of str for a text model (tokenised with the
    tokenizer saved beside the graph). The model is trained already: use it without ``fit``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skft import FineTunedClassifier, OnnxClassifier
    >>> X = np.random.default_rng(0).integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8)
    >>> clf = FineTunedClassifier(mode="feature_extraction", image_size=32, max_epochs=1, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = clf.fit(X, [0, 1] * 4).export_onnx(path)
    >>> bool((OnnxClassifier(path).predict(X) == clf.predict(X)).all())
    True
    """

    _estimator_kind = "classifier"

    @property
    def classes_(self):
        _, metadata, _ = self._loaded()
        return np.asarray(metadata["classes"], dtype=np.dtype(metadata["classes_dtype"]))

    @property
    def threshold_(self):
        _, metadata, _ = self._loaded()
        return None if metadata["threshold"] is None else np.asarray(metadata["threshold"], dtype=np.float64)

    def predict_proba(self, X):
        """Class probabilities, as the exported estimator's ``predict_proba``.

        Parameters
        ----------
        X : array-like of uint8 images, or sequence of str

        Returns
        -------
        ndarray of shape (N, n_classes)
        """
        return self._outputs(X)

    def predict(self, X):
        """Labels, as the exported estimator's ``predict``.

        Parameters
        ----------
        X : array-like of uint8 images, or sequence of str

        Returns
        -------
        ndarray of shape (N,), or (N, n_labels) indicator matrix for a multi-label export
        """
        probabilities = self.predict_proba(X)
        if self.threshold_ is not None:
            return (probabilities >= self.threshold_).astype(int)
        return self.classes_[probabilities.argmax(axis=1)]


class OnnxRegressor(RegressorMixin, _OnnxEstimator):
    """A regressor exported with :meth:`FineTunedRegressor.export_onnx`, run by onnxruntime.

    Parameters
    ----------
    {parameters}

    See Also
    --------
    FineTunedRegressor.export_onnx : writes the file.
    OnnxClassifier : the same for classifiers; its Notes say what ``X`` may be.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skft import FineTunedRegressor, OnnxRegressor
    >>> X = np.random.default_rng(0).integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8)
    >>> reg = FineTunedRegressor(mode="feature_extraction", image_size=32, max_epochs=1, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = reg.fit(X, X.mean(axis=(1, 2, 3))).export_onnx(path)
    >>> bool(np.allclose(OnnxRegressor(path).predict(X), reg.predict(X), atol=1e-4))
    True
    """

    _estimator_kind = "regressor"

    def predict(self, X):
        """Predictions, as the exported estimator's ``predict`` (1-D when its ``y`` was).

        Parameters
        ----------
        X : array-like of uint8 images, or sequence of str

        Returns
        -------
        ndarray of shape (N,) or (N, n_targets)
        """
        outputs = self._outputs(X)
        _, metadata, _ = self._loaded()
        return outputs[:, 0] if metadata["target_ndim"] == 1 else outputs


for _cls in (OnnxClassifier, OnnxRegressor):
    _cls.__doc__ = _cls.__doc__.replace("{parameters}", _DOCS_PARAMETERS)


def _checked_metadata(properties, path, kind):
    """The file's ``"skft"`` metadata, refusing a file that is not an skft export of ``kind``."""
    try:
        metadata = json.loads(properties["skft"])
        valid = metadata["format"] == METADATA_FORMAT and metadata["input"] in ("image", "text")
        if metadata["estimator"] == "classifier":
            valid = valid and np.dtype(metadata["classes_dtype"]).kind in EXPORTABLE_LABEL_KINDS
    except (KeyError, TypeError, ValueError):
        valid, metadata = False, {}
    if not valid:
        raise ValueError(f"{path!r} is not an ONNX file written by skft's export_onnx (or one of a newer format).")
    if metadata.get("estimator") != kind:
        other = "OnnxRegressor" if kind == "classifier" else "OnnxClassifier"
        raise ValueError(f"{path!r} holds a {metadata.get('estimator')}, not a {kind}. Load it with {other}.")
    return metadata


def _tokenizer(folder, metadata):
    """The tokenizer saved beside a text export, truncating as skft does and padding to the batch's longest text."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(
            "a text export is tokenised with the tokenizers package, which is not installed: pip install tokenizers."
        ) from None
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"a text export needs the tokenizer files export_onnx wrote beside it; {path!r} is missing. Keep the "
            "folder export_onnx wrote together."
        )
    tokenizer = Tokenizer.from_file(path)
    tokenizer.enable_truncation(int(metadata["max_length"]))
    tokenizer.no_padding()
    return tokenizer


def _token_feeds(tokenizer, texts, pad_token_id):
    encodings = tokenizer.encode_batch(texts)
    width = max(len(encoding.ids) for encoding in encodings)
    input_ids = np.full((len(texts), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        input_ids[row, : len(encoding.ids)] = encoding.ids
        attention_mask[row, : len(encoding.ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _texts(X):
    texts = list(X)
    if not all(isinstance(text, str) for text in texts):
        raise TypeError("X must be a sequence of str for a text export. Got elements of other types.")
    return texts


def _pixels(X, size):
    """``X`` as uint8 ``(N, size, size, 3)``: grey repeated to RGB, alpha dropped, as skft does."""
    pixels = np.asarray(X)
    if pixels.dtype != np.uint8:
        raise TypeError(
            f"X has dtype {pixels.dtype}; an ONNX export reads uint8 pixels (0..255). Convert, e.g. "
            "(X * 255).round().astype(np.uint8) for floats in 0..1."
        )
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    if pixels.ndim != 4 or pixels.shape[1:3] != (size, size) or pixels.shape[3] not in (1, 3, 4):
        raise ValueError(
            f"X has shape {pixels.shape}; this export reads images of {size} x {size} pixels, channels last: "
            f"(N, {size}, {size}), (N, {size}, {size}, 3) or (N, {size}, {size}, 4). Resize them first."
        )
    if pixels.shape[3] == 1:
        pixels = np.repeat(pixels, 3, axis=3)
    return np.ascontiguousarray(pixels[..., :3])


def _starts(inputs, estimator):
    return range(0, len(inputs), estimator.batch_size)
