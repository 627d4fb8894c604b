"""A real HTTP server on 127.0.0.1 for the crawler tests: it serves the shared corpora in the
Discourse, GitHub and Stack Exchange APIs' own shapes, logs every request with its time, and
injects faults on request.

Faults (``server.faults[path] = [...]``, consumed one per request to that path):
``429`` (Discourse's ``wait_seconds`` in the body), ``429-retry-after`` (the header), ``ratelimit``
(GitHub's 403 with ``X-RateLimit-Remaining: 0``), ``backoff`` (the Stack Exchange API's field in a
good answer), ``500``, ``slow`` (answers after ``slow_seconds``, past the client's timeout),
``truncate`` (half the JSON body);
``server.gone`` holds Discourse topic ids that answer 404 (deleted between list and fetch).
"""

from __future__ import annotations

import copy
import gzip
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from local_server import LocalServer, QuietHandler
from lxml import etree

TOPICS_PER_PAGE = 30
FIRST_CHUNK = 5  # Discourse sends 20; fewer here so that more topics need their rest fetched by id
ISSUES_PER_PAGE = 8


def _epoch(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()) if iso else None


class Forum:
    """Discourse payloads from the published crawl's topics and posts."""

    def __init__(self, path: Path) -> None:
        self.topics = {t["id"]: t for t in json.loads(path.read_text())}

    def bump(self, topic_id: int, when: str, cooked: str) -> None:
        """A new reply arrives: the topic moves to the top of /latest."""
        t = self.topics[topic_id]
        last = t["post_comments"][-1]
        post = {
            **copy.deepcopy(last),
            "id": 10**9 + len(t["post_comments"]),
            "post_number": last["post_number"] + 1,
            "cooked": cooked,
            "created_at": when,
            "post_type": 1,
            "reply_to_post_number": None,
        }
        post.pop("accepted_answer", None)
        t["post_comments"].append(post)
        t["posts_count"] += 1
        t["last_posted_at"] = when

    def ordered(self):
        return sorted(self.topics.values(), key=lambda t: (t["last_posted_at"], t["id"]), reverse=True)

    def latest(self, page: int, base: str) -> dict:
        rows = self.ordered()[page * TOPICS_PER_PAGE : (page + 1) * TOPICS_PER_PAGE]
        more = (page + 1) * TOPICS_PER_PAGE < len(self.topics)
        entries = [
            {
                k: t[k]
                for k in (
                    "id",
                    "title",
                    "slug",
                    "posts_count",
                    "reply_count",
                    "views",
                    "like_count",
                    "created_at",
                    "last_posted_at",
                )
            }
            | {"bumped_at": t["last_posted_at"], "pinned": False, "category_id": 7, "has_accepted_answer": False}
            for t in rows
        ]
        out = {"users": [], "topic_list": {"per_page": TOPICS_PER_PAGE, "topics": entries}}
        if more:
            out["topic_list"]["more_topics_url"] = f"/latest?page={page + 1}"
        return out

    def topic(self, topic_id: int) -> dict:
        t = self.topics[topic_id]
        posts = [p for p in t["post_comments"]]
        body = {k: v for k, v in t.items() if k != "post_comments"}
        body["post_stream"] = {"posts": posts[:FIRST_CHUNK], "stream": [p["id"] for p in posts]}
        return body

    def posts(self, topic_id: int, ids: list[int]) -> dict:
        wanted = set(ids)
        return {"post_stream": {"posts": [p for p in self.topics[topic_id]["post_comments"] if p["id"] in wanted]}}


