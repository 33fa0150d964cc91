"""SIGKILL at every install step, in a child process; the reopened store must be whole.

The child installs version 2 over an installed version 1 and kills itself with
SIGKILL at the chosen step (through ``edgepipe.ota.store.step_hook``). The
parent then reopens the store: it must serve a verified model, version 1 if
the metadata rename had not happened yet and version 2 after, never a mix, and
hold no leftover files. A further update must then succeed.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from edgepipe.ota.keys import public_key_pem
from edgepipe.ota.store import INSTALL_STEPS, ModelStore
from ota_helpers import make_manifest, model_bytes, tree

HERE = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    import ota_bootstrap
    ota_bootstrap.ensure_importable()
    from pathlib import Path
    from edgepipe.ota import store as st

    target = sys.argv[1]

    def die(step):
        if step == target:
            os.kill(os.getpid(), signal.SIGKILL)

    def progress(done, total):
        if target == "mid_download" and done >= total // 2:
            os.kill(os.getpid(), signal.SIGKILL)

    st.step_hook = die
    store = st.ModelStore({store!r}, [Path({pub!r}).read_bytes()], name="det",
                          edgepipe_version="0.1.0")
    store.install(Path({manifest!r}).read_bytes(), {model!r}, progress=progress)
    sys.exit(3)  # reaching here means the kill never happened
""")


def _publish_local(d: Path, key, version: str, size: int = 400_000) -> tuple[Path, Path]:
    data = model_bytes(version, size)
    model = d / f"det-{version}.tflite"
    model.write_bytes(data)
    manifest = d / f"det-{version}.json"
    manifest.write_bytes(make_manifest(key, "det", version, data))
    return manifest, model


@pytest.mark.parametrize("step", ["mid_download", *INSTALL_STEPS])
def test_sigkill_at_each_install_step(tmp_path, signing_key, public_key, step):
    pub = tmp_path / "key.pub"
    pub.write_bytes(public_key_pem(public_key))
    d = tmp_path / "store"
    m1, f1 = _publish_local(tmp_path, signing_key, "1")
    m2, f2 = _publish_local(tmp_path, signing_key, "2")
    with ModelStore(d, [public_key], name="det", edgepipe_version="0.1.0") as s:
        s.install(m1.read_bytes(), f1)

    script = CHILD.format(here=str(HERE), store=str(d), pub=str(pub), manifest=str(m2),
                          model=str(f2))
    r = subprocess.run([sys.executable, "-c", script, step], capture_output=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()

    store = ModelStore(d, [public_key], name="det", edgepipe_version="0.1.0")
    served = store.serving()
    renamed = step in INSTALL_STEPS and (
        INSTALL_STEPS.index(step) >= INSTALL_STEPS.index("metadata_renamed"))
    expect = "2" if renamed else "1"
    assert str(served.version) == expect
    assert served.path.read_bytes() == model_bytes(expect, 400_000)
    assert hashlib.sha256(served.path.read_bytes()).hexdigest() == served.sha256

    files = tree(d)
    assert not [f for f in files if f.endswith(".tmp")], files
    meta = json.loads((d / "store.json").read_text())
    named = {e[k] for e in (meta["current"], meta["previous"]) if e for k in ("file", "manifest")}
    assert {f for f in files if f.startswith(("models/", "manifests/"))} == named
    partials = [f for f in files if f.startswith("downloads/")]
    assert len(partials) <= 1  # an interrupted download is kept only to be resumed

    # The store keeps working: finish (or redo) the update, then go further.
    if expect == "1":
        store.install(m2.read_bytes(), f2)
    m3, f3 = _publish_local(tmp_path, signing_key, "3")
    store.install(m3.read_bytes(), f3)
    assert str(store.serving().version) == "3"
    assert [f for f in tree(d) if f.startswith("downloads/")] == []
