"""One process of a multi-process ``device="accelerate"`` fit, started by ``torchrun`` from
tests/test_accelerate.py (pytest does not collect it).

Usage: ``torchrun --standalone --nproc_per_node 2 accelerate_worker.py OUT_DIR``. Each process fits
the estimators of :data:`CONFIGS` and writes what the test compares to ``OUT_DIR/rank_<rank>.json``.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from skorch.callbacks import Callback  # noqa: E402

from skft import FineTunedClassifier  # noqa: E402
from skft._nn.accelerate import unwrapped  # noqa: E402

from conftest import TINY, TINY_SIZE, make_images  # noqa: E402

N_IMAGES = 40
BASE = dict(backbone=TINY, image_size=TINY_SIZE, max_epochs=3, random_state=0, lr=1e-2, device="accelerate")
CONFIGS = {
    # 20 images per process per step: the same gradient as one process with batch_size=40.
    "feature_extraction": dict(mode="feature_extraction", batch_size=20),
    "repurpose_early_stopping": dict(
        mode="repurpose", batch_size=4, early_stopping=True, validation_fraction=0.5, lr_schedule="cosine"
    ),
    "full_warmup": dict(mode="full", batch_size=8, warmup_epochs=1),
}


class BackboneSums(Callback):
    """Record the sum of every backbone parameter when training starts and after each epoch."""

    def on_train_begin(self, net, **kwargs):
        self.sums_ = [self._sums(net)]

    def on_epoch_end(self, net, **kwargs):
        self.sums_.append(self._sums(net))

    @staticmethod
    def _sums(net):
        return [float(parameter.detach().double().sum()) for parameter in unwrapped(net.module_).backbone.parameters()]


def fit_and_describe(params, images, labels):
    """Fit one classifier and return what every process must agree on."""
    clf = FineTunedClassifier(**params, callbacks=[("sums", BackboneSums())]).fit(images, labels)
    history = clf.history_
    return {
        "proba": clf.predict_proba(images).tolist(),
        "train_images_per_epoch": [
            sum(batch["train_batch_size"] for batch in epoch["batches"] if "train_batch_size" in batch)
            for epoch in history
        ],
        "valid_loss": [epoch.get("valid_loss") for epoch in history],
        "backbone_sums": dict(clf.net_.callbacks_)["sums"].sums_,
        "net_class": type(clf.net_).__name__,
        "net_device": str(clf.net_.device),
        "holds_accelerator": clf.net_.accelerator is not None,
    }


def main(out_dir):
    images, labels = make_images(N_IMAGES, n_classes=2)
    results = {name: fit_and_describe({**BASE, **extra}, images, labels) for name, extra in CONFIGS.items()}
    with open(os.path.join(out_dir, f"rank_{os.environ['RANK']}.json"), "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(sys.argv[1])