class Issues:
    """GitHub REST payloads from a repository's exported issues (plus one pull request to skip)."""

    def __init__(self, path: Path, base: str) -> None:
        data = json.loads(gzip.open(path).read())
        self.repo = data["repository"] if isinstance(data, dict) else None
        items = data["issues"] if isinstance(data, dict) else data
        self.issues, self.comments = [], {}
        for it in items:
            n = int(it["issue_number"])
            self.comments[n] = [
                {
                    "id": c.get("id") or n * 1000 + j,
                    "user": {"login": c.get("author")},
                    "body": c.get("body"),
                    "created_at": c.get("created_at"),
                }
                for j, c in enumerate(it.get("comments") or [])
            ]
            self.issues.append(
                {
                    "number": n,
                    "title": it["title"],
                    "body": it.get("body"),
                    "state": it["state"],
                    "state_reason": "completed" if it["state"] == "closed" else None,
                    "user": {"login": it.get("author")},
                    "created_at": it["created_at"],
                    "updated_at": it["updated_at"],
                    "closed_at": it.get("closed_at"),
                    "labels": [{"name": str(x)} for x in it.get("labels") or []],
                    "comments": len(self.comments[n]),
                    "html_url": it["html_url"],
                    "comments_url": f"{base}/repos/{self.repo}/issues/{n}/comments",
                }
            )
        pr = dict(
            self.issues[0],
            number=999999,
            title="a pull request",
            pull_request={"url": "x"},
            html_url=f"https://github.com/{self.repo}/pull/999999",
            comments=0,
        )
        self.issues.append(pr)
        self.comments[999999] = []

    def page(self, since: str | None, page: int) -> tuple[list, bool]:
        rows = sorted(
            (i for i in self.issues if since is None or i["updated_at"] >= since), key=lambda i: (i["updated_at"], i["number"])
        )
        return rows[(page - 1) * ISSUES_PER_PAGE : page * ISSUES_PER_PAGE], page * ISSUES_PER_PAGE < len(rows)


class Questions:
    """Stack Exchange API payloads from a dump's Posts.xml."""

    def __init__(self, posts: Path, host: str) -> None:
        self.questions, self.answers = {}, {}
        for _, el in etree.iterparse(str(posts), tag="row"):
            a = dict(el.attrib)
            el.clear()
            owner = {"display_name": a.get("OwnerDisplayName") or f"user{a.get('OwnerUserId')}"}
            if a.get("PostTypeId") == "1":
                qid = int(a["Id"])
                self.questions[qid] = {
                    "question_id": qid,
                    "title": a.get("Title"),
                    "body": a.get("Body"),
                    "link": f"https://{host}/questions/{qid}",
                    "tags": [t for t in a.get("Tags", "").replace("<", "|").replace(">", "|").split("|") if t],
                    "score": int(a.get("Score", 0)),
                    "view_count": int(a.get("ViewCount", 0)),
                    "answer_count": int(a.get("AnswerCount", 0)),
                    "accepted_answer_id": int(a["AcceptedAnswerId"]) if a.get("AcceptedAnswerId") else None,
                    "creation_date": _epoch(a["CreationDate"] + "Z"),
                    "last_activity_date": _epoch(a["LastActivityDate"] + "Z"),
                    "owner": owner,
                }
            elif a.get("PostTypeId") == "2":
                aid = int(a["Id"])
                self.answers[aid] = {
                    "answer_id": aid,
                    "question_id": int(a["ParentId"]),
                    "body": a.get("Body"),
                    "score": int(a.get("Score", 0)),
                    "creation_date": _epoch(a["CreationDate"] + "Z"),
                    "owner": owner,
                }
        for ans in self.answers.values():
            q = self.questions.get(ans["question_id"])
            ans["is_accepted"] = bool(q and q["accepted_answer_id"] == ans["answer_id"])


