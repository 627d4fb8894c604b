"""A fake chat-completions endpoint on 127.0.0.1 for the LLM coder's tests.

It reads the prompt the coder sent as a model would: the codes listed in the system message (id,
name, keywords), the labelled examples and the question's title. By default it answers the code
whose keywords or name words occur most in the title, else the code of the first (most similar)
example, as a JSON object: its answers are functions of the prompt. A test may give its own
``script(prompt) -> str`` (the message content), and queue failures before the next answers:
``"429"`` (Retry-After: 0), ``("slow", seconds)`` (the answer comes late), ``"500"``, ``"401"``
(quoting the Authorization header it got); after
``fail_after`` answers every request gets a 503. Each request is recorded (path, headers, body)
with the prompt it parsed and the answer given."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from local_server import LocalServer, QuietHandler

GENERIC = {"api", "and", "the", "of", "in", "with", "for", "questions", "general", "others", "other"}


@dataclass
class Prompt:
    codes: list[tuple[str, str, list[str]]]  # (id, name, keywords) in the order listed
    title: str
    example_codes: list[str]
    correction: str | None  # the coder's correction message, on a retry
    nth: int  # how many times this model was sent these exact messages before: the sample, for identical prompts
    auth: str | None
    messages: list[dict] = field(repr=False, default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [c[0] for c in self.codes]


def parse_prompt(messages: list[dict], nth: int, auth: str | None) -> Prompt:
    system = messages[0]["content"]
    user = messages[1]["content"]
    codes = []
    for m in re.finditer(r"^- (\S+): (.*)$((?:\n  .*)*)", system, flags=re.M):
        kw = re.search(r"^  Keywords: (.*)$", m.group(3), flags=re.M)
        codes.append((m.group(1), m.group(2), [k.strip().lower() for k in kw.group(1).split(",")] if kw else []))
    title = re.search(r"Question to code:\nTitle: (.*)", user).group(1)
    examples = [json.loads(a)["code"] for a in re.findall(r"^Answer: (\{.*\})$", user, flags=re.M)]
    correction = messages[-1]["content"] if len(messages) > 2 else None
    return Prompt(codes, title, examples, correction, nth, auth, messages)


def keyword_code(p: Prompt) -> str:
    """The code a reader of the prompt would pick by its words alone."""
    words = set(re.findall(r"[a-z0-9][a-z0-9\-]*", p.title.lower()))
    best, best_n = None, 0
    for cid, name, keywords in p.codes:
        names = {w for w in re.findall(r"[a-z0-9][a-z0-9\-]*", name.lower()) if w not in GENERIC}
        n = sum(1 for k in keywords if (k in words if " " not in k else k in p.title.lower())) + len(names & words)
        if n > best_n:
            best, best_n = cid, n
    if best is None:
        best = next((c for c in p.example_codes if c in p.ids), p.ids[0])
    return best


def keyword_answer(p: Prompt) -> str:
    return json.dumps({"code": keyword_code(p)})


class LLMChatServer(LocalServer):
    def __init__(self, script=None, fail_after: int | None = None) -> None:
        self.script = script or keyword_answer
        self.fail_after = fail_after
        self.failures: list = []
        self.requests: list[dict] = []
        self.answers: list[tuple[str, str]] = []  # (title, content) of every 200 answer
        self.seen: Counter = Counter()
        self.lock = threading.Lock()
        self._start("/v1")

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                with server.lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body, "raw": raw})
                    failure = server.failures.pop(0) if server.failures else None
                    broken = server.fail_after is not None and len(server.answers) >= server.fail_after
                if self.path != "/v1/chat/completions":
                    return self.send_json(404, {"error": "no such path"})
                if broken:
                    return self.send_json(503, {"error": {"message": "overloaded"}})
                if failure == "429":
                    return self.send_json(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
                if failure == "500":
                    return self.send_json(500, {"error": {"message": "busy"}})
                if failure == "401":  # a server that quotes the key it was sent
                    return self.send_json(401, {"error": {"message": f"invalid key {self.headers.get('Authorization')}"}})
                if isinstance(failure, tuple) and failure[0] == "slow":  # late: the client has given up by then
                    time.sleep(failure[1])
                    return self.send_json(200, {"choices": [{"message": {"content": "late"}}]})
                key = hashlib.sha256(json.dumps([body["model"], body["messages"]], sort_keys=True).encode()).hexdigest()
                with server.lock:
                    nth = server.seen[key]
                    server.seen[key] += 1
                prompt = parse_prompt(body["messages"], nth, self.headers.get("Authorization"))
                content = server.script(prompt)
                with server.lock:
                    server.answers.append((prompt.title, content))
                self.send_json(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    },
                )

        return Handler
