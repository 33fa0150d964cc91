"""edgepipe's network fetcher for python-tuf: raw bytes, one deadline, a byte cap.

:class:`BoundedFetcher` implements ``tuf.ngclient.FetcherInterface`` on top of
:mod:`http.client` with a socket wrapper that re-arms its timeout before every
``recv``/``send`` to the time left until one overall deadline. So:

* the deadline covers connect, TLS handshake, request, status line, headers and
  body together: a server trickling one header byte every half second cannot
  keep a fetch alive past ``deadline_s`` (slow-retrieval attack);
* bytes are returned exactly as they came off the wire: ``http.client`` never
  undoes a ``Content-Encoding`` (``gzip, gzip`` stays a small compressed body
  that then fails its length/hash check instead of expanding to gigabytes);
* ``max_bytes`` caps every response before anything could decode it, and a
  ``Content-Length`` above the cap is refused before the body is read
  (endless-data attack). TUF's own per-file ``max_length`` applies on top.

Only ``http`` and ``https`` URLs are fetched; redirects are not followed.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from tuf.api import exceptions as tuf_exc
from tuf.ngclient import FetcherInterface

DEFAULT_DEADLINE_S = 60.0
DEFAULT_MAX_BYTES = 2 << 30
CHUNK_SIZE = 64 * 1024


class _Deadline:
    def __init__(self, seconds: float, url: str) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.url = url

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise tuf_exc.SlowRetrievalError(
                f"{self.url}: no complete response within {self.seconds:g} s"
            )
        return remaining


class _DeadlineRaw(io.RawIOBase):
    """The read side of a socket whose every ``recv`` waits at most until the deadline."""

    def __init__(self, owner: _DeadlineSocket) -> None:
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        deadline = self._owner.deadline
        self._owner.sock.settimeout(deadline.left())
        try:
            return self._owner.sock.recv_into(b)
        except TimeoutError as e:
            raise tuf_exc.SlowRetrievalError(
                f"{deadline.url}: no complete response within {deadline.seconds:g} s"
            ) from e

    def close(self) -> None:
        if not self.closed:
            self._owner.release()
        super().close()


class _DeadlineSocket:
    """What :class:`http.client.HTTPConnection` needs of a socket, under one deadline.

    Like a real socket, it stays open while a file made by :meth:`makefile` is open.
    """

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self._readers = 0
        self._closing = False

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.deadline.left())
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kw: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_DeadlineRaw(self))

    def settimeout(self, value: float | None) -> None:
        return None  # the deadline decides

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def release(self) -> None:
        self._readers -= 1
        if self._closing and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self._closing = True
        if self._readers <= 0:
            self.sock.close()


class _Connection(http.client.HTTPConnection):
    def __init__(
        self,
        host: str,
        port: int | None,
        deadline: _Deadline,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
    ) -> None:
        super().__init__(host, port)
        self._deadline = deadline
        self._tls = tls
        self._connect_timeout = connect_timeout

    def connect(self) -> None:
        timeout = min(self._deadline.left(), self._connect_timeout)
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(self._deadline.left())
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(sock, self._deadline)  # type: ignore[assignment]


class BoundedFetcher(FetcherInterface):
    """A TUF fetcher with an overall deadline and a byte cap, returning raw bytes.

    Args:
        deadline_s: seconds one fetch may take in all (connect to last body byte).
        max_bytes: the most bytes any one response may have.
        connect_timeout: seconds the TCP connect may take (within the deadline).
        ssl_context: for https URLs; the default verifies certificates.
        user_agent: the User-Agent header.
    """

    def __init__(
        self,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "edgepipe-ota",
    ) -> None:
        if deadline_s <= 0 or max_bytes <= 0:
            raise ValueError("deadline_s and max_bytes must be positive")
        self.deadline_s = float(deadline_s)
        self.max_bytes = int(max_bytes)
        self.connect_timeout = float(connect_timeout)
        self.ssl_context = ssl_context
        self.user_agent = user_agent

    def _fetch(self, url: str) -> Iterator[bytes]:
        conn, resp = self._get(url, 0)
        return _Body(self._chunks(conn, resp, url), conn, resp)

    def fetch_from(self, url: str, start: int) -> tuple[int, Iterator[bytes]]:
        """Resume: the bytes of ``url`` from offset ``start`` (an HTTP Range request).

        Returns ``(offset, chunks)``: ``offset`` is ``start`` if the server
        honoured the range, or 0 if it sent the whole file (start over).
        """
        if start <= 0:
            return 0, self.fetch(url)
        try:
            conn, resp = self._get(url, start)
        except tuf_exc.DownloadError:
            raise
        except Exception as e:
            raise tuf_exc.DownloadError(f"GET {url}: {type(e).__name__}: {e}") from e
        return (start if resp.status == 206 else 0), _Body(
            self._chunks(conn, resp, url), conn, resp
        )

    def _get(self, url: str, start: int) -> tuple[_Connection, http.client.HTTPResponse]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise tuf_exc.DownloadError(f"unsupported URL {url!r} (http or https only)")
        deadline = _Deadline(self.deadline_s, url)
        tls = None
        if parts.scheme == "https":
            tls = self.ssl_context or ssl.create_default_context()
        conn = _Connection(parts.hostname, parts.port, deadline, tls, self.connect_timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"Accept-Encoding": "identity", "User-Agent": self.user_agent}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            if resp.status == 206 and start:
                # Appending bytes from anywhere else would splice two files together.
                cr = resp.getheader("Content-Range") or ""
                if not cr.startswith(f"bytes {start}-"):
                    raise tuf_exc.DownloadError(f"GET {url}: bad Content-Range {cr[:80]!r}")
            elif resp.status != 200:
                raise tuf_exc.DownloadHTTPError(f"GET {url}: HTTP {resp.status}", resp.status)
            declared = resp.getheader("Content-Length")
            if (
                declared is not None
                and declared.strip().isdigit()
                and int(declared) > self.max_bytes
            ):
                raise tuf_exc.DownloadLengthMismatchError(
                    f"GET {url}: Content-Length {declared} exceeds the cap of "
                    f"{self.max_bytes} bytes"
                )
        except tuf_exc.DownloadError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise tuf_exc.DownloadError(f"GET {url}: {type(e).__name__}: {e}") from e
        return conn, resp

    def _chunks(
        self, conn: _Connection, resp: http.client.HTTPResponse, url: str
    ) -> Iterator[bytes]:
        total = 0
        try:
            while True:
                try:
                    chunk = resp.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as e:
                    if isinstance(e, tuf_exc.DownloadError):
                        raise
                    raise tuf_exc.DownloadError(f"GET {url}: {type(e).__name__}: {e}") from e
                if not chunk:
                    # http.client ends a body cut short of its Content-Length
                    # quietly; that is a network failure, not the end of the file.
                    if resp.length:
                        raise tuf_exc.DownloadError(
                            f"GET {url}: connection closed {resp.length} bytes short"
                        )
                    return
                total += len(chunk)
                if total > self.max_bytes:
                    raise tuf_exc.DownloadLengthMismatchError(
                        f"GET {url}: more than the cap of {self.max_bytes} bytes"
                    )
                yield chunk
        finally:
            resp.close()
            conn.close()


class _Body(Iterator[bytes]):
    """A response body's chunks; :meth:`close` also closes the connection when the
    caller gives up before reading (a generator not yet started would not)."""

    def __init__(
        self, chunks: Iterator[bytes], conn: _Connection, resp: http.client.HTTPResponse
    ) -> None:
        self._chunks = chunks
        self._conn = conn
        self._resp = resp

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._resp.close()
        self._conn.close()

    def __del__(self) -> None:
        # tuf stops iterating without closing when a body breaks its length
        # limit: hang up when the body is dropped, not when the socket is.
        self.close()


__all__ = ["BoundedFetcher"]
