"""What an install needs: matplotlib, mlxtend and peft are extras, and their absence is explained by name."""

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent


def test_matplotlib_and_mlxtend_are_only_required_by_extras():
    requirements = importlib.metadata.requires("skft")
    for package in ("matplotlib", "mlxtend"):
        lines = [line for line in requirements if re.match(rf"{package}\b", line)]
        assert lines and all("extra ==" in line for line in lines), lines


_WITHOUT_EXTRAS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("matplotlib", "mlxtend", "peft"):
                raise ModuleNotFoundError(f"No module named {{name!r}}")

    sys.meta_path.insert(0, Missing())
    import torch
    torch.set_num_threads(1)
    import skft
    from conftest import TINY, TINY_SIZE, make_images
    X, y = make_images(16)
    clf = skft.FineTunedClassifier(TINY, image_size=TINY_SIZE, max_epochs=1, random_state=0, device="cpu")
    print("fit", clf.fit(X, y).predict(X).shape)
    try:
        clf.set_params(mode="lora").fit(X, y)
    except ImportError as error:
        print("lora:", error)
    try:
        import skft.plotting
    except ImportError as error:
        print("plotting:", error)
    try:
        import skft.datasets

        skft.datasets.load_mnist(10)
    except ImportError as error:
        print("mnist:", error)
    """
)


def test_import_and_fit_work_without_the_extras_and_their_absence_names_the_extra():
    script = _WITHOUT_EXTRAS.format(tests=str(TESTS))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=TESTS)
    assert "fit (16,)" in result.stdout
    assert "plotting:" in result.stdout and "skft[plots]" in result.stdout
    assert "mnist:" in result.stdout and "skft[demo]" in result.stdout
    assert "lora:" in result.stdout and "skft[lora]" in result.stdout
