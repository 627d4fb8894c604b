"""Discourse forums: topic JSON with its posts, and topic lists (``/latest.json``).

Accepted shapes, detected per file:
- ``/t/{id}.json``: a topic with ``post_stream.posts`` (one topic, or a list of them);
- a list of topics each carrying its posts in ``post_comments`` (the shape of the
  published OpenAI-forum crawl);
- ``/latest.json`` (or ``/c/{slug}/{id}.json``): ``topic_list.topics``, which has counts
  but no bodies, or a bare JSON array of such entries; these become partial threads (replies =
  posts_count - 1, views, likes, accepted, closed, category) that never overwrite a full copy,
  but refresh its counters, category and closed state when they are no older than it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devquarry.errors import InputError
from devquarry.model import Record, Reply, Thread
from devquarry.sources.base import Source, float_field, int_field, list_field, load_json, text_field, time_field
from devquarry.sources.limits import INT32_MAX, check_value
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
            self.current = path
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
        listed = data.get("users") if isinstance(data.get("users"), list) else []
        users = {
            u["id"]: u["username"]
            for u in listed
            if isinstance(u, dict) and isinstance(u.get("id"), (int, str)) and isinstance(u.get("username"), str)
        }
        for i, topic in enumerate(topics):
            yield _list_entry(_as_topic(topic, path, i), path, i, host, users)
        return
    topics = data if isinstance(data, list) else [data]
    for i, topic in enumerate(topics):
        topic = _as_topic(topic, path, i)
        if _has_posts(topic) or not _is_list_entry(topic):
            yield from _full_topic(topic, path, i, host)
        else:
            yield _list_entry(topic, path, i, host, {})


def _has_posts(topic: dict) -> bool:
    stream = topic.get("post_stream")
    return "post_comments" in topic or (isinstance(stream, dict) and "posts" in stream)


def _is_list_entry(topic: dict) -> bool:
    """A topic-list entry (``topic_list.topics`` of /latest.json or a category page, or a bare array
    of them) carries counts but no posts; a topic JSON always has its post_stream."""
    return "post_stream" not in topic and any(k in topic for k in ("posts_count", "highest_post_number", "bumped_at"))


def _as_topic(topic: Any, path: Path, i: int) -> dict:
    if not isinstance(topic, dict):
        raise InputError(path, "expected a topic object", record=i)
    if topic.get("id") is None:
        raise InputError(path, "topic has no id", record=i, field="id")
    return topic


def _record(topic: dict, path: Path, i: int) -> str:
    """The topic's place in its file, for messages; its values checked against the limits first."""
    tid = text_field(topic["id"], path, "id", record=i)
    rec = f"{i} (topic {tid})"
    check_value(topic, path, record=rec)
    return rec


