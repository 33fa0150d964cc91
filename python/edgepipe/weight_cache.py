"""The XNNPACK weight cache: where a model's cache file lives, and its lifecycle.

Layer: above the model, below accelerators, sessions and pools.

LiteRT's XNNPACK weight cache is unsafe to hand a shared path as-is (see
``docs/weight-cache.md``): it rebuilds a file it cannot load *in place*
(truncating it under every process that maps it), aborts the process when a
write fails (full disk), and trusts whatever complete cache it finds, so a
cache of another model with the same layout, or flipped bits in the packed
weights, silently give wrong outputs. edgepipe therefore never lets LiteRT
write to a shared cache file:

* a cache is built by a child process into a private temp file, checked,
  and moved into place with ``os.replace`` under an exclusive ``flock``;
  a ``.meta.json`` sidecar binds it to the model's sha256, the runtime
  version, its size and its own sha256;
* a cache is used only after it was opened and checked against its sidecar;
  LiteRT then gets ``/proc/self/fd/N`` of that open file, so it maps exactly
  the bytes that were checked, even if the path is replaced meanwhile;
* anything that goes wrong means running without a weight cache, with the
  reason recorded as an event.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _core
from ._files import atomic_write, cache_dir, hash_fd, unlink_logged
from ._platform import need
from ._runtime import runtime_version
from .errors import InputError
from .model import Model

log = logging.getLogger("edgepipe")

_META_SUFFIX = ".meta.json"
_LOCK_SUFFIX = ".lock"
_META_FORMAT = 1
# Seconds a child may take to build a cache, and a waiter to wait for it.
_BUILD_TIMEOUT = 300.0
# XNNPACK's cache header: version, buffer list offset and size (u64), stale (u8).
_HEADER = struct.Struct("<QQQB")

# Hashes of cache files already checked in this process, by file identity.
_checked: dict[tuple[int, int, int, int, int], str] = {}
_checked_lock = threading.Lock()


def weight_cache_path(model_sha256: str, runtime_version: str) -> Path:
    """The XNNPACK weight-cache file for one model under one runtime version.

    Instances that name the same file share its packed weights through one
    file mapping; the runtime version is part of the name because packing
    may change between releases.
    """
    folder = cache_dir() / "xnnpack"
    folder.mkdir(parents=True, exist_ok=True)
    safe_version = "".join(c if c.isalnum() or c in ".-" else "_" for c in runtime_version)
    return folder / f"{model_sha256[:40]}-litert{safe_version}.xnnpack_cache"


class CacheUnavailable(Exception):
    """Why a weight cache cannot be used (the run goes on without one)."""


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _header_problem(fd: int, size: int) -> str | None:
    """What is wrong with an XNNPACK cache header (None: looks complete)."""
    head = os.pread(fd, _HEADER.size, 0)
    if len(head) < _HEADER.size:
        return f"{size} bytes is too short for a cache header"
    version, list_offset, list_size, stale = _HEADER.unpack(head)
    if version == 0:
        return "the header is marked invalid (the build did not finish)"
    if stale:
        return "the header is marked stale"
    if list_offset < _HEADER.size or list_offset + list_size != size:
        return "the buffer list does not end the file (truncated or foreign)"
    return None


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file (a FIFO there must not block)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is {_kind(st.st_mode)}, not a regular file")
        return os.pread(fd, max(st.st_size, 0), 0)
    finally:
        os.close(fd)


def _check_open(
    fd: int, path: Path, model_sha256: str, runtime: str, *, remember: bool = True
) -> str | None:
    """Why the open cache file ``fd`` (at ``path``) is unusable (None: usable).

    ``remember``: keep the hash by file identity (not for one-off memfds).
    """
    try:
        meta = json.loads(_read_regular(_sibling(path, _META_SUFFIX)))
    except FileNotFoundError:
        return "it has no .meta.json (not built by edgepipe, or the build was cut short)"
    except (OSError, ValueError) as exc:
        return f"its .meta.json is unreadable: {exc}"
    if not isinstance(meta, dict) or meta.get("format") != _META_FORMAT:
        return "its .meta.json has an unknown format"
    if meta.get("model_sha256") != model_sha256:
        return f"it was built for another model ({str(meta.get('model_sha256'))[:12]}…)"
    if meta.get("runtime") != runtime:
        return f"it was built by runtime {meta.get('runtime')!r}, not {runtime!r}"
    st = os.fstat(fd)
    if st.st_size != meta.get("size"):
        return f"it has {st.st_size} bytes, its build wrote {meta.get('size')}"
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _checked_lock:
        digest = _checked.get(key) if remember else None
    if digest is None:
        digest, _ = hash_fd(fd)
        if remember:
            with _checked_lock:
                _checked[key] = digest
    if digest != meta.get("sha256"):
        return "its content does not match the sha256 of its build (corrupted)"
    return None


def _sealed_copy(fd: int, size: int, name: str) -> int | None:
    """A memfd holding the ``size`` bytes of ``fd``, sealed against any change.

    LiteRT maps the cache it is given for as long as an instance lives; a file
    truncated under that mapping kills the process with SIGBUS at the next
    read, and edgepipe cannot stop another process truncating a file. A sealed
    memfd (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) cannot be
    written, shrunk or grown by anyone, so that never happens. Returns None
    where memfds do not exist (not Linux): the file itself is used then.
    """
    try:
        import fcntl  # Linux-only, like memfds
    except ImportError:
        return None
    if not hasattr(os, "memfd_create") or not hasattr(fcntl, "F_ADD_SEALS"):
        return None
    try:
        mfd = os.memfd_create(name[:200], os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except OSError:
        return None
    try:
        done = 0
        while done < size:
            n = os.sendfile(mfd, fd, done, size - done)
            if n == 0:
                raise CacheUnavailable(f"it shrank to {done} bytes while being read")
            done += n
        fcntl.fcntl(
            mfd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL,
        )
    except BaseException:
        os.close(mfd)
        raise
    return mfd


def _open_checked(path: Path, model_sha256: str, runtime: str) -> tuple[int | None, str]:
    """An fd of a sealed copy of ``path`` if it holds a checked cache of the model.

    The copy (see :func:`_sealed_copy`) is made first and then checked, so
    the bytes checked are the bytes LiteRT maps. Else (None, why).
    """
    try:
        # O_NONBLOCK: a FIFO put at the path must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None, "there is no cache file yet"
    except OSError as exc:
        return None, f"it cannot be opened: {exc}"
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            sealed = _sealed_copy(fd, st.st_size, "edgepipe-weight-cache:" + path.name)
            if sealed is not None:
                os.close(fd)
                fd = sealed
            why = _check_open(fd, path, model_sha256, runtime, remember=sealed is None)
        else:
            why = f"it is {_kind(st.st_mode)}, not a regular file"
    except CacheUnavailable as exc:
        why = str(exc)
    except OSError as exc:
        why = f"it cannot be read: {exc}"
    if why is None:
        return fd, ""
    os.close(fd)
    return None, why


def _kind(mode: int) -> str:
    """What a non-regular file is, for messages: "a FIFO (named pipe)", ..."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def refuse_foreign_path(path: Path) -> None:
    """Refuse an explicit ``weight_cache=PATH`` that is not edgepipe's to replace.

    A cache is rebuilt by replacing the file at PATH, and ``.lock`` and
    ``.meta.json`` files are created beside it, so PATH must be absent or a
    weight cache: a regular file with edgepipe's ``.meta.json`` or a complete
    XNNPACK header. Anything else (a device node, a FIFO, a symbolic link, a
    file of yours) is refused before anything is created.

    Raises:
        InputError: naming the path and what it is.
    """

    def refuse(what: str, at: Path = path) -> None:
        raise InputError(
            f"weight_cache={str(path)!r}: {at} is {what}; edgepipe only writes a weight "
            "cache where there is none or where it built one, so it will not replace it. "
            "Name a new file, or pass weight_cache=True for edgepipe's own cache folder"
        )

    if "\0" in str(path):
        raise InputError(f"weight_cache={str(path)!r} contains a NUL byte; a path cannot hold one")
    for sibling in (_sibling(path, _LOCK_SUFFIX), _sibling(path, _META_SUFFIX)):
        try:
            st = os.lstat(sibling)
        except FileNotFoundError:
            continue
        except OSError as exc:
            refuse(f"unreadable ({exc.strerror})", sibling)
        if not stat.S_ISREG(st.st_mode):
            refuse(_kind(st.st_mode), sibling)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        refuse(f"unreadable ({exc.strerror})")
    if not stat.S_ISREG(st.st_mode):
        refuse(_kind(st.st_mode))
    try:
        meta = json.loads(_read_regular(_sibling(path, _META_SUFFIX)))
        if isinstance(meta, dict) and meta.get("format") == _META_FORMAT:
            return
    except (OSError, ValueError):
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        refuse(f"unreadable ({exc.strerror})")
    try:
        if st.st_size and _header_problem(fd, st.st_size) is None:
            return  # a complete XNNPACK cache, e.g. one whose sidecar was lost
    finally:
        os.close(fd)
    refuse(
        "a file that is not an XNNPACK weight cache built by edgepipe"
        if st.st_size
        else "an empty file edgepipe did not create"
    )


