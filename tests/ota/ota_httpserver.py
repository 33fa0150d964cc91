"""A real HTTP server on 127.0.0.1 serving a repository directory, with ways to misbehave.

``RepoServer(root)`` serves the files under ``root`` (normally a TUF
repository's ``public/`` folder). ``overrides[path] = bytes`` serves other
bytes for a path (a malicious mirror); ``modes[path]`` makes a path misbehave:

* ``endless``: 200, no Content-Length, zeros until the client hangs up
* ``gzip2``: ``Content-Encoding: gzip, gzip``: a ~2 KB body that expands to 1 GiB
* ``trickle_headers``: the status line and headers one byte every 0.2 s
* ``slow_body``: correct headers, then one body byte every 0.2 s
* ``not_found``: 404
* ``truncate_once``: the first response announces the whole file, sends half, hangs up

Plain files honour ``Range: bytes=N-`` with a 206.
"""

from __future__ import annotations

import gzip
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def gzip_bomb(expanded: int = 1 << 30) -> bytes:
    """gzip(gzip(zeros)) of ``expanded`` bytes; the outer layer is a few KB.

    The inner layer is one gzip member of 1 MiB of zeros repeated (a valid
    multi-member gzip stream), so building it takes milliseconds.
    """
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return gzip.compress(member * (expanded >> 20), compresslevel=9)


class RepoServer:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.overrides: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[str] = []
        self.ranges: list[tuple[str, int]] = []
        self.stop_event = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bomb: bytes | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def bomb(self) -> bytes:
        if self._bomb is None:
            self._bomb = gzip_bomb()
        return self._bomb

    def start(self) -> RepoServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                owner.requests.append(path)
                mode = owner.modes.get(path, "ok")
                if mode == "not_found":
                    self.send_error(404)
                    return
                if mode == "trickle_headers":
                    head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n"
                    try:
                        for i in range(len(head)):
                            if owner.stop_event.wait(0.2):
                                return
                            self.wfile.write(head[i : i + 1])
                            self.wfile.flush()
                    except OSError:
                        return
                    return
                if mode == "endless":
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for _ in range(100_000):
                            if owner.stop_event.is_set():
                                return
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        return
                    return
                if mode == "gzip2":
                    body = owner.bomb()
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip, gzip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = owner.overrides.get(path)
                if data is None:
                    f = (owner.root / path.lstrip("/")).resolve()
                    if owner.root.resolve() not in f.parents or not f.is_file():
                        self.send_error(404)
                        return
                    data = f.read_bytes()
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m and mode == "ok" and 0 < int(m.group(1)) < len(data):
                    start = int(m.group(1))
                    owner.ranges.append((path, start))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    self.send_header("Content-Length", str(len(data) - start))
                    self.end_headers()
                    self.wfile.write(data[start:])
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "truncate_once":
                    owner.modes[path] = "ok"
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if mode == "slow_body":
                    try:
                        for i in range(len(data)):
                            if owner.stop_event.wait(0.2):
                                return
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                    except OSError:
                        return
                    return
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                return  # clients hanging up is what several modes provoke

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)


def wait_until(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False
