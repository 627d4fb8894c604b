"""Crawl questions by tag through the Stack Exchange API (2.3) with their answers and comments,
into the same tables as the dump importer (source ``stackoverflow`` or ``stackexchange:HOST``).

Paging follows ``has_more``; ``backoff`` and the quota are honoured by the client; the questions
are read in order of last activity from the last finished crawl's high-water mark (``min``), so
a re-run fetches only what changed."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from urllib.parse import urlsplit

from devquarry.crawl.base import DEFAULT_MAX_PAGES, Crawler, shape
from devquarry.crawl.http import CrawlError
from devquarry.model import Reply, Thread
from devquarry.sources.stackexchange_dump import source_name
from devquarry.text import html_to_text

API = "https://api.stackexchange.com/2.3"
PAGE_SIZE = 100
FILTER = "withbody"


def _time(epoch) -> datetime | None:
    return datetime.fromtimestamp(int(epoch), tz=UTC) if epoch is not None else None


def _ids(items: list) -> list:
    """What identifies a page: its items' ids (an empty page too, so that empty pages with
    ``has_more`` forever repeat)."""
    return [[i.get(k) for k in ("question_id", "answer_id", "comment_id")] for i in items]


def _author(item: dict) -> str | None:
    owner = item.get("owner") or {}
    return html.unescape(owner["display_name"]) if owner.get("display_name") else None


class StackExchangeCrawler(Crawler):
    name = "stackexchange"

    def __init__(
        self,
        store,
        client,
        site: str,
        tagged: str | None = None,
        *,
        api_url: str = API,
        since=None,
        progress=None,
        max_pages=DEFAULT_MAX_PAGES,
    ) -> None:
        self.site, self.tagged, self.api = site, tagged, api_url.rstrip("/")
        super().__init__(store, client, f"{self.api}|{site}|{tagged or ''}", since=since, progress=progress, max_pages=max_pages)
        client.trust(self.api)

    def params(self) -> dict:
        return {**super().params(), "site": self.site, "tagged": self.tagged, "api_url": self.api}

    def _all(self, path: str, extra: dict | None = None) -> list[dict]:
        items, page = [], 1
        pages = self.pager(path.rsplit("/", 1)[-1])
        while True:
            resp = self.client.get_json(
                f"{self.api}{path}",
                {"site": self.site, "filter": FILTER, "pagesize": PAGE_SIZE, "page": page, **(extra or {})},
                expect=dict,
            )
            data = resp.data
            self._quota(data)
            with shape(resp.url):
                got = list(data.get("items") or [])
                pages.turn(resp.url, _ids(got))
            items.extend(got)
            if not data.get("has_more"):
                return items
            page += 1

    def _quota(self, data: dict) -> None:
        if data.get("quota_remaining") == 0:
            raise CrawlError(self.api, "the API quota for today is spent (quota_remaining 0); resume tomorrow or pass --key")

    def records(self, questions: list[dict], url: str = "") -> list:
        with shape(url or self.api):
            return self._records(questions)

    def _records(self, questions: list[dict]) -> list:
        if not questions:
            return []
        ids = ";".join(str(q["question_id"]) for q in questions)
        answers = self._all(f"/questions/{ids}/answers")
        post_ids = [q["question_id"] for q in questions] + [a["answer_id"] for a in answers]
        comments = []
        for i in range(0, len(post_ids), PAGE_SIZE):
            comments += self._all(f"/posts/{';'.join(map(str, post_ids[i : i + PAGE_SIZE]))}/comments")
        host = urlsplit(questions[0].get("link") or f"https://{self.site}.com").netloc
        source = source_name(host)
        thread_of = {a["answer_id"]: a["question_id"] for a in answers} | {q["question_id"]: q["question_id"] for q in questions}
        out = []
        for q in questions:
            text, code = html_to_text(q.get("body"))
            closed = _time(q.get("closed_date"))
            accepted = q.get("accepted_answer_id")
            out.append(
                Thread(
                    source=source,
                    source_id=str(q["question_id"]),
                    title=html.unescape(q.get("title") or ""),
                    url=f"https://{host}/questions/{q['question_id']}",
                    body_text=text,
                    body_html=q.get("body"),
                    code=code,
                    tags=list(q.get("tags") or []),
                    author=_author(q),
                    created_at=_time(q.get("creation_date")),
                    updated_at=_time(q.get("last_activity_date")),
                    views=q.get("view_count"),
                    score=q.get("score"),
                    reply_count=q.get("answer_count"),
                    accepted_reply_id=str(accepted) if accepted else None,
                    is_resolved=accepted is not None,
                    closed_at=closed,
                    state="closed" if closed else "open",
                    raw={k: v for k, v in q.items() if k != "body"},
                )
            )
        for a in answers:
            text, code = html_to_text(a.get("body"))
            out.append(
                Reply(
                    source=source,
                    reply_id=str(a["answer_id"]),
                    thread_id=str(a["question_id"]),
                    kind="answer",
                    author=_author(a),
                    created_at=_time(a.get("creation_date")),
                    body_text=text,
                    body_html=a.get("body"),
                    code=code,
                    score=a.get("score"),
                    is_accepted=bool(a.get("is_accepted")),
                    raw={k: v for k, v in a.items() if k != "body"},
                )
            )
        for c in comments:
            text, _ = html_to_text(c.get("body"))
            out.append(
                Reply(
                    source=source,
                    reply_id=f"c{c['comment_id']}",
                    thread_id=str(thread_of.get(c["post_id"], "")) or None,
                    parent_id=str(c["post_id"]),
                    kind="comment",
                    author=_author(c),
                    created_at=_time(c.get("creation_date")),
                    body_text=text,
                    score=c.get("score"),
                    raw={k: v for k, v in c.items() if k != "body"},
                )
            )
        return out

    def run(self) -> dict:
        run_id = self.start()
        page = int(self.cursor["page"]) if self.cursor else 1
        high = self.cursor.get("high_water") if self.cursor else None
        low = int(datetime.fromisoformat(self.since).timestamp()) + 1 if self.since else None
        pages = self.pager("question list")
        while True:
            params = {
                "site": self.site,
                "filter": FILTER,
                "pagesize": PAGE_SIZE,
                "page": page,
                "sort": "activity",
                "order": "asc",
            }
            if self.tagged:
                params["tagged"] = self.tagged
            if low is not None:
                params["min"] = low
            resp = self.client.get_json(f"{self.api}/questions", params, expect=dict)
            data = resp.data
            self._quota(data)
            self.counts["pages"] += 1
            with shape(resp.url):
                questions = list(data.get("items") or [])
                pages.turn(resp.url, _ids(questions))
                for q in questions:
                    t = _time(q.get("last_activity_date"))
                    if t is not None and (high is None or t.isoformat() > high):
                        high = t.isoformat()
            records = self.records(questions, resp.url)
            self.progress(len(questions))
            page += 1
            more = bool(data.get("has_more"))
            self.commit(run_id, records, {"page": page, "run_id": run_id, "high_water": high, "since": self.since})
            if not more:
                break
        self.finish(run_id, high)
        return self.counts | {"run_id": run_id}