def _build_in_child(model: Model, out: Path) -> None:
    """Have a child process compile the model with ``out`` as its weight cache.

    A child because XNNPACK aborts the process when a cache write fails.
    """
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["EDGEPIPE_LITERT_LIBRARY"] = model._core.runtime.library_path
    child = (
        "import sys; from edgepipe.weight_cache import _build_main; sys.exit(_build_main(sys.argv))"
    )
    cmd = [sys.executable, "-c", child, str(out)]
    try:
        proc = subprocess.run(
            cmd,
            input=bytes(model._core.bytes),
            capture_output=True,
            timeout=_BUILD_TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CacheUnavailable(f"building it took over {_BUILD_TIMEOUT:.0f} s") from exc
    except OSError as exc:
        raise CacheUnavailable(f"the build process could not start: {exc}") from exc
    if proc.returncode != 0:
        lines = [
            ln
            for ln in proc.stderr.decode(errors="replace").splitlines()
            if ln.strip() and "Created TensorFlow Lite" not in ln
        ]
        if proc.returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-proc.returncode).name}"
            except ValueError:
                how = f"was killed by signal {-proc.returncode}"
        else:
            how = f"failed with exit code {proc.returncode}"
        raise CacheUnavailable(f"the build process {how}: " + " | ".join(lines[-3:]))


