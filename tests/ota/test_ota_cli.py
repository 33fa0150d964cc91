"""``python -m edgepipe.ota``: keygen -> sign -> verify, and refusals with exit code 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edgepipe.ota.cli import add_ota_parser
from ota_helpers import model_bytes

HERE = Path(__file__).resolve().parent
# Runs the package as `python -m edgepipe.ota` would, after making edgepipe
# importable even when its compiled core is not built.
RUN = (f"import runpy, sys; sys.path.insert(0, {str(HERE)!r}); import ota_bootstrap; "
       "ota_bootstrap.ensure_importable(); runpy.run_module('edgepipe.ota', run_name='__main__', "
       "alter_sys=True)")


def ota(*args, cwd):
    r = subprocess.run([sys.executable, "-c", RUN, *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def ota_inproc(capsys, *args):
    """The same commands in this process (faster), via the parser the main CLI uses."""
    from edgepipe.ota.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    code, out, err = ota("keygen", "--out", d / "pub1", cwd=d)
    assert code == 0, err
    assert "key id" in out
    assert oct((d / "pub1.key").stat().st_mode & 0o777) == "0o600"
    model = d / "det.tflite"
    model.write_bytes(model_bytes("1"))
    code, out, err = ota("sign", model, "--name", "det", "--version", "1.0.0",
                         "--key", d / "pub1.key", "--rollout", "25", "--expires", "2d",
                         "--variant", "a", "--variant", "b=5", cwd=d)
    assert code == 0, err
    return d, model, d / "det.tflite.manifest.json"


def test_round_trip(published):
    d, model, manifest = published
    doc = json.loads(manifest.read_text())
    assert doc["signed"]["rollout"]["percent_bp"] == 2500
    assert doc["signed"]["rollout"]["variants"] == [{"name": "a", "percent_bp": 2000},
                                                    {"name": "b", "percent_bp": 500}]
    code, out, err = ota("verify", manifest, model, "--key", d / "pub1.pub", cwd=d)
    assert (code, err) == (0, "")
    assert out.startswith("ok: det 1.0.0")


def test_tampered_model_exits_2(published, tmp_path):
    d, model, manifest = published
    bad = tmp_path / "det.tflite"
    data = bytearray(model.read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    code, out, err = ota("verify", manifest, bad, "--key", d / "pub1.pub", cwd=d)
    assert code == 2 and out == ""
    assert err.startswith("error: model sha256") and err.count("\n") == 1


def test_tampered_manifest_and_wrong_key_exit_2(published, tmp_path, capsys):
    d, model, manifest = published
    doc = json.loads(manifest.read_text())
    doc["signed"]["rollout"]["percent_bp"] = 10000
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    code, _, err = ota_inproc(capsys, "verify", forged, model, "--key", d / "pub1.pub")
    assert code == 2 and "signature" in err
    ota_inproc(capsys, "keygen", "--out", tmp_path / "other")
    code, _, err = ota_inproc(capsys, "verify", manifest, model, "--key",
                              tmp_path / "other.pub")
    assert code == 2 and "untrusted" in err


def test_refusals(published, tmp_path, capsys):
    d, model, manifest = published
    # Versions only go up for the same output file.
    code, _, err = ota_inproc(capsys, "sign", model, "--name", "det", "--version", "1.0",
                              "--key", d / "pub1.key", "-o", manifest)
    assert code == 2 and "only go up" in err
    code, _, err = ota_inproc(capsys, "sign", model, "--name", "../x", "--version", "2",
                              "--key", d / "pub1.key", "-o", tmp_path / "m.json")
    assert code == 2 and "invalid name" in err
    code, _, err = ota_inproc(capsys, "sign", model, "--name", "det", "--version", "2",
                              "--key", d / "pub1.pub", "-o", tmp_path / "m.json")
    assert code == 2 and err.startswith("error: ")
    code, _, err = ota_inproc(capsys, "keygen", "--out", d / "pub1")
    assert code == 2 and "exists" in err
    code, _, err = ota_inproc(capsys, "verify", manifest, model, "--key", d / "pub1.pub",
                              "--threshold", "2")
    assert code == 2 and "threshold" in err


def test_add_ota_parser_in_process(published, capsys):
    d, model, manifest = published
    parser = argparse.ArgumentParser(prog="edgepipe")
    add_ota_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ota", "verify", str(manifest), str(model), "--key",
                              str(d / "pub1.pub")])
    assert args.func(args) == 0
    args = parser.parse_args(["ota"])
    assert args.func(args) == 2


def test_expired_manifest_exits_2(published, tmp_path, capsys):
    d, model, _ = published
    out = tmp_path / "short.json"
    code, _, err = ota_inproc(capsys, "sign", model, "--name", "det", "--version", "3",
                              "--key", d / "pub1.key", "--expires", "1s", "-o", out)
    assert code == 0, err
    time.sleep(1.1)
    code, _, err = ota_inproc(capsys, "verify", out, model, "--key", d / "pub1.pub")
    assert code == 2 and "expired" in err
