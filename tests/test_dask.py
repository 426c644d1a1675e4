"""Grid search on a Dask cluster: same results as ``n_jobs=1``, registered backbones and the disk cache travel."""

import os

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

import skft
from skft import FineTunedClassifier

from conftest import TINY_SIZE, make_images

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")


@pytest.fixture
def one_torch_thread():
    """Dask workers run torch on one thread; the serial search must too for identical arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dask_client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _notebook_builder():
    def build():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return torch.nn.Sequential(
                torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()),
                torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU()),
            )

    return build


def test_grid_search_on_dask_matches_serial_and_workers_read_the_shared_cache(
    tiny_params, tmp_path, dask_client, one_torch_thread
):
    X, y = make_images(30)
    cache_dir = str(tmp_path / "activations")
    # Registered here only, with a builder workers cannot import: the registration travels (cloudpickle).
    skft.register_backbone("notebook_cnn", _notebook_builder(), image_size=TINY_SIZE, min_image_size=4, overwrite=True)
    estimator = FineTunedClassifier(
        cache_dir=cache_dir, **dict(tiny_params, backbone="notebook_cnn", trainable_layers=1)
    )
    skft.clear_cache()
    estimator.fit(X, y)  # fills the shared disk cache
    grid = {"lr": [1e-3, 1e-2], "batch_size": [8, 16]}
    serial = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    dask_client.run(skft.clear_cache)
    with joblib.parallel_backend("dask"):
        on_dask = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    assert on_dask.best_params_ == serial.best_params_
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"])
    np.testing.assert_allclose(on_dask.predict_proba(X), serial.predict_proba(X), rtol=1e-5)
    worker_stats = dask_client.run(skft.cache_info).values()
    assert sum(stats.misses for stats in worker_stats) == 0
    assert sum(stats.disk_hits for stats in worker_stats) > 0
    files = [name for _, _, names in os.walk(cache_dir) for name in names]
    assert len(files) == len(X)
