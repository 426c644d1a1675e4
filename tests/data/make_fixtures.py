"""Write the old-format model files kept as test fixtures (run from the repository root).

Made with skft at commit b38b638 (main before issue 13's identity work): those files carry the
fields that commit saved, ``prefix_key_`` included, so the tests prove that files written by
earlier skft still load and predict as they did when saved.

    python tests/data/make_fixtures.py
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]  # this checkout's skft; conftest registers tiny_cnn

from skft import FineTunedClassifier, FineTunedRegressor  # noqa: E402

from conftest import TINY, TINY_SIZE, make_images  # noqa: E402


def main():
    images, labels = make_images(24, n_classes=2, seed=3)
    params = dict(
        backbone=TINY, image_size=TINY_SIZE, max_epochs=2, batch_size=8, random_state=0, lr=1e-2, device="cpu"
    )
    classifier = FineTunedClassifier(mode="repurpose", **params).fit(images, labels)
    classifier.save(HERE / "b38b638_classifier.skft")
    regressor = FineTunedRegressor(mode="feature_extraction", **params).fit(images, labels.astype(np.float32))
    regressor.save(HERE / "b38b638_regressor.skft")
    expected = {
        "images_seed": 3,
        "n_images": 24,
        "classifier_proba": classifier.predict_proba(images).tolist(),
        "regressor_predict": regressor.predict(images).tolist(),
    }
    (HERE / "b38b638_expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