def _build(model: Model, path: Path, runtime: str) -> None:
    """Build the cache into a temp file and move it, then its sidecar, into place.

    Called with the lock held, so temp files of this path left by anyone else
    are leftovers of a killed build.
    """
    folder = path.parent
    for leftover in folder.glob(path.name + ".*.tmp"):
        unlink_logged(leftover)
    # A bad file takes disk space the build may need; processes that map it
    # keep their mapping.
    unlink_logged(path)
    unlink_logged(_sibling(path, _META_SUFFIX))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        _build_in_child(model, tmp)
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise CacheUnavailable("the runtime wrote no cache file") from exc
        try:
            size = os.fstat(fd).st_size
            problem = _header_problem(fd, size)
            if problem:
                raise CacheUnavailable(f"the runtime wrote an incomplete cache: {problem}")
            os.fsync(fd)
            digest, _ = hash_fd(fd)
        finally:
            os.close(fd)
        meta = {
            "format": _META_FORMAT,
            "model_sha256": model.sha256,
            "runtime": runtime,
            "size": size,
            "sha256": digest,
        }
        # The cache first: a crash between the two leaves no sidecar (or an
        # old one that does not match), which means a rebuild, never a wrong
        # cache. atomic_write fsyncs the folder, making both renames durable.
        os.replace(tmp, path)
        atomic_write(_sibling(path, _META_SUFFIX), json.dumps(meta))
    except OSError as exc:
        raise CacheUnavailable(f"cannot write in {folder}: {exc}") from exc
    finally:
        unlink_logged(tmp)


def _lock(path: Path) -> int:
    """Take the exclusive build lock of ``path`` (its fd; close to release).

    Raises:
        PlatformError: this platform has no ``fcntl`` (no shared weight cache).
    """
    fcntl = need("fcntl", "a shared XNNPACK weight cache (its build lock)")
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(_sibling(path, _LOCK_SUFFIX), flags, 0o644)
    deadline = time.monotonic() + _BUILD_TIMEOUT + 30
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError as exc:
            if time.monotonic() > deadline:
                os.close(fd)
                raise CacheUnavailable("timed out waiting for another process building it") from exc
            time.sleep(0.05)


def open_weight_cache(model: Model, path: Path, runtime: str, *, build: bool = True) -> int:
    """An fd of a checked weight cache of ``model`` at ``path``, built if needed.

    Args:
        build: build the cache when there is no good one (else give up).

    Raises:
        CacheUnavailable: no usable cache could be had; the message says why.
    """
    fd, why = _open_checked(path, model.sha256, runtime)
    if fd is not None:
        return fd
    if not build:
        raise CacheUnavailable(f"{why}; the next Pool or Session of the model builds it")
    try:
        lock = _lock(path)
    except OSError as exc:
        raise CacheUnavailable(f"{why}, and it cannot be built: {exc}") from exc
    try:
        # Someone may have built it while this process waited for the lock.
        fd, why = _open_checked(path, model.sha256, runtime)
        if fd is not None:
            return fd
        if why != "there is no cache file yet":
            log.warning("rebuilding the weight cache %s: %s", path, why)
        _build(model, path, runtime)
        fd, why = _open_checked(path, model.sha256, runtime)
        if fd is None:
            raise CacheUnavailable(f"the fresh build does not check out: {why}")
        return fd
    finally:
        os.close(lock)


