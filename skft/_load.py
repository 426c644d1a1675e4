"""``skft.load``: the one place that names the estimator classes a model file may hold."""

import os

from ._classification import FineTunedClassifier
from ._nn.model_file import read_model_file
from ._nn.seeding import preserved_global_random_state
from ._regression import FineTunedRegressor

#: The only classes a model file may name.
LOADABLE = {cls.__name__: cls for cls in (FineTunedClassifier, FineTunedRegressor)}


def load(path, *, device=None):
    """Load an estimator saved with ``save``; the file is never unpickled, so it cannot run code.

    Parameters
    ----------
    path : str or path-like
        A file written by :meth:`FineTunedClassifier.save` or :meth:`FineTunedRegressor.save`.
    device : str or None, default=None
        Where the loaded network runs: ``None`` follows the saved estimator's ``device`` parameter
        (a model saved with ``device="cpu"`` loads on the CPU); ``"auto"`` uses CUDA when available.
        The estimator's own ``device`` parameter is restored as saved and applies to later fits.
        ``cache_dir`` and ``num_workers`` are not taken from the file: they load as None and 0.

    Returns
    -------
    FineTunedClassifier or FineTunedRegressor
        Fitted: it predicts exactly as the saved one, and ``warm_start=True`` continues training it.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not an skft model file (a pickle, a torch zip, a plain weights file, a damaged
        file), was written by a newer, incompatible skft, does not fit its backbone as built here,
        sets ``batch_size`` above 4096 or an image size above 2048 pixels, sets a number that sizes a
        tensor or string (head widths, classes, ``lora_rank``, ``prompt_tokens``, prompts) other than
        its tensors say, or stores only what its fit changed and the pretrained weights found here are
        not those the fit started from (the message names ``save(path, full=True)``).

    See Also
    --------
    FineTunedClassifier.save : writes such a file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import skft
    >>> X = np.random.default_rng(0).integers(0, 255, size=(8, 32, 32), dtype=np.uint8)
    >>> clf = skft.FineTunedClassifier(mode="feature_extraction", image_size=32, max_epochs=1, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skft")
    >>> clf.fit(X, [0, 1] * 4).save(path)  # doctest: +ELLIPSIS
    FineTunedClassifier(...)
    >>> bool((skft.load(path).predict(X) == clf.predict(X)).all())
    True
    """
    path = os.fspath(path)
    tensors, document = read_model_file(path)
    name = document.get("estimator")
    if name not in LOADABLE:
        raise ValueError(f"model file {path!r} names estimator {name!r}; skft loads only {sorted(LOADABLE)}.")
    # Rebuilding draws initial values (then overwritten): the caller's torch and NumPy random state stay as they were.
    with preserved_global_random_state():
        return LOADABLE[name]._from_model_file(tensors, document, path, device)
