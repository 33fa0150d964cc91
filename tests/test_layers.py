"""The package's layers: every import goes down (or sideways within a layer), never up.

The layers are the import-linter contract in pyproject.toml (one source);
this test reads it and checks every import statement of the package,
including imports inside functions (not those under ``if TYPE_CHECKING:``,
which only annotations see), so it needs nothing but the standard library.
``lint-imports`` (run in .ci/run) checks the same contract with import-linter,
indirect imports included.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import edgepipe
import pytest
from edgepipe import _core, errors
from edgepipe._runtime import ERROR_BY_KIND, error_for_kind
from edgepipe.tensors import DTYPES, random_inputs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(edgepipe.__file__).resolve().parent
# Feature areas other helpers own; their internal imports are theirs to keep in order.
OTHER_AREAS = ("ota", "optimize", "profiling", "ray")


def _contract() -> dict:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in doc["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return contract


def _layers() -> list[list[str]]:
    out = []
    for layer in _contract()["layers"]:
        names = [n.strip().strip("()") for part in layer.split("|") for n in part.split(":")]
        out.append([n for n in names if n])
    return out


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    for i, names in enumerate(layers):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for each edgepipe import in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                continue  # annotations only: no import at run time
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend(
                    (a.name, child.lineno, in_function)
                    for a in child.names
                    if a.name.split(".")[0] == "edgepipe"
                )
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "edgepipe":
                    continue
                if child.module is None or target == "edgepipe":
                    # `from . import x`: each name is a module of that package.
                    found.extend(
                        (f"{target}.{a.name}", child.lineno, in_function) for a in child.names
                    )
                else:
                    found.append((target, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def _own_modules() -> list[Path]:
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not any(part in OTHER_AREAS for part in p.relative_to(PACKAGE).parts)
    ]


def test_every_module_has_a_layer():
    layers = _layers()
    missing = [
        _module_name(p)
        for p in _own_modules()
        if _module_name(p) != "edgepipe"
        and _layer_of(_module_name(p), layers) is None
        and _module_name(p) != "edgepipe.__main__"
    ]
    assert missing == []


def test_imports_only_go_down():
    layers = _layers()
    allowed = {
        tuple(s.replace(" ", "").split("->")) for s in _contract()["ignore_imports"] if "*" not in s
    }
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        low = _layer_of(importer, layers)
        if low is None:
            continue  # the package root and __main__ sit above every layer
        for target, line, _ in _imports(path):
            high = _layer_of(target, layers)
            if high is None or high >= low:
                continue
            if any(importer.startswith(a) and target.startswith(b) for a, b in allowed):
                continue
            upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {importer} -> {target}")
    assert upward == []


def test_only_features_import_the_package_root():
    # The root re-exports everything; a core module importing it would depend
    # on every layer. Features (bench, telemetry, ota...) may: it is the public API.
    layers = _layers()
    features = _layer_of("edgepipe.ota", layers)
    assert features is not None
    bad = [
        f"{p.relative_to(PACKAGE.parent)}:{line}"
        for p in sorted(PACKAGE.rglob("*.py"))
        if (_layer_of(_module_name(p), layers) or 0) > features
        for target, line, _ in _imports(p)
        if target == "edgepipe"
    ]
    assert bad == []


def test_no_imports_of_edgepipe_inside_functions():
    # Imports inside functions hid the old cycles; the one left is the
    # documented Model.compile -> Session convenience.
    allowed = {tuple(s.replace(" ", "").split("->")) for s in _contract()["ignore_imports"]}
    hidden = [
        f"{p.relative_to(PACKAGE.parent)}:{line} -> {target}"
        for p in _own_modules()
        for target, line, inner in _imports(p)
        if inner and (_module_name(p), target) not in allowed
    ]
    assert hidden == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_linter_contract_holds():
    proc = subprocess.run(
        ["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "edgepipe layers KEPT" in proc.stdout


def test_error_kinds_come_from_the_core():
    assert ERROR_BY_KIND.keys() == _core.ERROR_KINDS.keys()
    for kind, cls in ERROR_BY_KIND.items():
        assert _core.error_class_name(kind) == cls.__name__
        assert issubclass(cls, errors.EdgepipeError)
    assert isinstance(error_for_kind("timeout", "late"), TimeoutError)
    assert type(error_for_kind("no such kind", "?")) is errors.EdgepipeError


def test_dtypes_and_op_names_come_from_the_core():
    assert {n: str(d) for n, d in DTYPES.items()} == {
        n: d for n, d in _core.DTYPES.items() if d is not None
    }
    assert _core.OP_NAMES[0] == "ADD" and "CONV_2D" in _core.OP_NAMES
    source = (PACKAGE / "accelerators" / "report.py").read_text()
    assert "schema_py_generated" not in source  # no run-time schema walk


def test_dtype_table_agrees_with_the_arrays_the_core_makes(generated_models):
    # tensors.DTYPES names what the binding allocates; every real buffer says so.
    for name in ("multi_dtype", "quantized", "add_mul"):
        session = edgepipe.Model.load(generated_models[name]).compile()
        for i, info in enumerate(session.inputs):
            assert info.dtype is not None
            assert session.input_buffer(i).dtype == info.dtype == DTYPES[info.element_type]
        for name_out, array in session.run(random_inputs(session.inputs)).items():
            (info,) = [t for t in session.outputs if t.name == name_out]
            assert array.dtype == DTYPES[info.element_type]
