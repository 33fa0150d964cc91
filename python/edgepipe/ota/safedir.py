"""A directory opened once and used only through its file descriptor.

Every file of the model store is opened relative to a directory fd with
``O_NOFOLLOW``: a symlink planted anywhere inside the store (a file, ``models/``,
``downloads/``, ``.lock``) is refused with :class:`UnsafePathError` instead of
being followed, so nothing outside the directory the user named is ever read,
written, truncated or deleted. Files are also checked with ``fstat`` after
opening: only regular files are used (a FIFO or device is refused without
blocking, thanks to ``O_NONBLOCK``), and a file about to be written must have a
single link (a hard link to an outside file is refused).

Writes are atomic: a fresh temporary (``O_EXCL``) is written and fsynced, then
renamed over the target with ``renameat`` (which replaces a symlink rather than
following it), and the directory is fsynced.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import StoreError, UnsafePathError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _refusal(path: str, e: OSError) -> StoreError:
    if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EMLINK):
        return UnsafePathError(f"{path} is a symlink or not a regular file/directory; refused")
    return StoreError(f"{path}: {e.strerror or e}")


def check_name(name: str) -> str:
    """A single path component of ours: no separators, no dot names, no NUL."""
    if (
        not name
        or "/" in name
        or "\0" in name
        or name in (".", "..")
        or (os.sep != "/" and os.sep in name)
    ):
        raise StoreError(f"bad file name {name!r} inside the store")
    return name


class SafeDir:
    """An open directory; every method takes plain names inside it.

    Args:
        fd: an open directory file descriptor, owned (closed by :meth:`close`).
        path: its path, for messages and for handing files to other libraries.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open_root(cls, path: str | os.PathLike[str], *, create: bool = True) -> SafeDir:
        """Open (and create) the directory the user named; a symlink as the last component
        is refused too, since nothing about the store should be redirected."""
        p = Path(path)
        if create:
            try:
                p.mkdir(parents=True, exist_ok=True)
            except FileExistsError as e:
                raise UnsafePathError(f"{p} exists and is not a directory") from e
            except OSError as e:
                raise StoreError(f"cannot create {p}: {e.strerror or e}") from e
        try:
            fd = os.open(p, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError as e:
            raise _refusal(str(p), e) from e
        return cls(fd, p)

    def close(self) -> None:
        """Close the directory fd (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _p(self, name: str) -> str:
        return str(self.path / name)

    # ------------------------------------------------------------- directories

    def subdir(self, name: str, *, create: bool = True) -> SafeDir:
        """Open the subdirectory ``name`` (created if missing); a symlink is refused."""
        check_name(name)
        if create:
            with contextlib.suppress(FileExistsError):
                try:
                    os.mkdir(name, 0o755, dir_fd=self.fd)
                except OSError as e:
                    if e.errno == errno.EEXIST:
                        raise FileExistsError from e
                    raise StoreError(f"cannot create {self._p(name)}: {e.strerror or e}") from e
        try:
            fd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        except OSError as e:
            raise _refusal(self._p(name), e) from e
        return SafeDir(fd, self.path / name)

    def names(self) -> list[str]:
        """Entry names, sorted."""
        fd = os.dup(self.fd)
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def fsync(self) -> None:
        """Make renames and unlinks inside this directory durable."""
        os.fsync(self.fd)

    # ------------------------------------------------------------------- files

    def lstat(self, name: str) -> os.stat_result | None:
        """``lstat`` of ``name``, or None if it does not exist."""
        try:
            return os.stat(check_name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_read(self, name: str) -> int:
        """An fd of the regular file ``name`` for reading; the caller closes it.

        Raises FileNotFoundError if absent, UnsafePathError if it is not a
        regular file (never blocks on a FIFO).
        """
        try:
            fd = os.open(
                check_name(name), os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=self.fd
            )
        except FileNotFoundError:
            raise
        except OSError as e:
            raise _refusal(self._p(name), e) from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePathError(f"{self._p(name)} is not a regular file; refused")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_bytes(self, name: str, max_bytes: int) -> bytes:
        """The whole file, refusing more than ``max_bytes`` (FileNotFoundError if absent)."""
        fd = self.open_read(name)
        try:
            chunks = []
            total = 0
            while True:
                block = os.read(fd, min(1 << 20, max_bytes + 1 - total))
                if not block:
                    break
                chunks.append(block)
                total += len(block)
                if total > max_bytes:
                    raise StoreError(f"{self._p(name)} is larger than {max_bytes} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def hash(self, name: str) -> tuple[str, int]:
        """Hex sha256 and size of the regular file ``name``."""
        fd = self.open_read(name)
        try:
            h = hashlib.sha256()
            size = 0
            while block := os.pread(fd, 1 << 20, size):
                h.update(block)
                size += len(block)
            return h.hexdigest(), size
        finally:
            os.close(fd)

    def open_write(self, name: str, *, append: bool) -> int:
        """An fd to write ``name`` (created if missing); refuses links and special files."""
        flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC
        if append:
            flags |= os.O_APPEND
        try:
            fd = os.open(check_name(name), flags, 0o644, dir_fd=self.fd)
        except OSError as e:
            raise _refusal(self._p(name), e) from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise UnsafePathError(
                    f"{self._p(name)} is not a plain regular file (special or hard-linked); refused"
                )
            if not append:
                os.ftruncate(fd, 0)
        except OSError as e:
            os.close(fd)
            raise StoreError(f"{self._p(name)}: {e.strerror or e}") from e
        except BaseException:
            os.close(fd)
            raise
        return fd

    def create_temp(self, prefix: str) -> tuple[str, int]:
        """A new, exclusive temporary file: ``(name, fd)``."""
        name = f"{prefix}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                0o644,
                dir_fd=self.fd,
            )
        except OSError as e:
            raise _refusal(self._p(name), e) from e
        return name, fd

    def write_atomic(self, name: str, data: bytes, *, sync_dir: bool = True) -> None:
        """Replace ``name`` with ``data`` atomically and durably."""
        check_name(name)
        tmp, fd = self.create_temp(name)
        try:
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.replace(tmp, name)
            if sync_dir:
                self.fsync()
        except OSError as e:
            self.unlink(tmp)
            raise StoreError(f"writing {self._p(name)} failed: {e.strerror or e}") from e
        except BaseException:
            self.unlink(tmp)
            raise

    def replace(self, src: str, dst: str, dst_dir: SafeDir | None = None) -> None:
        """``renameat(src, dst)``; a symlink at ``dst`` is replaced, never followed."""
        target = self if dst_dir is None else dst_dir
        os.replace(check_name(src), check_name(dst), src_dir_fd=self.fd, dst_dir_fd=target.fd)

    def link_new(self, src: str, dst: str) -> bool:
        """Hard-link ``src`` to a new name ``dst``; False if ``dst`` exists already."""
        try:
            os.link(
                check_name(src),
                check_name(dst),
                src_dir_fd=self.fd,
                dst_dir_fd=self.fd,
                follow_symlinks=False,
            )
        except FileExistsError:
            return False
        return True

    def unlink(self, name: str) -> bool:
        """Remove the entry ``name`` (a symlink itself, never its target); True if removed.

        Directories are left alone (a planted directory is not ours to delete).
        """
        try:
            os.unlink(check_name(name), dir_fd=self.fd)
        except FileNotFoundError:
            return False
        except OSError:
            return False
        return True

    @contextlib.contextmanager
    def locked(self, name: str = ".lock") -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``name`` (a regular file, never followed)."""
        fd = self.open_write(name, append=True)
        try:
            if fcntl is not None:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                        break
                    except InterruptedError:
                        continue
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @contextlib.contextmanager
    def try_locked(self, name: str = ".lock") -> Iterator[bool]:
        """Like :meth:`locked` but never waits: yields whether the lock was taken."""
        fd = self.open_write(name, append=True)
        try:
            taken = True
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    taken = False
            yield taken
        finally:
            os.close(fd)  # closing releases the flock, if taken


def read_small_file(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """Read a small file the user named (a CLI argument): regular files only, capped.

    A FIFO, device (``/dev/zero``) or directory is refused at once with
    :class:`UnsafePathError` instead of blocking or filling memory.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except OSError as e:
        raise StoreError(f"cannot read {what} {path}: {e.strerror or e}") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(f"{what} {path} is not a regular file")
        data = os.read(fd, max_bytes + 1)
        while len(data) <= max_bytes and (more := os.read(fd, max_bytes + 1 - len(data))):
            data += more
        if len(data) > max_bytes:
            raise StoreError(f"{what} {path} is larger than {max_bytes} bytes")
        return data
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte of ``data`` is written."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


__all__ = ["SafeDir", "check_name", "read_small_file", "write_all"]
