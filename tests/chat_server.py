"""A small fake of the chat-completions API on 127.0.0.1, written for the tests: it records each
request and answers from the numbered threads in the prompt, citing [1] and [2] and one number
that names no thread; ``fail_first`` answers 500s before the first good reply."""

from __future__ import annotations

import json
import re

from local_server import LocalServer, QuietHandler


class ChatServer(LocalServer):
    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[dict] = []
        self.fail_first = fail_first
        self._start("/v1")

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if self.path != "/v1/chat/completions":
                    return self.send_json(404, {"error": "no such path"})
                if server.fail_first > 0:
                    server.fail_first -= 1
                    return self.send_json(500, {"error": "busy"})
                prompt = body["messages"][-1]["content"]
                titles = re.findall(r"^\[(\d+)\] (.*)$", prompt, flags=re.M)
                text = (
                    (
                        f"According to {titles[0][1]!r} [1], and as {titles[1][1]!r} also shows [2], the fix is in the "
                        f"accepted answers; see also [9]."
                    )
                    if len(titles) >= 2
                    else "The threads do not answer this."
                )
                self.send_json(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    },
                )

        return Handler
