"""The records every source yields: threads, their replies, and links between threads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Thread:
    """A question (or issue, or topic) and what the source says about it.

    ``reply_count``, ``first_reply_at``, ``accepted_at`` and ``is_resolved`` may be left
    as None: the store derives them from the replies it holds.  ``is_partial`` marks a
    record that lacks the body and replies (a Discourse topic-list entry): it never
    overwrites a full copy of the same thread, only refreshes its counters.
    """

    source: str
    source_id: str
    title: str = ""
    url: str | None = None
    body_text: str = ""
    body_html: str | None = None
    code: str = ""
    tags: list[str] = field(default_factory=list)
    category: str | None = None
    author: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    views: int | None = None
    score: float | None = None
    reply_count: int | None = None
    first_reply_at: datetime | None = None
    accepted_at: datetime | None = None
    accepted_reply_id: str | None = None
    is_resolved: bool | None = None
    closed_at: datetime | None = None
    state: str | None = None
    label: str | None = None
    is_partial: bool = False
    raw: Any = None


@dataclass(slots=True)
class Reply:
    """An answer, forum post or issue comment (``kind='answer'``), or a comment on a
    question or answer (``kind='comment'``, Stack Exchange only).

    ``thread_id`` may be None when the source only knows the post it hangs under
    (``parent_id``), as for Stack Exchange comments on answers; the store resolves it.
    """

    source: str
    reply_id: str
    thread_id: str | None = None
    parent_id: str | None = None
    kind: str = "answer"
    author: str | None = None
    created_at: datetime | None = None
    body_text: str = ""
    body_html: str | None = None
    code: str = ""
    score: float | None = None
    is_accepted: bool | None = None
    raw: Any = None


@dataclass(slots=True)
class Link:
    """A link between two threads of one source; ``link_type`` 'duplicate' or 'related'."""

    source: str
    from_id: str
    to_id: str
    link_type: str
    created_at: datetime | None = None


Record = Thread | Reply | Link
