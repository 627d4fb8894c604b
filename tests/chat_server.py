"""A small fake of the chat-completions API on 127.0.0.1, written for the tests: it records each
request and answers from the numbered threads in the prompt, citing [1] and [2] and one number
that names no thread; ``fail_first`` answers 500s before the first good reply."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[dict] = []
        self.fail_first = fail_first
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "no such path"})
                if server.fail_first > 0:
                    server.fail_first -= 1
                    return self._send(500, {"error": "busy"})
                prompt = body["messages"][-1]["content"]
                titles = re.findall(r"^\[(\d+)\] (.*)$", prompt, flags=re.M)
                text = (f"According to {titles[0][1]!r} [1], and as {titles[1][1]!r} also shows [2], the fix is in the "
                        f"accepted answers; see also [9].") if len(titles) >= 2 else "The threads do not answer this."
                self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

            def _send(self, status, payload):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler
