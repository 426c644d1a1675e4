"""The package's layering, checked on its source: imports point down, never in a cycle, never hidden in a function.

Walks every module of ``skft`` with ``ast``. The command line may import lazily (so that ``skft --help`` starts
fast), and a module-level ``__getattr__`` may import what it serves; nothing else in skft imports an skft module
inside a function, which is how cycles hide.
"""

import ast
import inspect
import re
from pathlib import Path

import pytest

import skft

PACKAGE = Path(skft.__file__).parent

#: Layers from the bottom up; a module may import only from its own layer or those below.
LAYERS = [
    ("backbones",),
    ("_nn", "callbacks"),
    ("_images", "_text", "_modality"),
    ("_cache",),
    (
        "_base",
        "_clone",
        "_defaults",
        "_fit_length",
        "_saving",
        "_file_sizes",
        "_targets",
        "_parameter_docs",
        "_multilabel",
        "_onnx_export",
        "_card",
    ),
    ("_classification", "_regression", "_features", "_onnx_runtime"),
    ("_load", "_compare", "datasets", "plotting"),
    ("__init__",),
    ("cli", "__main__"),
]


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield ".".join(("skft",) + parts), path


def _layer(module):
    top = module.split(".")[1] if module != "skft" else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def _imported(module, path):
    """(imported skft module, line, inside a function) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    functions = {
        id(node): parent.name
        for parent in ast.walk(tree)
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(parent)
        if node is not parent
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "skft" or target.startswith("skft."):
                yield _existing(target), node.lineno, functions.get(id(node))


def _existing(target):
    """The longest prefix of ``target`` that is an skft module or package."""
    parts = target.split(".")
    while parts:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts = parts[:-1]
    return target


def test_every_import_points_down_or_sideways():
    wrong = []
    for module, path in _modules():
        for target, line, _ in _imported(module, path):
            if target != "skft" and _layer(target) > _layer(module):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} from a higher layer")
    assert not wrong, "\n".join(wrong)


def test_no_function_level_import_of_skft_outside_the_command_line():
    hidden = []
    for module, path in _modules():
        if module.startswith(("skft.cli", "skft.__main__")):
            continue
        for target, line, function in _imported(module, path):
            if function is not None and function != "__getattr__":
                hidden.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} inside {function}()")
    assert not hidden, "\n".join(hidden)


def test_no_import_cycles():
    graph = {module: set() for module, _ in _modules()}
    for module, path in _modules():
        for target, _, _ in _imported(module, path):
            if target in graph and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("estimator", [skft.FineTunedClassifier, skft.FineTunedRegressor, skft.BackboneFeatures])
def test_parameters_after_backbone_are_keyword_only(estimator):
    parameters = list(inspect.signature(estimator).parameters.values())
    assert parameters[0].name == "backbone"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[1:])


@pytest.mark.parametrize("estimator", [skft.FineTunedClassifier, skft.FineTunedRegressor, skft.BackboneFeatures])
def test_every_constructor_parameter_is_documented_in_the_class_own_docstring(estimator):
    doc = estimator.__doc__
    section = doc.split("Parameters\n    ----------\n", 1)[1].split("\n    Attributes\n", 1)[0]
    documented = set(re.findall(r"^    (\w+)(?:, (\w+))* :", section, re.M))
    names = {name for group in documented for name in group if name}
    for line in re.findall(r"^    ([\w, ]+) :", section, re.M):
        names |= {name.strip() for name in line.split(",")}
    missing = set(inspect.signature(estimator).parameters) - names
    assert not missing, f"{estimator.__name__} does not document {sorted(missing)}"
