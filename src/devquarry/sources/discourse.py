"""Discourse forums: topic JSON with its posts, and topic lists (``/latest.json``).

Accepted shapes, detected per file:
- ``/t/{id}.json``: a topic with ``post_stream.posts`` (one topic, or a list of them);
- a list of topics each carrying its posts in ``post_comments`` (the shape of the
  published OpenAI-forum crawl);
- ``/latest.json`` (or ``/c/{slug}/{id}.json``): ``topic_list.topics``, which has counts
  but no bodies; these become partial threads that never overwrite a full copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devquarry.errors import InputError
from devquarry.model import Record, Reply, Thread
from devquarry.sources.base import Source, int_field, load_json, time_field
from devquarry.text import html_to_text, repair

_AVATAR_HOST = re.compile(r"/user_avatar/([^/]+)/")
REGULAR_POST = 1  # post_type 2/3 are moderator and small actions ("closed the topic"), 4 whispers


class DiscourseSource(Source):
    kind = "discourse"

    def __init__(self, paths, *, host: str | None = None) -> None:
        super().__init__(paths)
        self.host = _clean_host(host) if host else None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "host": self.host}

    def records(self) -> Iterator[Record]:
        for path in self.paths:
            data = load_json(path, self.progress)
            host = self.host or _find_host(data)
            if host is None:
                raise InputError(path, "cannot tell the forum's host from the file; pass --host")
            self.host = self.host or host
            yield from _parse_file(data, path, host)


def _parse_file(data: Any, path: Path, host: str) -> Iterator[Record]:
    if isinstance(data, dict) and isinstance(data.get("topic_list"), dict):
        topics = data["topic_list"].get("topics")
        if not isinstance(topics, list):
            raise InputError(path, "topic_list has no list of topics", field="topic_list.topics")
        users = {u.get("id"): u.get("username") for u in data.get("users", []) if isinstance(u, dict)}
        for i, topic in enumerate(topics):
            yield _list_entry(_as_topic(topic, path, i), path, i, host, users)
        return
    topics = data if isinstance(data, list) else [data]
    for i, topic in enumerate(topics):
        yield from _full_topic(_as_topic(topic, path, i), path, i, host)


def _as_topic(topic: Any, path: Path, i: int) -> dict:
    if not isinstance(topic, dict):
        raise InputError(path, "expected a topic object", record=i)
    if topic.get("id") is None:
        raise InputError(path, "topic has no id", record=i, field="id")
    return topic


def _full_topic(topic: dict, path: Path, i: int, host: str) -> Iterator[Record]:
    source = f"discourse:{host}"
    tid = str(topic["id"])
    rec = f"{i} (topic {tid})"
    if isinstance(topic.get("post_comments"), list):
        posts = topic["post_comments"]
    elif isinstance(topic.get("post_stream"), dict) and isinstance(topic["post_stream"].get("posts"), list):
        posts = topic["post_stream"]["posts"]
    else:
        raise InputError(path, "topic has no posts (post_stream.posts or post_comments)", record=rec, field="post_stream")
    by_number: dict[int, dict] = {}
    for j, post in enumerate(posts):
        if not isinstance(post, dict):
            raise InputError(path, f"post {j} is not an object", record=rec)
        num = int_field(post.get("post_number"), path, "post_number", record=rec)
        if num is None or post.get("id") is None:
            raise InputError(path, f"post {j} lacks post_number or id", record=rec, field="post_number")
        by_number[num] = post
    first = by_number.get(1)
    accepted_number = None
    if isinstance(topic.get("accepted_answer"), dict):
        accepted_number = topic["accepted_answer"].get("post_number")
    replies: list[Reply] = []
    for num in sorted(by_number):
        post = by_number[num]
        if num == 1 or post.get("post_type", REGULAR_POST) != REGULAR_POST:
            continue
        text, code = html_to_text(post.get("cooked"))
        parent = by_number.get(post.get("reply_to_post_number") or -1)
        accepted = bool(post.get("accepted_answer")) or num == accepted_number
        replies.append(
            Reply(
                source=source,
                reply_id=str(post["id"]),
                thread_id=tid,
                parent_id=str(parent["id"]) if parent else None,
                author=post.get("username"),
                created_at=time_field(post.get("created_at"), path, "created_at", record=rec),
                body_text=text,
                body_html=post.get("cooked"),
                code=code,
                score=post.get("score"),
                is_accepted=accepted,
                raw={k: v for k, v in post.items() if k != "cooked"},
            )
        )
    accepted_reply = next((r for r in replies if r.is_accepted), None)
    posts_count = int_field(topic.get("posts_count"), path, "posts_count", record=rec)
    skipped = sum(1 for p in by_number.values() if p.get("post_type", REGULAR_POST) != REGULAR_POST)
    reply_count = len(replies)
    if posts_count is not None and posts_count > len(by_number):
        # Only the first chunk of posts is present: trust the topic's own count.
        reply_count = max(reply_count, posts_count - 1 - skipped)
    text, code = html_to_text(first.get("cooked")) if first else ("", "")
    yield Thread(
        **_topic_fields(topic, path, rec, host),
        body_text=text,
        body_html=first.get("cooked") if first else None,
        code=code,
        author=(first or {}).get("username"),
        reply_count=reply_count,
        accepted_reply_id=accepted_reply.reply_id if accepted_reply else None,
        accepted_at=accepted_reply.created_at if accepted_reply else None,
        is_resolved=accepted_reply is not None or bool(topic.get("has_accepted_answer")),
        # Posts are kept with the replies (and the first post's HTML in body_html).
        raw={k: v for k, v in topic.items() if k not in ("post_comments", "post_stream")},
    )
    yield from replies


def _list_entry(topic: dict, path: Path, i: int, host: str, users: dict) -> Thread:
    rec = f"{i} (topic {topic['id']})"
    posts_count = int_field(topic.get("posts_count"), path, "posts_count", record=rec)
    op = next((p for p in topic.get("posters", []) if "Original Poster" in (p.get("description") or "")), None)
    return Thread(
        **_topic_fields(topic, path, rec, host),
        author=users.get(op.get("user_id")) if op else None,
        reply_count=max(posts_count - 1, 0) if posts_count is not None else None,
        is_resolved=bool(topic.get("has_accepted_answer")),
        is_partial=True,
        raw=topic,
    )


def _topic_fields(topic: dict, path: Path, rec: str, host: str) -> dict:
    tid = str(topic["id"])
    slug = topic.get("slug") or "topic"
    tags = [t.get("name") if isinstance(t, dict) else str(t) for t in topic.get("tags") or []]
    closed = bool(topic.get("closed"))
    return dict(
        source=f"discourse:{host}",
        source_id=tid,
        title=repair(topic.get("title") or topic.get("fancy_title") or ""),
        url=f"https://{host}/t/{slug}/{tid}",
        tags=[t for t in tags if t],
        category=str(topic["category_id"]) if topic.get("category_id") is not None else None,
        created_at=time_field(topic.get("created_at"), path, "created_at", record=rec),
        updated_at=time_field(topic.get("last_posted_at") or topic.get("bumped_at"), path, "last_posted_at", record=rec),
        views=int_field(topic.get("views"), path, "views", record=rec),
        score=topic.get("like_count"),
        state="closed" if closed else "open",
    )


def _find_host(data: Any) -> str | None:
    """The forum's host is not in the topic JSON itself, but avatar paths name it."""
    stack, seen = [data], 0
    while stack and seen < 5000:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            tmpl = item.get("avatar_template")
            if isinstance(tmpl, str) and (m := _AVATAR_HOST.search(tmpl)):
                return m.group(1)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return None


def _clean_host(host: str) -> str:
    host = re.sub(r"^https?://", "", host.strip()).rstrip("/")
    return host.split("/")[0]
