"""Loading a model file never allocates what its numbers say before checking them against its tensors.

Each forged file edits one field of a real saved file's JSON metadata. They load in one fresh process
whose address space is capped a few GB above what it uses (``resource.setrlimit``), so a regression
that allocates what the field says fails the test (with a MemoryError or an allocation error) rather
than making the machine swap.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_identity import _forge
from test_prompting import prompt_classifier

from skft import FineTunedClassifier, FineTunedRegressor

from conftest import TINY, make_images

pytest.importorskip("resource")

HUGE = 10**9
TESTS = Path(__file__).resolve().parent

#: field -> (saved file, where in the document, value, what the error names)
FORGERIES = {
    "n_targets_": ("regressor", "fitted", HUGE, "n_targets_"),
    "head width": ("classifier", "params", {"tuple": [HUGE]}, "head"),
    "number of classes": ("classifier", "fitted", {"ndarray": list(range(7)), "dtype": "<i8"}, "classes_"),
    "lora_rank": ("lora", "params", HUGE, "lora_rank"),
    "prompt_tokens": ("prompt", "params", HUGE, "prompt_tokens"),
    "prompt classes": ("prompt", "fitted", {"ndarray": list(range(HUGE // 10**5)), "dtype": "<i8"}, "classes_"),
    "max_length": ("prompt", "params", HUGE, "max_length"),
    "prompt_template width": ("prompt", "params", "{label:>1000000000}", "prompt_template"),
    "prompt_template length": ("prompt", "params", "{label}" * 20_000, "prompt_template"),
    "label_prompts": ("prompt", "params", {"dict": [[0, "bad" * 100_000], [1, "good"]]}, "label_prompts"),
}

LOAD_UNDER_A_MEMORY_CAP = """
import json, resource, sys
sys.path.insert(0, {tests!r})
import conftest, skft
with open("/proc/self/status") as status:
    used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + 3 * 1024**3, resource.RLIM_INFINITY))
outcomes = {{}}
for field, path in json.loads(sys.argv[1]).items():
    try:
        skft.load(path)
        outcomes[field] = "loaded"
    except BaseException as error:
        outcomes[field] = f"{{type(error).__name__}}: {{str(error)[:400]}}"
print(json.dumps(outcomes))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, bert_dir, texts):
    folder = tmp_path_factory.mktemp("bounded")
    X, y = make_images(12, n_classes=3)
    small = dict(image_size=16, max_epochs=1, batch_size=8, random_state=0, device="cpu")
    saved = {"classifier": FineTunedClassifier(TINY, head=(4,), **small).fit(X, y)}
    saved["regressor"] = FineTunedRegressor(TINY, **small).fit(X, make_images(12)[0][:, :2, 0].astype(float))
    if _has_peft():
        saved["lora"] = FineTunedClassifier(TINY, mode="lora", trainable_layers=1, lora_rank=2, **small).fit(X, y)
    text_X, text_y = texts
    saved["prompt"] = prompt_classifier(str(bert_dir), prompt_tokens=2, max_epochs=1).fit(text_X, text_y)
    for name, estimator in saved.items():
        estimator.save(folder / f"{name}.skft")
    forged = {}
    for field, (source, where, value, _) in FORGERIES.items():
        if source in saved:
            target = folder / f"{field.replace(' ', '_')}.skft"
            forged[field] = str(
                _forge(folder / f"{source}.skft", target, lambda c, w=where, v=value, f=field: _set(c, w, f, v))
            )
    script = LOAD_UNDER_A_MEMORY_CAP.format(tests=str(TESTS))
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(forged)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _set(config, where, field, value):
    config[where][FORGERIES[field][3]] = value


def _has_peft():
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("field", FORGERIES)
def test_a_forged_size_is_refused_before_anything_is_allocated(outcomes, field):
    if field not in outcomes:
        pytest.skip("peft is not installed")
    assert outcomes[field].startswith("ValueError: ") and f"{FORGERIES[field][3]}=" in outcomes[field], outcomes[field]
