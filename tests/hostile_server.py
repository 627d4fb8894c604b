"""A scriptable HTTP server on 127.0.0.1 for the hostile-network tests: ``server.routes[path]`` is a
function ``(handler, query, body) -> None`` that answers as badly as a test needs (a redirect to
another origin, a gzip bomb, a trickle, the same page forever); every request is recorded with its
path, query and headers, so that a test can assert what a second origin received."""

from __future__ import annotations

import gzip
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

from local_server import LocalServer, QuietHandler


class HostileServer(LocalServer):
    def __init__(self) -> None:
        self.routes: dict = {}
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        self._start()

    def hits(self, path: str) -> int:
        return sum(1 for r in self.seen if r["path"] == path)

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.seen.append({"path": parts.path, "query": parts.query, "headers": dict(self.headers)})
                route = server.routes.get(parts.path)
                if route is None:
                    return self.send_json(404, {"errors": ["not found"]})
                return route(self, parse_qs(parts.query), body)

            do_GET = do_POST = _any

            def redirect(self, location: str) -> None:
                self.send_raw(302, b"", {"Location": location})

            def gzip_bomb(self, size: int) -> None:
                self.send_raw(200, gzip.compress(b" " * size, 9), {"Content-Encoding": "gzip"})

            def trickle(self, seconds: float, every: float = 0.2) -> None:
                """A JSON body that arrives a byte at a time, never finishing within ``seconds``."""
                raw = json.dumps({"items": [], "pad": " " * int(seconds / every + 10)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                end = time.monotonic() + seconds
                try:
                    for b in raw:
                        if time.monotonic() > end:
                            break
                        self.wfile.write(bytes([b]))
                        self.wfile.flush()
                        time.sleep(every)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def topic(tid: int, when: str = "2024-05-01T10:00:00.000Z") -> dict:
    """A minimal Discourse topic with one post."""
    post = {
        "id": tid * 10,
        "post_number": 1,
        "username": "u",
        "cooked": "<p>hello</p>",
        "created_at": when,
        "post_type": 1,
    }
    return {
        "id": tid,
        "title": f"topic {tid}",
        "slug": f"topic-{tid}",
        "created_at": when,
        "last_posted_at": when,
        "posts_count": 1,
        "post_stream": {"posts": [post], "stream": [post["id"]]},
    }


def listing(ids: list[int], more: bool, when: str = "2024-05-01T10:00:00.000Z") -> dict:
    rows = [{"id": i, "title": f"topic {i}", "last_posted_at": when, "bumped_at": when, "pinned": False} for i in ids]
    out = {"topic_list": {"topics": rows}}
    if more:
        out["topic_list"]["more_topics_url"] = "/latest?page=next"
    return out
