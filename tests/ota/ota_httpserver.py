"""A real HTTP server on 127.0.0.1 for the OTA tests, with ways to misbehave.

Modes per path: ``ok`` (Range supported), ``no_range`` (always the whole file
with 200), ``extra`` (honest Content-Length of a body longer than the file),
``endless`` (no Content-Length, bytes until the client hangs up), ``truncate``
(full Content-Length, half the body, then close), ``truncate_once`` (truncate
the first request only), ``stall`` (half the body, then silence),
``wrong`` (same length, other content), ``bad_range`` (206 from the wrong offset).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ModelServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                return

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                owner.requests.append((self.path, rng))
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                mode = owner.modes.get(self.path, "ok")
                if mode == "truncate_once":
                    owner.modes[self.path] = "ok"
                    mode = "truncate"
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and mode not in ("no_range", "extra", "endless"):
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if mode == "wrong":
                    data = bytes(b ^ 0x5A for b in data)
                body = data[start:]
                if start:
                    self.send_response(206)
                    first = start + (1 if mode == "bad_range" else 0)
                    self.send_header("Content-Range", f"bytes {first}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                if mode == "extra":
                    body = body + b"\0" * 100_000
                if mode == "endless":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for _ in range(10_000):
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        return  # the client hung up, as it should
                    return
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if mode in ("truncate", "stall"):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if mode == "stall":
                        owner.release.wait(10)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                # Clients hanging up mid-body is what several modes provoke.
                return

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
