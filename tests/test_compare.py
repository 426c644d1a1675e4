"""compare_modes on images: a row per mode the backbone supports, the cost columns, and the lora row without peft."""

import sys

import numpy as np
import pytest

from skft import FineTunedClassifier, compare_modes
from skft._compare import COLUMNS
from skft._nn.lora import is_adapter_parameter

from conftest import TINY, TINY_SIZE, make_images

PARAMS = dict(backbone=TINY, image_size=TINY_SIZE, max_epochs=1, batch_size=8, random_state=0, lr=1e-2, device="cpu")
IMAGE_ROWS = ["full", "repurpose", "feature_extraction", "lora", "full, weights=None", "linear model on pixels"]


@pytest.fixture(scope="module")
def table():
    X, y = make_images(16)
    return compare_modes(X, y, cv=2, **PARAMS)


def test_an_image_backbone_gets_every_mode_but_prompt_and_the_cost_columns(table):
    assert list(table.index) == IMAGE_ROWS
    assert (
        list(table.columns)
        == COLUMNS
        == [
            "score_mean",
            "score_std",
            "fit_time",
            "predict_time",
            "trainable_params",
            "file_bytes",
            "drift",
            "left_out",
        ]
    )
    assert (table["predict_time"] > 0).all()
    assert table.loc["feature_extraction", "drift"] == 0.0
    assert (table["left_out"] == "").all()


def test_trainable_params_count_what_each_mode_trains(table):
    params = table["trainable_params"]
    assert params["full"] == params["full, weights=None"] > params["repurpose"] > params["feature_extraction"] > 0
    assert params["repurpose"] > params["lora"] > params["feature_extraction"]
    X, y = make_images(8)
    lora = FineTunedClassifier(**PARAMS, mode="lora").fit(X, y)
    network = lora.net_.module_
    adapters = sum(p.numel() for name, p in network.backbone.named_parameters() if is_adapter_parameter(name))
    # Counted before merging: the adapters (still held, merged) and the head, not the merged weights.
    assert lora.n_trainable_params_ == adapters + sum(p.numel() for p in network.head.parameters()) > 0
    assert params["lora"] == lora.n_trainable_params_
    assert params["linear model on pixels"] == 32 * 32 + 1


def test_file_bytes_of_the_changes_only_files_are_smaller_than_full(table):
    sizes = table["file_bytes"]
    assert sizes["feature_extraction"] < sizes["lora"] < sizes["full"]
    assert sizes["repurpose"] < sizes["full"]
    assert np.isnan(sizes["linear model on pixels"])


def test_without_peft_the_lora_row_is_left_out_with_a_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    X, y = make_images(16)
    with pytest.warns(UserWarning, match=r'leaves out the \'lora\' row.*pip install "skft\[lora\]"'):
        table = compare_modes(X, y, cv=2, **PARAMS)
    assert list(table.index) == [row for row in IMAGE_ROWS if row != "lora"]


def test_a_regressor_gets_the_same_rows():
    X, y = make_images(16)
    regression = compare_modes(X, y * 1.5 + 0.25, cv=2, **PARAMS)
    assert list(regression.index) == IMAGE_ROWS
    assert regression.shape == (len(IMAGE_ROWS), len(COLUMNS))


@pytest.mark.parametrize(
    "shared, left_out",
    [
        # l2sp_alpha applies to every row but lora, which used to crash after the rows before it were fitted.
        ({"l2sp_alpha": 0.01}, {"lora": "l2sp_alpha=0.01"}),
        # trainable_layers=None (every block) applies only to lora.
        (
            {"trainable_layers": None},
            dict.fromkeys(["full", "repurpose", "feature_extraction", "full, weights=None"], "trainable_layers=None"),
        ),
    ],
    ids=["l2sp_alpha", "trainable_layers=None"],
)
def test_each_row_gets_only_the_parameters_it_accepts_and_says_which_it_left_out(shared, left_out):
    X, y = make_images(8)
    table = compare_modes(X, y, cv=2, **{**PARAMS, **shared})
    assert list(table.index) == IMAGE_ROWS
    assert table["left_out"].to_dict() == {row: left_out.get(row, "") for row in IMAGE_ROWS}
