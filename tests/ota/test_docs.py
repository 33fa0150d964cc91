"""docs/ota.md's tutorial runs as written (bash, Python, bash), on a free port in a temp dir."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "ota.md"


def _blocks() -> list[tuple[str, str]]:
    text = DOC.read_text()
    tutorial = text[text.index("## Tutorial") : text.index("## Publisher")]
    return re.findall(r"```(bash|python)\n(.*?)```", tutorial, re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tutorial_runs_as_written(tmp_path):
    pytest.importorskip("edgepipe._core")
    bindir = os.path.dirname(sys.executable)
    if shutil.which("edgepipe", path=bindir) is None:
        pytest.skip("the edgepipe command is not installed next to this Python")
    blocks = _blocks()
    assert [k for k, _ in blocks] == ["bash", "python", "bash"]
    port, demo = str(_free_port()), str(tmp_path / "ota-demo")
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    outs = []
    try:
        for kind, code in blocks:
            code = code.replace("8765", port).replace("/tmp/ota-demo", demo)
            cmd = ["bash", "-c", code] if kind == "bash" else [sys.executable, "-c", code]
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=300, env=env, check=False
            )
            assert r.returncode == 0, (kind, r.stdout[-3000:], r.stderr[-3000:])
            outs.append(r.stdout)
    finally:
        pid = Path(demo, "server.pid")
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
    assert '"status": "installed"' in outs[0]
    lines = outs[1].splitlines()
    assert lines[:4] == ["serving 1", "installed", "True 2", "1 {'2': 'too many false positives'}"]
    assert lines[4].startswith("refused: ") and "marked bad" in lines[4]
    assert '"version": "1"' in outs[2]


def test_every_row_of_the_attack_table_names_an_existing_test():
    text = DOC.read_text()
    table = text[text.index("## Threat model") :]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`test_" in line]
    assert len(rows) >= 11
    sources = {p.name: p.read_text() for p in DOC.parents[1].joinpath("tests", "ota").glob("*.py")}
    for row in rows:
        ref = re.findall(r"`((?:test_\w+\.py::)?test_\w+)`", row)[-1]
        file, _, name = ref.rpartition("::")
        where = [sources[file]] if file else list(sources.values())
        assert any(f"def {name or ref}(" in src for src in where), row
    attacks = {row.split("|")[1].strip() for row in rows}
    for attack in (
        "Arbitrary installation",
        "Endless data",
        "Extraneous dependencies",
        "Fast-forward",
        "Indefinite freeze",
        "Malicious mirrors",
        "Mix-and-match",
        "Rollback",
        "Slow retrieval",
        "Key compromise below threshold",
        "Wrong software",
    ):
        assert attack in attacks