def _full_topic(topic: dict, path: Path, i: int, host: str) -> Iterator[Record]:
    source = f"discourse:{host}"
    rec = _record(topic, path, i)
    tid = str(topic["id"])
    if isinstance(topic.get("post_comments"), list):
        posts, key = topic["post_comments"], "post_comments"
    elif isinstance(topic.get("post_stream"), dict) and isinstance(topic["post_stream"].get("posts"), list):
        posts, key = topic["post_stream"]["posts"], "post_stream.posts"
    else:
        raise InputError(path, "topic has no posts (post_stream.posts or post_comments)", record=rec, field="post_stream")
    by_number: dict[int, dict] = {}
    checked: dict[int, dict] = {}
    for j, post in enumerate(posts):
        if not isinstance(post, dict):
            raise InputError(path, f"post {j} is not an object", record=rec, field=f"{key}.{j}")
        num = int_field(post.get("post_number"), path, f"{key}.{j}.post_number", record=rec)
        if num is None or post.get("id") is None:
            raise InputError(path, f"post {j} lacks post_number or id", record=rec, field=f"{key}.{j}.post_number")
        by_number[num] = post
        # Checked once here, so that what follows can trust the types; raw keeps the post as it was.
        checked[num] = {
            "field": f"{key}.{j}",
            "id": text_field(post["id"], path, f"{key}.{j}.id", record=rec),
            "cooked": text_field(post.get("cooked"), path, f"{key}.{j}.cooked", record=rec),
            "username": text_field(post.get("username"), path, f"{key}.{j}.username", record=rec),
            "score": float_field(post.get("score"), path, f"{key}.{j}.score", record=rec),
            "reply_to_post_number": int_field(
                post.get("reply_to_post_number"), path, f"{key}.{j}.reply_to_post_number", record=rec
            ),
        }
    first = checked.get(1)
    accepted_number = None
    if isinstance(topic.get("accepted_answer"), dict):
        accepted_number = topic["accepted_answer"].get("post_number")
    replies: list[Reply] = []
    for num in sorted(by_number):
        post = by_number[num]
        if num == 1 or post.get("post_type", REGULAR_POST) != REGULAR_POST:
            continue
        ok = checked[num]
        text, code = html_to_text(ok["cooked"])
        parent = checked.get(ok["reply_to_post_number"] or -1)
        accepted = bool(post.get("accepted_answer")) or num == accepted_number
        replies.append(
            Reply(
                source=source,
                reply_id=ok["id"],
                thread_id=tid,
                parent_id=str(parent["id"]) if parent else None,
                author=ok["username"],
                created_at=time_field(post.get("created_at"), path, f"{ok['field']}.created_at", record=rec),
                body_text=text,
                body_html=ok["cooked"],
                code=code,
                score=ok["score"],
                is_accepted=accepted,
                raw={k: v for k, v in post.items() if k != "cooked"},
            )
        )
    accepted_reply = next((r for r in replies if r.is_accepted), None)
    posts_count = int_field(topic.get("posts_count"), path, "posts_count", record=rec, limit=INT32_MAX)
    skipped = sum(1 for p in by_number.values() if p.get("post_type", REGULAR_POST) != REGULAR_POST)
    reply_count = len(replies)
    if posts_count is not None and posts_count > len(by_number):
        # Only the first chunk of posts is present: trust the topic's own count.
        reply_count = max(reply_count, posts_count - 1 - skipped)
    text, code = html_to_text(first["cooked"]) if first else ("", "")
    yield Thread(
        **_topic_fields(topic, path, rec, host),
        body_text=text,
        body_html=first["cooked"] if first else None,
        code=code,
        author=first["username"] if first else None,
        reply_count=reply_count,
        accepted_reply_id=accepted_reply.reply_id if accepted_reply else None,
        accepted_at=accepted_reply.created_at if accepted_reply else None,
        is_resolved=accepted_reply is not None or bool(topic.get("has_accepted_answer")),
        # Posts are kept with the replies (and the first post's HTML in body_html).
        raw={k: v for k, v in topic.items() if k not in ("post_comments", "post_stream")},
    )
    yield from replies


def _list_entry(topic: dict, path: Path, i: int, host: str, users: dict) -> Thread:
    rec = _record(topic, path, i)
    posts_count = int_field(topic.get("posts_count"), path, "posts_count", record=rec, limit=INT32_MAX)
    posters = list_field(topic.get("posters"), path, "posters", record=rec)
    op = next(
        (p for p in posters if isinstance(p, dict) and "Original Poster" in str(p.get("description") or "")),
        None,
    )
    uid = op.get("user_id") if op else None
    return Thread(
        **_topic_fields(topic, path, rec, host),
        author=users.get(uid) if isinstance(uid, (int, str)) else None,
        reply_count=max(posts_count - 1, 0) if posts_count is not None else None,
        is_resolved=bool(topic.get("has_accepted_answer")),
        is_partial=True,
        raw=topic,
    )


def _topic_fields(topic: dict, path: Path, rec: str, host: str) -> dict:
    tid = str(topic["id"])
    slug = text_field(topic.get("slug"), path, "slug", record=rec) or "topic"
    tags = [t.get("name") if isinstance(t, dict) else t for t in list_field(topic.get("tags"), path, "tags", record=rec)]
    closed = bool(topic.get("closed"))
    title = text_field(topic.get("title"), path, "title", record=rec)
    title = title or text_field(topic.get("fancy_title"), path, "fancy_title", record=rec) or ""
    return dict(
        source=f"discourse:{host}",
        source_id=tid,
        title=repair(title),
        url=f"https://{host}/t/{slug}/{tid}",
        tags=[str(t) for t in tags if t and isinstance(t, (str, int))],
        category=str(topic["category_id"]) if topic.get("category_id") is not None else None,
        created_at=time_field(topic.get("created_at"), path, "created_at", record=rec),
        updated_at=time_field(topic.get("last_posted_at") or topic.get("bumped_at"), path, "last_posted_at", record=rec),
        views=int_field(topic.get("views"), path, "views", record=rec),
        score=float_field(topic.get("like_count"), path, "like_count", record=rec),
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