class CrawlServer(LocalServer):
    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.requests: list[tuple[float, str]] = []
        self.faults: dict[str, list[str]] = {}
        self.gone: set[int] = set()
        self.headers_seen: list[dict] = []
        self.slow_seconds = 3.0
        self.delay = 0.0
        self.lock = threading.Lock()
        self._start()
        self.forum = Forum(shared / "discourse-openai-forum" / "topics_with_posts.json")
        self.issues = Issues(shared / "github-issues-llm-apps" / "hegelai_prompttools_labeled_issues.json.gz", self.base)
        self.questions = Questions(shared / "stackexchange-dump-cstheory-meta" / "Posts.xml", "cstheory.meta.stackexchange.com")

    def paths(self) -> list[str]:
        return [p for _, p in self.requests]

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                parts = urlsplit(self.path)
                with server.lock:
                    server.requests.append((time.monotonic(), self.path))
                    server.headers_seen.append(dict(self.headers))
                    queue = server.faults.get(parts.path) or []
                    fault = queue.pop(0) if queue else None
                if server.delay:
                    time.sleep(server.delay)
                if fault == "429":  # Discourse's shape: the wait is in the body
                    return self.send_json(429, {"errors": ["slow down"], "extras": {"wait_seconds": 1}})
                if fault == "429-retry-after":
                    return self.send_json(429, {"message": "slow down"}, {"Retry-After": "1"})
                if fault == "ratelimit":  # GitHub's spent hourly quota, reset in a second
                    return self.send_json(
                        403,
                        {"message": "API rate limit exceeded"},
                        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 1)},
                    )
                if fault == "500":
                    return self.send_json(500, {"errors": ["oops"]})
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                try:
                    status, body, headers = server.route(parts.path, parse_qs(parts.query))
                except KeyError:
                    status, body, headers = 404, {"errors": ["not found"]}, {}
                if fault == "backoff" and isinstance(body, dict):  # Stack Exchange: wait this long before the next call
                    body = dict(body, backoff=1)
                self.send_json(status, body, headers, truncate=fault == "truncate")

        return Handler

    def route(self, path: str, q: dict):
        if path == "/latest.json":
            return 200, self.forum.latest(int(q.get("page", ["0"])[0]), self.base), {}
        if path.startswith("/t/") and path.endswith("/posts.json"):
            tid = int(path.split("/")[2])
            return 200, self.forum.posts(tid, [int(x) for x in q.get("post_ids[]", [])]), {}
        if path.startswith("/t/"):
            tid = int(path[3:].removesuffix(".json"))
            if tid in self.gone:
                return 404, {"errors": ["gone"]}, {}
            return 200, self.forum.topic(tid), {}
        repo = self.issues.repo
        if path == f"/repos/{repo}/issues":
            page = int(q.get("page", ["1"])[0])
            rows, more = self.issues.page(q.get("since", [None])[0], page)
            headers = {"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": str(int(time.time()) + 3600)}
            if more:
                since = f"&since={q['since'][0]}" if "since" in q else ""
                headers["Link"] = f'<{self.base}{path}?state=all&per_page={ISSUES_PER_PAGE}&page={page + 1}{since}>; rel="next"'
            return 200, rows, headers
        if path.startswith(f"/repos/{repo}/issues/") and path.endswith("/comments"):
            return 200, self.issues.comments[int(path.split("/")[-2])], {}
        if path == "/2.3/questions":
            return 200, self._questions(q), {}
        if path.startswith("/2.3/questions/") and path.endswith("/answers"):
            ids = {int(x) for x in path.split("/")[3].split(";")}
            items = [a for a in self.questions.answers.values() if a["question_id"] in ids]
            return 200, self._paged(items, q), {}
        if path.startswith("/2.3/posts/") and path.endswith("/comments"):
            return 200, self._paged([], q), {}
        raise KeyError(path)

    def _paged(self, items: list, q: dict) -> dict:
        page, size = int(q.get("page", ["1"])[0]), int(q.get("pagesize", ["30"])[0])
        rows = items[(page - 1) * size : page * size]
        return {"items": rows, "has_more": page * size < len(items), "quota_max": 10000, "quota_remaining": 9000}

    def _questions(self, q: dict) -> dict:
        tagged = set((q.get("tagged", [""])[0]).split(";")) - {""}
        low = int(q.get("min", ["0"])[0])
        rows = [
            x
            for x in self.questions.questions.values()
            if x["last_activity_date"] >= low and (not tagged or tagged & set(x["tags"]))
        ]
        rows.sort(key=lambda x: (x["last_activity_date"], x["question_id"]))
        out = self._paged(rows, q)
        return out
