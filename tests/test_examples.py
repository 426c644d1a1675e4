"""Every example runs offline in its quick form (what ``SKFT_QUICK=1`` selects)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
NAMES = sorted(path.stem for path in EXAMPLES.glob("[!_]*.py"))


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What each example's main(quick=True) returns, checked loosely (well above chance, well below what it gets).
CHECKS = {
    "cross_validation": lambda scores: scores.mean() > 0.4,
    "custom_backbone": lambda accuracy: min(accuracy.values()) > 0.2,
    "feature_extraction": lambda accuracy: accuracy["DEFAULT", -3] > accuracy[None, -3] + 0.1,
    "image_folder": lambda accuracy: accuracy > 0.25,
    "pipeline": lambda accuracy: accuracy > 0.5,
    "quickstart": lambda search: search.best_score_ > 0.4,
    "regression": lambda r2: r2 > 0.2,
    "text_classification": lambda accuracy: accuracy["fine-tuned MiniLM (repurpose, 2 layers)"] > 0.6,
}


def test_every_example_is_checked():
    assert NAMES == sorted(CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_example_runs_in_quick_form(name, capsys):
    result = load_example(name).main(quick=True)
    assert capsys.readouterr().out.strip()
    assert CHECKS[name](result), result