def _fd_path(fd: int) -> str | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return f"{folder}/{fd}"
    return None


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def resolve_weight_cache(
    model: Model, weight_cache: bool | str | os.PathLike[str] | None
) -> WeightCache:
    """The weight cache to compile with: checked (built if needed), or none.

    Never raises for a cache that cannot be had: the returned object then
    has an empty ``core_path`` and the reason in its ``events``.
    """
    return WeightCache(model, False if weight_cache is None else weight_cache)


class WeightCache:
    """The weight cache of one Session or Pool: what the core is given.

    ``core_path`` is ``""`` (no cache) or ``/proc/self/fd/N`` for an open,
    checked cache file. A pool keeps the same path for its whole life (the
    core cannot change it), so :meth:`swap_to` points fd N at the next
    model's cache, or at a directory, which LiteRT cannot use as a cache,
    when the next model has none.
    """

    def __init__(self, model: Model, requested: bool | str | os.PathLike[str]) -> None:
        """Open (building if needed) the cache ``requested`` for ``model``.

        Args:
            model: the model the cache is for.
            requested: False for none, True for edgepipe's cache file of the
                model, or a path for a specific file.
        """
        self.events: list[dict[str, Any]] = []
        self.core_path = ""
        self._explicit = None if requested is True else Path(requested) if requested else None
        self._fd: int | None = None
        self._finalizer: weakref.finalize[Any, WeightCache] | None = None
        if requested is False or requested is None:
            return
        if self._explicit is not None:
            refuse_foreign_path(self._explicit)
        fd = self._open(model)
        if fd is None:
            return
        core_path = _fd_path(fd)
        if core_path is None:
            os.close(fd)
            self._record(
                "this platform has no /proc/self/fd or /dev/fd to hand over a checked cache file"
            )
            return
        self._fd = fd
        self.core_path = core_path
        self._finalizer = weakref.finalize(self, _close_fd, fd)

    def _path_for(self, model: Model) -> Path:
        if self._explicit is not None:
            return self._explicit
        return weight_cache_path(model.sha256, runtime_version())

    def _open(self, model: Model, build: bool = True) -> int | None:
        try:
            path = self._path_for(model)
            path.parent.mkdir(parents=True, exist_ok=True)
            return open_weight_cache(model, path, runtime_version(), build=build)
        except CacheUnavailable as exc:
            self._record(f"no XNNPACK weight cache for {model.sha256[:12]}…: {exc}")
        except OSError as exc:
            self._record(
                f"no XNNPACK weight cache for {model.sha256[:12]}…: "
                f"cannot use the cache folder: {exc}"
            )
        return None

    def _record(self, why: str) -> None:
        log.warning("%s; running without it", why)
        self.events.append(
            {
                "from": "weight_cache",
                "to": None,
                "stage": "weight_cache",
                "error": why,
                "time": time.time(),
            }
        )

    def swap_to(self, model: Model, swap: Callable[[], None]) -> None:
        """Call ``swap()`` with the core's cache path pointing at ``model``'s cache.

        A missing or bad cache is not built here: a build takes a child
        process (about a second), which would delay the swap and let a
        health watch that started counting before the swap judge the old
        model's traffic. The new instances then run without a cache (an
        event says so). If ``swap`` raises, the path points back at the
        previous cache.
        """
        if self._fd is None:
            swap()
            return
        previous = os.dup(self._fd)
        try:
            fd = self._open(model, build=False)
            if fd is None:
                # A directory: LiteRT can neither load nor build a cache there.
                fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
            os.dup2(fd, self._fd, inheritable=False)
            os.close(fd)
            try:
                swap()
            except BaseException:
                os.dup2(previous, self._fd, inheritable=False)
                raise
        finally:
            os.close(previous)

    def close(self) -> None:
        """Close the cache file (instances compiled from it keep their mapping)."""
        if self._finalizer is not None:
            self._finalizer()
        self._fd = None
        self.core_path = ""


def _build_main(argv: list[str]) -> int:
    """Child side of :func:`_build_in_child`: model bytes on stdin, cache path in argv."""
    model = Model.from_bytes(sys.stdin.buffer.read())
    _core.Session(model._core, ["cpu"], 1, argv[-1], 0, False)
    return 0
