"""The hostile cases of issue #10, each one run in a child process.

Every case is a function registered with :func:`case`. It runs in a child
(through ``tests/crash_harness.py``): it returns a short detail when edgepipe
behaved, and raises (an ``AssertionError`` saying what went wrong) when it did
not. A crash or a hang of the child is pinned on the case that was running and
fails that case's test; it never takes pytest down. The ``tests/test_hostile_*.py``
files run one section each.

``needs`` names the helper whose work a case waits on; the test files mark such
cases ``xfail(strict=True)``, so one that starts passing says so.

Parent side: :func:`run` runs cases (all in one child, restarted after a crash).
Child side: :func:`run_one` (called by the worker) gives each case a :class:`Ctx`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import mmap
import os
import pathlib
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

TESTS_DIR = pathlib.Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    section: str
    fn: Callable[[Ctx], str]
    needs: str | None


CASES: dict[str, Case] = {}


def case(section: str, needs: str | None = None) -> Callable[[Callable[[Ctx], str]], Any]:
    """Register ``case_<name>`` of issue #10 section ``section``."""

    def register(fn: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
        name = fn.__name__.removeprefix("case_")
        CASES[name] = Case(name, section, fn, needs)
        return fn

    return register


def section(number: str) -> list[Case]:
    """The cases of one section, in registration order."""
    return [c for c in CASES.values() if c.section == number]


# -- parent side -------------------------------------------------------------
_WORKER = """
import hostile_cases as _hostile


def run_case(data):
    return _hostile.run_one(data.decode())
"""


def run(
    names: Sequence[str],
    models: dict[str, pathlib.Path],
    workdir: pathlib.Path,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run the named cases in child processes; ``{name: CaseResult}``."""
    from crash_harness import make_worker, run_cases_in_subprocess

    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH")) if p)
    env["EP_HOSTILE_MODELS"] = json.dumps({k: str(v) for k, v in models.items()})
    env["EP_HOSTILE_TMP"] = str(workdir)
    env["EDGEPIPE_CACHE_DIR"] = str(workdir / "cache")
    results = run_cases_in_subprocess(
        [(n, n.encode()) for n in names], make_worker(_WORKER), timeout, env=env
    )
    return {r.description: r for r in results}


def failure(result: Any) -> str | None:
    """Why a case failed (None: it passed)."""
    if result.outcome == "ok":
        return None
    how = result.outcome + (f" ({result.signal_name})" if result.signal_name else "")
    return f"{result.description}: {how}: {result.detail}"


# -- child side ----------------------------------------------------------------
class Ctx:
    """What a case gets: pristine models, its own folder, reference outputs."""

    def __init__(self, name: str) -> None:
        self.models = {
            k: pathlib.Path(v) for k, v in json.loads(os.environ["EP_HOSTILE_MODELS"]).items()
        }
        self.tmp = pathlib.Path(os.environ["EP_HOSTILE_TMP"]) / name
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def copy(self, model: str, name: str | None = None) -> pathlib.Path:
        """A private copy of a model file, free to damage."""
        dest = self.tmp / (name or f"{model}.tflite")
        shutil.copyfile(self.models[model], dest)
        return dest


def run_one(name: str) -> str:
    """Run case ``name`` (worker side)."""
    return CASES[name].fn(Ctx(name))


def inputs_for(model: Any, seed: int = 0) -> list[np.ndarray]:
    """Deterministic inputs of the right shapes and dtypes."""
    rng = np.random.default_rng(seed)
    out = []
    for t in model.inputs:
        shape = tuple(max(d, 1) for d in t.shape)
        if t.dtype.kind == "f":
            out.append(rng.random(shape).astype(t.dtype))
        else:
            out.append(rng.integers(0, 100, shape).astype(t.dtype))
    return out


def reference(path: pathlib.Path, x: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of a fresh session of the pristine file ``path``."""
    import edgepipe

    with edgepipe.Session(edgepipe.Model.load(path)) as s:
        return s.run(x)


def same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def check_error(exc: BaseException | None, error: type[BaseException], *words: str) -> str:
    """``exc`` must be an ``error`` whose message holds every word (any case)."""
    if exc is None:
        raise AssertionError(f"no {error.__name__} was raised")
    if not isinstance(exc, error):
        raise AssertionError(
            f"raised {type(exc).__module__}.{type(exc).__name__} ({exc}), not {error.__name__}"
        ) from exc
    text = str(exc)
    missing = [w for w in words if w.lower() not in text.lower()]
    assert not missing, f"{type(exc).__name__} lacks {missing}: {text}"
    return f"{type(exc).__name__}: {text[:160]}"


def expect(error: type[BaseException], fn: Callable[[], object], *words: str) -> str:
    """``fn()`` must raise ``error`` whose message holds every word (any case)."""
    try:
        fn()
    except BaseException as exc:
        return check_error(exc, error, *words)
    return check_error(None, error)


def expect_argument_error(fn: Callable[[], object], argument: str) -> str:
    """A typed edgepipe error that is a ValueError and names ``argument``."""
    from edgepipe import errors

    try:
        fn()
    except errors.EdgepipeError as exc:
        typed: errors.EdgepipeError = exc
    except BaseException as exc:
        raise AssertionError(f"untyped {type(exc).__module__}.{type(exc).__name__}: {exc}") from exc
    else:
        raise AssertionError(f"accepted a bad {argument}")
    assert isinstance(typed, ValueError), f"{type(typed).__name__} is not a ValueError: {typed}"
    assert argument in str(typed), f"{type(typed).__name__} does not name {argument!r}: {typed}"
    return f"{type(typed).__name__}: {str(typed)[:160]}"


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    stdout: Any = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    """``python -m edgepipe ARGS``; a hang is a failure, not a wait."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "edgepipe", *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"edgepipe {' '.join(args)} hung for {timeout} s") from exc


def cli_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """A failed command: non-zero status, an ``error:`` line with ``words``, no traceback."""
    err = proc.stderr
    assert "Traceback" not in err, f"traceback instead of an error line:\n{err[-1500:]}"
    assert proc.returncode not in (0, None) and proc.returncode > 0, (proc.returncode, err)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, f"expected one error: line, got {lines!r} in\n{err[-1500:]}"
    missing = [w for w in words if w.lower() not in lines[0].lower()]
    assert not missing, f"the error line lacks {missing}: {lines[0]}"
    return lines[0][:200]


def _blocked(fn: Callable[[], object], seconds: float) -> tuple[bool, object]:
    """Run ``fn`` in a daemon thread; (finished in time, result or exception)."""
    box: list[object] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # reported to the case
            box.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    return (not t.is_alive()), (box[0] if box else None)


# ============================================================================
# 1. Hostile models that passed the verifier and crashed LiteRT
# ============================================================================
def _mutant(kind: str) -> bytes:
    """The two deterministic crash classes of #10.1, made from the generated convnet."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from edgepipe.models import generator

    model = schema.ModelT.InitFromPackedBuf(generator.build_convnet(), 0)
    if kind == "tiny_scale":
        # (a): a quantization with a tiny scale and no zero_point.
        q = schema.QuantizationParametersT()
        q.scale = [1e-30]
        q.zeroPoint = None
        model.subgraphs[0].tensors[0].quantization = q
    else:
        # (b): one builtin operator code replaced by another (CONV_2D -> SPLIT).
        code = next(
            c for c in model.operatorCodes if c.builtinCode == schema.BuiltinOperator.CONV_2D
        )
        code.builtinCode = schema.BuiltinOperator.SPLIT
        code.deprecatedBuiltinCode = schema.BuiltinOperator.SPLIT
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@case("1")
def case_quant_tiny_scale_no_zero_point_load(ctx: Ctx) -> str:
    import edgepipe

    path = ctx.tmp / "tiny_scale.tflite"
    path.write_bytes(_mutant("tiny_scale"))
    return expect(edgepipe.ModelError, lambda: edgepipe.Model.load(path).compile())


@case("1")
def case_quant_tiny_scale_no_zero_point_from_bytes(ctx: Ctx) -> str:
    import edgepipe

    data = _mutant("tiny_scale")
    return expect(edgepipe.ModelError, lambda: edgepipe.Model.from_bytes(data).compile())


@case("1")
def case_quant_tiny_scale_no_zero_point_cli_info(ctx: Ctx) -> str:
    path = ctx.tmp / "tiny_scale.tflite"
    path.write_bytes(_mutant("tiny_scale"))
    return cli_error(cli("info", str(path)))


@case("1")
def case_opcode_conv2d_replaced_by_split_compile(ctx: Ctx) -> str:
    import edgepipe

    path = ctx.tmp / "split.tflite"
    path.write_bytes(_mutant("split"))
    # A ModelError at load, or a CompileError (a ModelError) at compile.
    return expect(edgepipe.ModelError, lambda: edgepipe.Model.load(path).compile())


@case("1")
def case_opcode_conv2d_replaced_by_split_cli_run(ctx: Ctx) -> str:
    path = ctx.tmp / "split.tflite"
    path.write_bytes(_mutant("split"))
    np.savez(ctx.tmp / "in.npz", image=np.zeros((1, 96, 96, 3), np.float32))
    return cli_error(
        cli(
            "run",
            str(path),
            "--inputs",
            str(ctx.tmp / "in.npz"),
            "--outputs",
            str(ctx.tmp / "out.npz"),
        )
    )


# ============================================================================
# 2. Files that change under a mapping
# ============================================================================
def _truncated(ctx: Ctx, model: str = "face_detection_front") -> tuple[Any, str, list, dict]:
    """A model loaded from a private copy that is then truncated to 0 bytes."""
    import hashlib

    import edgepipe

    path = ctx.copy(model)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = edgepipe.Model.load(path)
    x = inputs_for(loaded)
    want = reference(ctx.models[model], x)
    os.truncate(path, 0)
    return loaded, sha, x, want


@case("2")
def case_truncated_file_sha256(ctx: Ctx) -> str:
    model, sha, _, _ = _truncated(ctx)
    assert model.sha256 == sha
    return "sha256 of the loaded bytes"


@case("2")
def case_truncated_file_describe(ctx: Ctx) -> str:
    model, sha, _, _ = _truncated(ctx)
    info = model.describe()
    assert info["sha256"] == sha and info["size"] > 0, info
    return f"{info['size']} bytes described"


@case("2")
def case_truncated_file_compile_and_run(ctx: Ctx) -> str:
    model, _, x, want = _truncated(ctx)
    with model.compile() as s:
        same(s.run(x), want)
    return "compiled and ran"


@case("2")
def case_truncated_file_pool_swap(ctx: Ctx) -> str:
    import edgepipe

    serving = edgepipe.Model.load(ctx.models["face_detection_front"])
    model, _, x, want = _truncated(ctx)
    with edgepipe.Pool(serving, workers=1, weight_cache=False) as pool:
        pool.swap(model)
        same(pool.run(x), want)
    return "swapped in and ran"


@case("2")
def case_truncated_file_pool_stats(ctx: Ctx) -> str:
    import edgepipe

    path = ctx.copy("face_detection_front")
    model = edgepipe.Model.load(path)
    with edgepipe.Pool(model, workers=1, weight_cache=False) as pool:
        os.truncate(path, 0)
        stats = pool.stats()
        assert stats["model_sha256"] == model.sha256
        pool.run(inputs_for(model))
    return "stats of a pool whose file was truncated"


@case("2")
def case_file_overwritten_in_place_then_compile(ctx: Ctx) -> str:
    import edgepipe

    path = ctx.copy("face_detection_front")
    model = edgepipe.Model.load(path)
    x = inputs_for(model)
    want = reference(ctx.models["face_detection_front"], x)
    size = path.stat().st_size
    with open(path, "r+b") as f:  # same inode, same size, other bytes
        f.write(np.random.default_rng(1).integers(0, 256, size, np.uint8).tobytes())
    with model.compile() as s:
        same(s.run(x), want)
    with open(path, "r+b") as f:  # and again while a session runs
        f.write(bytes(size))
        with model.compile() as s:
            same(s.run(x), want)
    return "outputs of the bytes verified at load"


@case("2")
def case_file_replaced_by_another_model_then_compile(ctx: Ctx) -> str:
    import edgepipe

    path = ctx.copy("face_detection_front")
    model = edgepipe.Model.load(path)
    x = inputs_for(model)
    want = reference(ctx.models["face_detection_front"], x)
    with open(path, "r+b") as f:  # rewritten in place with a longer, valid model
        f.write(ctx.models["face_landmark"].read_bytes())
    with model.compile() as s:
        same(s.run(x), want)
    return "the loaded model, not the new file"


def _from_mutated(ctx: Ctx, kind: str) -> str:
    import edgepipe

    data = ctx.models["face_detection_front"].read_bytes()
    buf: Any = bytearray(data) if kind == "bytearray" else np.frombuffer(data, np.uint8).copy()
    model = edgepipe.Model.from_bytes(buf)
    x = inputs_for(model)
    want = reference(ctx.models["face_detection_front"], x)
    buf[:] = b"\xff" * len(data) if kind == "bytearray" else 0xFF
    with model.compile() as s:
        same(s.run(x), want)
        buf[: len(buf) // 2] = bytes(len(buf) // 2) if kind == "bytearray" else 0
        same(s.run(x), want)
    if kind == "bytearray":
        buf.extend(b"more")  # the model does not pin the caller's buffer
    return "the copy taken by from_bytes"


@case("2")
def case_from_bytes_bytearray_mutated(ctx: Ctx) -> str:
    return _from_mutated(ctx, "bytearray")


@case("2")
def case_from_bytes_ndarray_mutated(ctx: Ctx) -> str:
    return _from_mutated(ctx, "ndarray")


@case("2")
def case_from_bytes_mmap_of_a_file_then_truncated(ctx: Ctx) -> str:
    import edgepipe

    path = ctx.copy("face_detection_front")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
        model = edgepipe.Model.from_bytes(memoryview(mm))
    os.truncate(path, 0)
    x = inputs_for(model)
    with model.compile() as s:
        same(s.run(x), reference(ctx.models["face_detection_front"], x))
    return "a read-only mapping is copied too"


@case("2")
def case_weight_cache_truncated_under_a_running_pool(ctx: Ctx) -> str:
    import edgepipe

    os.environ["EDGEPIPE_CACHE_DIR"] = str(ctx.tmp / "cache")
    model = edgepipe.Model.load(ctx.models["face_detection_front"])
    x = inputs_for(model)
    want = reference(ctx.models["face_detection_front"], x)
    with edgepipe.Pool(model, workers=2, weight_cache=True) as pool:
        same(pool.run(x), want)
        caches = list((ctx.tmp / "cache").rglob("*.xnnpack_cache"))
        assert len(caches) == 1, caches
        assert not [e for e in pool.events() if e["stage"] == "weight_cache"], pool.events()
        os.truncate(caches[0], 0)
        for _ in range(8):
            same(pool.run(x), want)
        with edgepipe.Session(model, weight_cache=True) as s:  # rebuilds it
            same(s.run(x), want)
    return f"{caches[0].name} truncated under 2 workers"


@case("2")
def case_explicit_weight_cache_truncated_under_a_session(ctx: Ctx) -> str:
    import edgepipe

    model = edgepipe.Model.load(ctx.models["face_detection_front"])
    x = inputs_for(model)
    want = reference(ctx.models["face_detection_front"], x)
    path = ctx.tmp / "weights.cache"
    edgepipe.Session(model, weight_cache=path).close()  # builds it
    with edgepipe.Session(model, weight_cache=path) as s:
        os.truncate(path, 0)
        same(s.run(x), want)
    return "ran on its sealed copy"


# ============================================================================
# 3. Special files and paths
# ============================================================================
def _load_refused(path: Any, *words: str) -> str:
    import edgepipe

    started = time.monotonic()
    detail = expect(edgepipe.ModelError, lambda: edgepipe.Model.load(path), *words)
    assert time.monotonic() - started < 10, "took too long"
    return detail


@case("3")
def case_load_fifo(ctx: Ctx) -> str:
    fifo = ctx.tmp / "model.tflite"
    os.mkfifo(fifo)
    return _load_refused(fifo, str(fifo), "FIFO")


@case("3")
def case_load_fifo_with_a_writer(ctx: Ctx) -> str:
    fifo = ctx.tmp / "model.tflite"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer open
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(writer, ctx.models["face_detection_front"].read_bytes()[:4096])
        return _load_refused(fifo, str(fifo), "FIFO")
    finally:
        os.close(writer)
        os.close(reader)


@case("3")
def case_load_character_devices(ctx: Ctx) -> str:
    return "; ".join(
        _load_refused(dev, dev, "device") for dev in ("/dev/zero", "/dev/null", "/dev/urandom")
    )


@case("3")
def case_load_directory(ctx: Ctx) -> str:
    return _load_refused(ctx.tmp, str(ctx.tmp), "directory")


@case("3")
def case_load_socket(ctx: Ctx) -> str:
    path = ctx.tmp / "sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
        s.listen(1)
        return _load_refused(path, str(path), "socket")


@case("3")
def case_load_path_with_nul(ctx: Ctx) -> str:
    path = ctx.copy("face_detection_front")
    first = _load_refused(str(path) + "\0junk", "NUL")
    _load_refused(pathlib.Path(str(path) + "\0"), "NUL")
    return first


@case("3")
def case_load_symlink_to_a_model_is_followed(ctx: Ctx) -> str:
    import edgepipe

    link = ctx.tmp / "current.tflite"
    link.symlink_to(ctx.models["face_detection_front"])
    model = edgepipe.Model.load(link)
    (ctx.tmp / "dev.tflite").symlink_to("/dev/zero")
    _load_refused(ctx.tmp / "dev.tflite", "device")
    return f"loaded {model.size} bytes through a link"


@case("3")
def case_cli_info_fifo(ctx: Ctx) -> str:
    fifo = ctx.tmp / "model.tflite"
    os.mkfifo(fifo)
    return cli_error(cli("info", str(fifo), timeout=30), "FIFO")


@case("3")
def case_cli_run_fifo(ctx: Ctx) -> str:
    fifo = ctx.tmp / "model.tflite"
    os.mkfifo(fifo)
    np.savez(ctx.tmp / "in.npz", input=np.zeros((1, 128, 128, 3), np.float32))
    proc = cli(
        "run",
        str(fifo),
        "--inputs",
        str(ctx.tmp / "in.npz"),
        "--outputs",
        str(ctx.tmp / "out.npz"),
        timeout=30,
    )
    return cli_error(proc, "FIFO")


def _foreign_cache_path(ctx: Ctx, path: pathlib.Path, *, pool: bool = False) -> str:
    """``weight_cache=path`` is refused, and nothing is created or changed beside it."""
    import edgepipe

    model = edgepipe.Model.load(ctx.models["face_detection_front"])
    before = sorted(p.name for p in path.parent.iterdir())
    st = os.lstat(path)

    def use() -> None:
        if pool:
            edgepipe.Pool(model, workers=1, weight_cache=path).close()
        else:
            edgepipe.Session(model, weight_cache=path).close()

    ok, outcome = _blocked(use, 30)
    assert ok, "weight_cache=PATH blocked"
    if not isinstance(outcome, BaseException):
        raise AssertionError(f"weight_cache={path} was accepted")
    detail = check_error(outcome, edgepipe.InputError, "weight_cache")
    after = sorted(p.name for p in path.parent.iterdir())
    assert after == before, f"created beside it: {set(after) - set(before)}"
    st2 = os.lstat(path)
    assert (st2.st_ino, st2.st_mode, st2.st_size, st2.st_mtime_ns) == (
        st.st_ino,
        st.st_mode,
        st.st_size,
        st.st_mtime_ns,
    ), "the file was changed"
    return detail


@case("3")
def case_weight_cache_path_is_an_existing_file(ctx: Ctx) -> str:
    path = ctx.tmp / "notes.txt"
    path.write_text("precious data, not a cache")
    detail = _foreign_cache_path(ctx, path)
    assert path.read_text() == "precious data, not a cache"
    _foreign_cache_path(ctx, path, pool=True)
    return detail


@case("3")
def case_weight_cache_path_is_a_device_node(ctx: Ctx) -> str:
    path = ctx.tmp / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        path.symlink_to("/dev/null")  # without root: a link to the real one
    detail = _foreign_cache_path(ctx, path)
    _foreign_cache_path(ctx, path, pool=True)
    assert pathlib.Path("/dev/null").is_char_device()
    return detail


@case("3")
def case_weight_cache_path_is_a_fifo(ctx: Ctx) -> str:
    path = ctx.tmp / "pipe"
    os.mkfifo(path)
    return _foreign_cache_path(ctx, path)


@case("3")
def case_weight_cache_path_is_a_symlink(ctx: Ctx) -> str:
    target = ctx.tmp / "target.txt"
    target.write_text("keep me")
    path = ctx.tmp / "link.cache"
    path.symlink_to(target)
    detail = _foreign_cache_path(ctx, path)
    assert target.read_text() == "keep me"
    return detail


@case("3")
def case_weight_cache_path_is_a_directory(ctx: Ctx) -> str:
    path = ctx.tmp / "folder"
    path.mkdir()
    return _foreign_cache_path(ctx, path)


@case("3")
def case_weight_cache_sibling_lock_is_a_symlink(ctx: Ctx) -> str:
    import edgepipe

    model = edgepipe.Model.load(ctx.models["face_detection_front"])
    target = ctx.tmp / "elsewhere.txt"
    path = ctx.tmp / "w.cache"
    (ctx.tmp / "w.cache.lock").symlink_to(target)
    detail = expect(
        edgepipe.InputError,
        lambda: edgepipe.Session(model, weight_cache=path),
        "weight_cache",
        "lock",
    )
    assert not target.exists(), "created a file through the .lock link"
    assert sorted(p.name for p in ctx.tmp.iterdir()) == ["w.cache.lock"]
    return detail


@case("3")
def case_weight_cache_path_with_nul(ctx: Ctx) -> str:
    import edgepipe

    model = edgepipe.Model.load(ctx.models["face_detection_front"])
    return expect(
        edgepipe.InputError,
        lambda: edgepipe.Session(model, weight_cache=str(ctx.tmp / "w") + "\0x"),
        "weight_cache",
    )


@case("3")
def case_weight_cache_path_new_file_is_created_and_reused(ctx: Ctx) -> str:
    import edgepipe

    model = edgepipe.Model.load(ctx.models["face_detection_front"])
    x = inputs_for(model)
    path = ctx.tmp / "mine.cache"
    for _ in range(2):  # created by edgepipe the first time, so reused the second
        with edgepipe.Session(model, weight_cache=path) as s:
            same(s.run(x), reference(ctx.models["face_detection_front"], x))
            assert not [e for e in s.events if e["stage"] == "weight_cache"], s.events
    assert path.is_file()
    return "an edgepipe cache at PATH is used"


@case("3")
def case_default_cache_sidecar_replaced_by_a_fifo(ctx: Ctx) -> str:
    import edgepipe

    os.environ["EDGEPIPE_CACHE_DIR"] = str(ctx.tmp / "cache")
    model = edgepipe.Model.load(ctx.models["face_detection_front"])
    edgepipe.Session(model, weight_cache=True).close()  # builds the cache
    (meta,) = (ctx.tmp / "cache").rglob("*.meta.json")
    meta.unlink()
    os.mkfifo(meta)
    x = inputs_for(model)
    ok, outcome = _blocked(lambda: edgepipe.Session(model, weight_cache=True).run(x), 60)
    assert ok, "a FIFO as the cache's .meta.json blocked the session"
    if isinstance(outcome, BaseException):
        raise AssertionError(f"{type(outcome).__name__}: {outcome}")
    assert meta.is_file(), "the cache was not rebuilt"
    return "rebuilt, no hang"


# ============================================================================
# 4. Arguments
# ============================================================================
def _pool(ctx: Ctx, model: str = "add_mul", **kwargs: Any) -> Any:
    import edgepipe

    kwargs.setdefault("weight_cache", False)
    return edgepipe.Pool(edgepipe.Model.load(ctx.models[model]), **kwargs)


@case("4")
def case_timeouts_huge_or_inf_wait_forever(ctx: Ctx) -> str:
    with _pool(ctx, workers=1) as pool:
        x = inputs_for(pool.model)
        for t in (1e10, 1e300, math.inf):
            pool.run(x, timeout=t)
            pool.submit(x, timeout=t).result(timeout=60)
    return "run and submit with 1e10, 1e300, inf"


@case("4")
def case_block_timeout_inf_waits_for_room(ctx: Ctx) -> str:
    with _pool(
        ctx, "weight_heavy", workers=1, queue_size=1, policy="block", block_timeout=math.inf
    ) as pool:
        x = inputs_for(pool.model)
        futures = [pool.submit(x) for _ in range(12)]
        futures += [pool.submit(x, block_timeout=math.inf) for _ in range(12)]
        for f in futures:
            f.result(timeout=60)
    return "24 submits into a queue of 1, none refused"


@case("4")
def case_nan_timeouts_are_refused(ctx: Ctx) -> str:
    with _pool(ctx, workers=1) as pool:
        x = inputs_for(pool.model)
        out = [
            expect_argument_error(lambda: pool.run(x, timeout=math.nan), "timeout"),
            expect_argument_error(lambda: pool.submit(x, timeout=math.nan), "timeout"),
            expect_argument_error(lambda: pool.submit(x, block_timeout=math.nan), "block_timeout"),
        ]
    out.append(expect_argument_error(lambda: _pool(ctx, block_timeout=math.nan), "block_timeout"))
    return out[0]


@case("4")
def case_timeout_zero_with_idle_workers_runs(ctx: Ctx) -> str:
    with _pool(ctx, workers=2) as pool:
        x = inputs_for(pool.model)
        pool.run(x)
        for _ in range(5):
            time.sleep(0.05)  # both workers idle
            pool.run(x, timeout=0)
    return "5 runs with timeout=0 on idle workers"


_BAD_ARGUMENTS: list[tuple[str, str, Callable[[Any, Any, Ctx], object]]] = [
    # (argument the error must name, what, call(edgepipe, model, ctx))
    ("workers", "workers=1.5", lambda ep, m, c: _pool(c, workers=1.5)),
    ("workers", "workers=0", lambda ep, m, c: _pool(c, workers=0)),
    ("workers", "workers=-1", lambda ep, m, c: _pool(c, workers=-1)),
    ("workers", "workers='2'", lambda ep, m, c: _pool(c, workers="2")),
    ("workers", "workers=3000", lambda ep, m, c: _pool(c, workers=3000)),
    ("threads", "Pool threads='2'", lambda ep, m, c: _pool(c, threads="2")),
    ("threads", "Pool threads=10**6", lambda ep, m, c: _pool(c, threads=10**6)),
    ("threads", "threads_per_worker=10**6", lambda ep, m, c: _pool(c, threads_per_worker=10**6)),
    ("queue_size", "queue_size=-1", lambda ep, m, c: _pool(c, queue_size=-1)),
    ("queue_size", "queue_size=0", lambda ep, m, c: _pool(c, queue_size=0)),
    ("queue_size", "queue_size=2.5", lambda ep, m, c: _pool(c, queue_size=2.5)),
    ("policy", "policy=3", lambda ep, m, c: _pool(c, policy=3)),
    ("policy", "policy='drop'", lambda ep, m, c: _pool(c, policy="drop")),
    ("block_timeout", "block_timeout='x'", lambda ep, m, c: _pool(c, block_timeout="x")),
    ("block_timeout", "block_timeout=-1", lambda ep, m, c: _pool(c, block_timeout=-1)),
    (
        "retire_after_failures",
        "retire_after_failures=-1",
        lambda ep, m, c: _pool(c, retire_after_failures=-1),
    ),
    (
        "retire_after_failures",
        "retire_after_failures='3'",
        lambda ep, m, c: _pool(c, retire_after_failures="3"),
    ),
    ("weight_cache", "Pool weight_cache=3", lambda ep, m, c: _pool(c, weight_cache=3)),
    ("accelerator", "Pool accelerator=3", lambda ep, m, c: _pool(c, accelerator=3)),
    ("signature", "Pool signature=3", lambda ep, m, c: _pool(c, signature=3)),
    ("threads", "compile threads='2'", lambda ep, m, c: m.compile(threads="2")),
    ("threads", "compile threads=1.5", lambda ep, m, c: m.compile(threads=1.5)),
    ("threads", "compile threads=-1", lambda ep, m, c: m.compile(threads=-1)),
    ("threads", "compile threads=10**6", lambda ep, m, c: m.compile(threads=10**6)),
    ("accelerator", "compile accelerator=3", lambda ep, m, c: m.compile(3)),
    ("accelerator", "compile accelerator='warp'", lambda ep, m, c: m.compile("warp")),
    ("weight_cache", "compile weight_cache=3", lambda ep, m, c: m.compile(weight_cache=3)),
    ("signature", "Session signature='nope'", lambda ep, m, c: ep.Session(m, signature="nope")),
    ("signature", "Session signature=3", lambda ep, m, c: ep.Session(m, signature=3)),
    (
        "allow_cpu_fallback",
        "Session allow_cpu_fallback='no'",
        lambda ep, m, c: ep.Session(m, allow_cpu_fallback="no"),
    ),
    ("path", "Model.load(3)", lambda ep, m, c: ep.Model.load(3)),
    ("path", "Model.load(None)", lambda ep, m, c: ep.Model.load(None)),
    (
        "verify",
        "Model.load(verify='yes')",
        lambda ep, m, c: ep.Model.load(c.models["add_mul"], verify="yes"),
    ),
    ("data", "Model.from_bytes(3)", lambda ep, m, c: ep.Model.from_bytes(3)),
    ("data", "Model.from_bytes('text')", lambda ep, m, c: ep.Model.from_bytes("text")),
    ("data", "Model.from_bytes(None)", lambda ep, m, c: ep.Model.from_bytes(None)),
    ("data", "Model.from_bytes([1, 2])", lambda ep, m, c: ep.Model.from_bytes([1, 2])),
    ("inputs", "Session.run(3)", lambda ep, m, c: m.compile().run(3)),
    ("inputs", "Session.run('x')", lambda ep, m, c: m.compile().run("x")),
]


def _bad_argument_case(index: int) -> Callable[[Ctx], str]:
    argument, _, call = _BAD_ARGUMENTS[index]

    def run_case(ctx: Ctx) -> str:
        import edgepipe

        model = edgepipe.Model.load(ctx.models["add_mul"])
        return expect_argument_error(lambda: call(edgepipe, model, ctx), argument)

    return run_case


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


for _i, (_arg, _what, _) in enumerate(_BAD_ARGUMENTS):
    _fn = _bad_argument_case(_i)
    _fn.__name__ = f"case_bad_argument_{_slug(_what)}"
    case("4")(_fn)


def _pool_call_cases() -> None:
    """Wrong arguments of calls on a live pool."""
    calls: list[tuple[str, str, Callable[[Any, list[np.ndarray]], object]]] = [
        ("timeout", "run timeout='1'", lambda p, x: p.run(x, timeout="1")),
        ("timeout", "run timeout=-1", lambda p, x: p.run(x, timeout=-1)),
        ("callback", "submit callback=3", lambda p, x: p.submit(x, callback=3)),
        ("block_timeout", "submit block_timeout='x'", lambda p, x: p.submit(x, block_timeout="x")),
        ("window", "map window=0", lambda p, x: list(p.map([x, x], window=0))),
        ("window", "map window=1.5", lambda p, x: list(p.map([x, x], window=1.5))),
        ("model", "swap(None)", lambda p, x: p.swap(None)),
        ("model", "swap(3)", lambda p, x: p.swap(3)),
        ("drain", "close(drain='no')", lambda p, x: p.close(drain="no")),
        ("inputs", "run(3)", lambda p, x: p.run(3)),
        ("inputs", "submit('x')", lambda p, x: p.submit("x")),
    ]
    for argument, what, call in calls:

        def run_case(ctx: Ctx, argument: str = argument, call: Any = call) -> str:
            with _pool(ctx, workers=1) as pool:
                x = inputs_for(pool.model)
                detail = expect_argument_error(lambda: call(pool, x), argument)
                same(pool.run(x), reference(ctx.models["add_mul"], x))  # still serving
            return detail

        run_case.__name__ = f"case_bad_argument_pool_{_slug(what)}"
        case("4")(run_case)


_pool_call_cases()


@case("4")
def case_close_returns_while_a_callback_blocks(ctx: Ctx) -> str:
    gate = threading.Event()
    entered = threading.Event()
    pool = _pool(ctx, workers=1)
    x = inputs_for(pool.model)

    def stuck(_future: Any) -> None:
        entered.set()
        gate.wait()

    pool.submit(x, callback=stuck)
    pool.submit(x)
    assert entered.wait(30), "the callback never ran"
    started = time.monotonic()
    ok, outcome = _blocked(lambda: pool.close(), 30)
    took = time.monotonic() - started
    gate.set()
    assert ok, "close() did not return within 30 s while a callback blocked"
    if isinstance(outcome, BaseException):
        raise AssertionError(f"close() raised {type(outcome).__name__}: {outcome}")
    return f"close() returned after {took:.1f} s"


@case("4")
def case_collected_pool_drains_or_fails_its_futures(ctx: Ctx) -> str:
    from edgepipe import errors

    pool = _pool(ctx, "weight_heavy", workers=1, queue_size=64)
    x = inputs_for(pool.model)
    futures = [pool.submit(x) for _ in range(40)]
    del pool
    gc.collect()
    done, failed = 0, 0
    for f in futures:
        try:
            f.result(timeout=60)
            done += 1
        except errors.PoolClosedError:
            failed += 1
        except BaseException as exc:
            raise AssertionError(
                f"a queued request ended with {type(exc).__name__}: {exc}; "
                "expected its outputs or PoolClosedError"
            ) from exc
    return f"{done} drained, {failed} PoolClosedError"


@case("4")
def case_submit_copies_its_inputs(ctx: Ctx) -> str:
    with _pool(ctx, "weight_heavy", workers=1, queue_size=64) as pool:
        x = inputs_for(pool.model)
        want = reference(ctx.models["weight_heavy"], x)
        ahead = [pool.submit(x) for _ in range(8)]  # keep the worker busy
        mine = [a.copy() for a in x]
        fut = pool.submit(mine)
        for a in mine:
            a[...] = 0
        same(fut.result(timeout=60), want)
        for f in ahead:
            f.result(timeout=60)
    return "the request ran on the inputs as they were at submit"


# ============================================================================
# 5. The command line
# ============================================================================
@case("5")
def case_cli_run_inputs_npy(ctx: Ctx) -> str:
    np.save(ctx.tmp / "x.npy", np.zeros((1, 4), np.float32))
    proc = cli(
        "run",
        str(ctx.models["add_mul"]),
        "--inputs",
        str(ctx.tmp / "x.npy"),
        "--outputs",
        str(ctx.tmp / "out.npz"),
    )
    return cli_error(proc, "x.npy")


@case("5")
def case_cli_bench_negative_clients(ctx: Ctx) -> str:
    proc = cli(
        "bench", str(ctx.models["add_mul"]), "--workers", "1", "--clients", "-1", "--runs", "1"
    )
    return cli_error(proc, "clients")


@case("5")
def case_cli_bad_log_level(ctx: Ctx) -> str:
    proc = cli("info", str(ctx.models["add_mul"]), env={"EDGEPIPE_LOG_LEVEL": "loud"})
    return cli_error(proc, "EDGEPIPE_LOG_LEVEL")


@case("5")
def case_cli_broken_pipe(ctx: Ctx) -> str:
    read, write = os.pipe()
    os.close(read)  # like `| head` that has already exited
    try:
        proc = cli("info", "--json", str(ctx.models["face_landmark"]), stdout=write)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    return f"exit {proc.returncode}, quiet stderr"


@case("5")
def case_cli_run_outputs_written_exactly_where_named(ctx: Ctx) -> str:
    np.savez(ctx.tmp / "in.npz", a=np.ones((1, 4), np.float32), b=np.ones((1, 4), np.float32))
    out = ctx.tmp / "result.bin"
    proc = cli(
        "run",
        str(ctx.models["add_mul"]),
        "--inputs",
        str(ctx.tmp / "in.npz"),
        "--outputs",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file(), sorted(p.name for p in ctx.tmp.iterdir())
    assert not (ctx.tmp / "result.bin.npz").exists(), "wrote result.bin.npz instead"
    with np.load(out) as data:
        np.testing.assert_array_equal(data["sum"], np.full((1, 4), 2, np.float32))
    return "wrote result.bin"


@case("5")
def case_cli_run_npz_saved_positionally_runs_or_names_its_key(ctx: Ctx) -> str:
    # np.savez(f, arr) stores the array under "arr_0".
    np.savez(ctx.tmp / "in.npz", np.zeros((1, 96, 96, 3), np.float32))
    proc = cli(
        "run",
        str(ctx.models["convnet"]),
        "--inputs",
        str(ctx.tmp / "in.npz"),
        "--outputs",
        str(ctx.tmp / "out.npz"),
        "--quiet",
    )
    if proc.returncode == 0:
        assert (ctx.tmp / "out.npz").is_file()
        return "arr_0 taken as the first input"
    return cli_error(proc, "arr_0")


# -- pytest glue (parent side) -------------------------------------------------
def pytest_params(number: str) -> list[Any]:
    """``pytest.param`` per case of section ``number``, strict xfail where it waits."""
    import pytest

    return [
        pytest.param(
            c.name,
            id=c.name,
            marks=[pytest.mark.xfail(strict=True, reason=f"needs {c.needs}")] if c.needs else [],
        )
        for c in section(number)
    ]


def selected(request: Any, module_file: str) -> list[str]:
    """Names of the cases the session will run from the test module ``module_file``."""
    names = []
    for item in request.session.items:
        if str(item.path) == module_file and hasattr(item, "callspec"):
            name = item.callspec.params.get("name")
            if name in CASES:
                names.append(name)
    return names
