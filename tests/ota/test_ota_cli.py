"""``edgepipe ota repo init|add|publish|timestamp|rotate`` and ``edgepipe ota update`` (JSON),
end to end against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from edgepipe.ota.cli import add_ota_parser
from edgepipe.ota.repo import Repository
from ota_helpers import model_bytes
from ota_httpserver import RepoServer

HERE = Path(__file__).resolve().parent
RUN = (
    f"import runpy, sys; sys.path.insert(0, {str(HERE)!r}); import ota_bootstrap; "
    "ota_bootstrap.ensure_importable(); runpy.run_module('edgepipe.ota', run_name='__main__', "
    "alter_sys=True)"
)


def ota(*args):
    """``python -m edgepipe.ota ARGS`` in a child process: (exit code, stdout, stderr)."""
    r = subprocess.run(
        [sys.executable, "-c", RUN, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return r.returncode, r.stdout, r.stderr


def ota_in(capsys, *args):
    from edgepipe.ota.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_publish_and_update_through_the_cli(tmp_path, capsys):
    repo_dir, model = tmp_path / "repo", tmp_path / "m1.tflite"
    model.write_bytes(model_bytes("1"))
    code, out, err = ota("repo", "init", repo_dir, "--expires", "timestamp=2d")
    assert code == 0, err
    assert oct((next((repo_dir / "keys").glob("root-*.pem"))).stat().st_mode & 0o777) == "0o600"
    assert (
        ota_in(
            capsys,
            "repo",
            "add",
            repo_dir,
            model,
            "--name",
            "det",
            "--version",
            "1",
            "--custom",
            '{"rollout": 100}',
        )[0]
        == 0
    )
    code, out, _ = ota_in(capsys, "repo", "publish", repo_dir)
    assert code == 0 and json.loads(out)["published"]["targets"] == 2
    srv = RepoServer(repo_dir / "public").start()
    try:
        root = repo_dir / "public" / "metadata" / "1.root.json"
        args = ["update", srv.url, "--store", tmp_path / "dev", "--root", root, "--name", "det"]
        code, out, err = ota(*args)
        assert code == 0, err
        assert json.loads(out) | {"path": None} == {
            "status": "installed",
            "version": "1",
            "variant": None,
            "target": "det/1.tflite",
            "reason": "installed det 1",
            "path": None,
        }
        code, out, _ = ota_in(capsys, *args)
        assert code == 0 and json.loads(out)["status"] == "up_to_date"

        # timestamp refresh, then root rotation: the device follows both.
        assert ota_in(capsys, "repo", "timestamp", repo_dir)[0] == 0
        code, out, _ = ota_in(capsys, "repo", "rotate", repo_dir)
        assert code == 0 and json.loads(out)["root_version"] == 2
        model.write_bytes(model_bytes("2"))
        ota_in(capsys, "repo", "add", repo_dir, model, "--name", "det", "--version", "2")
        ota_in(capsys, "repo", "publish", repo_dir)
        code, out, _ = ota_in(capsys, *args)
        assert code == 0 and json.loads(out)["version"] == "2"
        code, out, _ = ota_in(capsys, "status", "--store", tmp_path / "dev", "--name", "det")
        status = json.loads(out)
        assert status["serving"]["version"] == "2" and status["previous"]["version"] == "1"
        assert (
            json.loads((tmp_path / "dev" / "tuf" / "root.json").read_text())["signed"]["version"]
            == 2
        )

        # A refusal is JSON too, with a typed error name, and exit status 2.
        srv.overrides["/metadata/timestamp.json"] = b"{}"
        code, out, err = ota_in(capsys, *args)
        assert code == 2 and json.loads(out)["status"] == "refused"
        assert json.loads(out)["error"] in ("metadata_error", "signature_error")
        assert err.startswith("error: ")
    finally:
        srv.stop()


def test_repo_refusals(tmp_path, capsys):
    assert (
        ota_in(
            capsys,
            "repo",
            "add",
            tmp_path / "none",
            tmp_path / "x",
            "--name",
            "a",
            "--version",
            "1",
        )[0]
        == 2
    )
    Repository.init(tmp_path / "r")
    m = tmp_path / "m.tflite"
    m.write_bytes(b"x")
    for bad in (["--version", "9" * 5000], ["--version", "1.2.3.4.5"], ["--version", "-1"]):
        code, _, err = ota_in(capsys, "repo", "add", tmp_path / "r", m, "--name", "det", *bad)
        assert code == 2 and "bad version" in err
    code, _, err = ota_in(
        capsys,
        "repo",
        "add",
        tmp_path / "r",
        m,
        "--name",
        "det",
        "--version",
        "1",
        "--custom",
        '{"variants": {"a": {"share": 40}}}',
    )
    assert code == 2 and "100%" in err
    code, _, err = ota_in(
        capsys, "repo", "add", tmp_path / "r", "/dev/zero", "--name", "det", "--version", "1"
    )
    assert code == 2 and "not a regular file" in err
    code, _, err = ota_in(capsys, "repo", "init", tmp_path / "r")
    assert code == 2 and "already" in err
    code, _, err = ota_in(capsys, "repo", "init", tmp_path / "r2", "--expires", "timestamp=99y")
    assert code == 2 and "duration" in err


def test_init_with_existing_key_files_and_thresholds(tmp_path, capsys):
    from securesystemslib.signer import CryptoSigner

    key = CryptoSigner.generate_ed25519()
    pem = tmp_path / "mine.pem"
    pem.write_bytes(key.private_bytes)
    code, _, err = ota_in(
        capsys, "repo", "init", tmp_path / "r", "--key", f"targets={pem}", "--threshold", "root=2"
    )
    assert code == 0, err
    root = Repository(tmp_path / "r").load("root").signed
    assert key.public_key.keyid in root.roles["targets"].keyids
    assert root.roles["root"].threshold == 2 and len(root.roles["root"].keyids) == 2
    # The given key was kept with the repository's keys: later publishes find it.
    m = tmp_path / "m.tflite"
    m.write_bytes(b"model")
    assert (
        ota_in(capsys, "repo", "add", tmp_path / "r", m, "--name", "det", "--version", "1")[0] == 0
    )
    code, _, err = ota_in(capsys, "repo", "publish", tmp_path / "r")
    assert code == 0, err
    targets = Repository(tmp_path / "r").load("targets")
    assert key.public_key.keyid in {s.keyid for s in targets.signatures.values()}


def test_the_main_cli_wires_ota():
    p = argparse.ArgumentParser(prog="edgepipe")
    add_ota_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(
        ["ota", "update", "http://x", "--store", "s", "--root", "r", "--name", "det"]
    )
    assert callable(args.func)
    args = p.parse_args(["ota", "repo", "publish", "d"])
    assert callable(args.func)


def test_edgepipe_entry_point_runs_ota(tmp_path):
    pytest.importorskip("edgepipe._core")
    r = subprocess.run(
        [sys.executable, "-m", "edgepipe.cli", "ota", "repo", "init", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ},
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r" / "public" / "metadata" / "1.root.json").is_file()


def test_the_old_manifest_scheme_is_gone():
    import importlib.util

    for mod in ("manifest", "keys", "download"):
        assert importlib.util.find_spec(f"edgepipe.ota.{mod}") is None
    p = argparse.ArgumentParser(prog="edgepipe")
    add_ota_parser(p.add_subparsers(dest="command"))
    for old in ("keygen", "sign", "verify"):
        with pytest.raises(SystemExit):
            p.parse_args(["ota", old])
