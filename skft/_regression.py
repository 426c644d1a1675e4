"""FineTunedRegressor: a pretrained backbone fine-tuned to predict one or more numbers."""

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_array

from ._base import FineTunedEstimatorBase
from ._nn.losses import WeightedSquaredError
from ._onnx_export import Rescale
from ._parameter_docs import document_shared
from ._targets import check_no_missing_targets


@document_shared
class FineTunedRegressor(RegressorMixin, FineTunedEstimatorBase):
    """Regressor on images or texts that fine-tunes a pretrained backbone and trains a new head.

    Targets are standardised for training (zero mean, unit variance per column, both weighted by
    ``sample_weight``, so that a weight of 2 counts a sample twice) and predictions
    are transformed back; a fit with ``warm_start=True`` keeps the standardisation of the fit it
    continues. The loss is the (``sample_weight``-weighted) mean squared error of the standardised
    targets.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    target_mean_, target_scale_ : ndarray of shape (n_targets,)
        The standardisation of the training targets.
    target_ndim_ : int
        1 when ``y`` was 1-D in ``fit`` (predictions are then 1-D).
    n_targets_ : int
        Columns of ``y``.
    n_samples_fit_ : int
        Training samples, before any validation split.
    {attributes}

    See Also
    --------
    FineTunedClassifier : the same fine-tuning for labels.
    BackboneFeatures : pooled backbone features for any scikit-learn model.

    Examples
    --------
    >>> import numpy as np
    >>> from skft import FineTunedRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(16, 32, 32), dtype=np.uint8)
    >>> y = X.mean(axis=(1, 2)) / 255
    >>> reg = FineTunedRegressor(mode="feature_extraction", image_size=32, max_epochs=1, random_state=0)
    >>> reg.fit(X, y).predict(X[:3]).shape
    (3,)
    """

    _saved_attributes = FineTunedEstimatorBase._saved_attributes + (
        "target_mean_",
        "target_scale_",
        "n_targets_",
        "target_ndim_",
        "n_samples_fit_",
    )
    _older_files_fitted = {"n_samples_fit_": None}

    def _encode_targets(self, y):
        y = np.asarray(y)
        check_no_missing_targets(y)
        y2d = check_array(y.reshape(-1, 1) if y.ndim == 1 else y, dtype=np.float64, input_name="y")
        if self._continues_previous_fit():
            if y2d.shape[1] != self.n_targets_:
                raise ValueError(
                    f"warm_start=True continues the previous fit, which learned {self.n_targets_} target(s), but y has "
                    f"{y2d.shape[1]}. Pass y with as many columns, or warm_start=False to start again from the "
                    "pretrained weights."
                )
        self.n_targets_ = y2d.shape[1]
        self.n_samples_fit_ = len(y2d)
        self.target_ndim_ = y.ndim
        return y2d

    def _scaled_targets(self, targets, sample_weight):
        """Standardised targets; the mean and scale are weighted, so a weight of 2 counts a sample twice."""
        if not self._continues_previous_fit():
            self.target_mean_ = np.average(targets, axis=0, weights=sample_weight)
            scale = np.sqrt(np.average((targets - self.target_mean_) ** 2, axis=0, weights=sample_weight))
            self.target_scale_ = np.where(scale > 0, scale, 1.0)
        return ((targets - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _n_outputs(self):
        return self.n_targets_

    def _make_criterion(self, penalty):
        return WeightedSquaredError(penalty)

    def _onnx_output(self):
        metadata = {"estimator": "regressor", "target_ndim": self.target_ndim_}
        output = Rescale(self.target_scale_, self.target_mean_)
        return output, "predictions", metadata, self.predict

    def predict(self, X):
        """Predict targets for images ``X``.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (N,) or (N, n_targets)
            1-D when ``y`` was 1-D in ``fit``.
        """
        outputs = self._network_outputs(X) * self.target_scale_ + self.target_mean_
        return outputs[:, 0] if self.target_ndim_ == 1 else outputs
