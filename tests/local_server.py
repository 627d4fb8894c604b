"""What the tests' HTTP servers share: a ThreadingHTTPServer on a free 127.0.0.1 port, run in a
thread for the length of a ``with`` block, and a JSON reply."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """Subclasses implement ``_handler()`` returning a request handler class."""

    def _start(self, path: str = "") -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _handler(self):
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, status: int, payload, headers: dict | None = None, truncate: bool = False) -> None:
        raw = json.dumps(payload).encode()
        if truncate:
            raw = raw[: len(raw) // 2]
        self.send_raw(status, raw, headers)

    def send_raw(self, status: int, raw: bytes, headers: dict | None = None) -> None:
        """``raw`` as the body (JSON by default; ``headers`` may say otherwise); a client that hung up is no error."""
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(raw)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
