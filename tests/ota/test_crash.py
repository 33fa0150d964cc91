"""Crashes: SIGKILL at every install step, and crash-safe start-up (start counts, child checks).

The install child updates a store holding version 1 to version 2 from a real
repository on 127.0.0.1 and kills itself with SIGKILL at the chosen step
(through ``edgepipe.ota.store.step_hook``). The reopened store must serve a
verified model (version 1 before the state commit, 2 after), hold no file its
state does not name, and a further update must succeed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from edgepipe.ota import errors as E
from edgepipe.ota.store import INSTALL_STEPS, check_in_child
from ota_helpers import device, model_bytes, publish

HERE = Path(__file__).resolve().parent

INSTALL_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    import ota_bootstrap; ota_bootstrap.bare()
    from pathlib import Path
    from edgepipe.ota import store as st
    from ota_helpers import device

    target = sys.argv[1]

    def die(step):
        if step == target:
            os.kill(os.getpid(), signal.SIGKILL)

    def progress(done, total):
        if target == "mid_download" and done >= total // 2:
            os.kill(os.getpid(), signal.SIGKILL)

    st.step_hook = die
    store = device(Path({store!r}), Path({root!r}).read_bytes())
    store.update({url!r}, progress=progress)
    sys.exit(3)  # reaching here means the kill never happened
""")

COMMITTED_AT = INSTALL_STEPS.index("state_written")


@pytest.mark.parametrize("step", ["mid_download", *INSTALL_STEPS])
def test_sigkill_at_each_install_step_leaves_a_consistent_store(
    repo, server, root_bytes, tmp_path, step
):
    publish(repo, "1")
    store_dir = tmp_path / "dev"
    store = device(store_dir, root_bytes)
    store.update(server.url)
    store.close()
    publish(repo, "2", model_bytes("2", 600_000))
    root = tmp_path / "root.json"
    root.write_bytes(root_bytes)
    code = INSTALL_CHILD.format(
        here=str(HERE), store=str(store_dir), root=str(root), url=server.url
    )
    r = subprocess.run(
        [sys.executable, "-c", code, step], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]

    store = device(store_dir, root_bytes)
    serving = store.serving()
    expected = "2" if step in INSTALL_STEPS and INSTALL_STEPS.index(step) >= COMMITTED_AT else "1"
    assert serving.version.text == expected
    assert store.models.hash(serving.path.name)[0] == serving.sha256
    named = {e["file"] for e in (store.status()["current"], store.status()["previous"]) if e}
    assert set(store.models.names()) == named
    assert not [n for n in store.root_dir.names() if n.endswith(".tmp")]
    assert not [n for n in store.tufdir.names() if n.endswith(".tmp")]
    again = store.update(server.url)
    assert again.status in ("installed", "up_to_date") and again.version == "2"
    assert store.serving().version.text == "2"
    assert store.downloads.names() == []


SEGV = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]


def _two_versions(repo, server, root_bytes, tmp_path, **kw):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes, **kw)
    store.update(server.url)
    assert store.mark_healthy("1")
    publish(repo, "2")
    assert store.update(server.url).status == "installed"
    return store


def test_a_version_crashing_the_child_check_is_rolled_back(repo, server, root_bytes, tmp_path):
    store = _two_versions(repo, server, root_bytes, tmp_path)
    chosen = store.start(health_check=lambda m: check_in_child(m, command=SEGV))
    assert chosen.version.text == "1"
    assert "SIGSEGV" in store.bad_versions["2"]
    with pytest.raises(E.RollbackError, match="marked bad"):
        store.update(server.url)


START_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    import ota_bootstrap; ota_bootstrap.bare()
    from edgepipe.ota.store import ModelStore
    store = ModelStore({store!r}, name="det")
    chosen = store.start(health_check=False)
    print(chosen.version.text, flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)   # the app dies serving it
""")


def test_crash_loop_is_broken_after_max_starts(repo, server, root_bytes, tmp_path):
    store = _two_versions(repo, server, root_bytes, tmp_path, max_starts=3)
    code = START_CHILD.format(here=str(HERE), store=str(store.dir))
    served = []
    for _ in range(4):
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
        assert r.returncode == -signal.SIGSEGV, r.stderr[-1500:]
        served.append(r.stdout.strip())
    # Three chances for version 2, then the fourth start rolls back to 1.
    assert served == ["2", "2", "2", "1"]
    store.refresh_state()
    assert "not marked healthy after 3 starts" in store.bad_versions["2"]
    assert store.serving().version.text == "1"


def test_marked_healthy_stops_the_count(repo, server, root_bytes, tmp_path):
    store = _two_versions(repo, server, root_bytes, tmp_path, max_starts=1)
    assert store.start(health_check=False).version.text == "2"
    assert store.mark_healthy("2")
    for _ in range(3):
        assert store.start(health_check=False).version.text == "2"
    assert store.bad_versions == {}


def test_real_child_check_refuses_a_corrupt_model_and_keeps_the_app(
    repo, server, root_bytes, tmp_path
):
    pytest.importorskip("edgepipe._core")
    import edgepipe

    real = Path(edgepipe.default_model_path()).read_bytes()
    publish(repo, "1", real)
    store = device(tmp_path / "dev", root_bytes)
    store.update(server.url)
    assert store.start().version.text == "1"  # the real probe passes
    assert store.bad_versions == {}
    store.mark_healthy()
    corrupt = bytearray(real)
    corrupt[4:8] = b"XXXX"  # not a TFLite file any more
    publish(repo, "2", bytes(corrupt))
    store.update(server.url)
    chosen = store.start()
    assert chosen.version.text == "1"
    assert "health check" in store.bad_versions["2"]
    assert json.dumps(store.status())  # JSON-able


def test_child_check_enforces_the_declared_contract(repo, server, root_bytes, tmp_path):
    pytest.importorskip("edgepipe._core")
    import edgepipe

    real = Path(edgepipe.default_model_path()).read_bytes()
    image = {"name": "image", "shape": [-1, 96, 96, 3], "dtype": "float32"}
    probs = {"name": "probabilities", "shape": [1, 10], "dtype": "float32"}
    publish(repo, "1", real, custom={"inputs": [image], "outputs": [probs]})
    store = device(tmp_path / "dev", root_bytes)
    store.update(server.url)
    assert store.serving().contract == {"inputs": [image], "outputs": [probs]}
    assert store.start().version.text == "1"  # matches: passes
    store.mark_healthy()
    wrong = {**probs, "shape": [1, 1000]}
    publish(repo, "2", real, custom={"inputs": [image], "outputs": [wrong]})
    store.update(server.url)
    assert store.start().version.text == "1"
    assert "declared [1, 1000]" in store.bad_versions["2"]


def test_a_transient_child_failure_marks_nothing(repo, server, root_bytes, tmp_path):
    store = _two_versions(repo, server, root_bytes, tmp_path)
    enomem = [sys.executable, "-c", "import sys; sys.exit(4)"]  # the probe's transient exit
    with pytest.raises(E.StoreError):
        check_in_child(store.serving(), command=enomem)
    chosen = store.start(health_check=lambda m: check_in_child(m, command=enomem))
    assert chosen.version.text == "2" and store.bad_versions == {}
    assert store.status()["current"]["starts"] == 1
