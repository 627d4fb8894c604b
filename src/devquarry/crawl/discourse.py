"""Crawl a Discourse forum: topic lists page by page (``/latest.json`` or a category's), each
topic (``/t/{id}.json``) with all its posts (the first chunk, then the rest of
``post_stream.stream`` by id through ``/t/{id}/posts.json``), accepted answers included.

Incremental: a topic is fetched only when its ``last_posted_at`` is after the last finished
crawl's high-water mark; listing stops after the first page that holds an older unpinned topic.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from devquarry.crawl.base import DEFAULT_MAX_PAGES, Crawler, later, newer_than, shape
from devquarry.crawl.http import NotFound
from devquarry.sources.discourse import _full_topic

POSTS_PER_REQUEST = 20


class DiscourseCrawler(Crawler):
    name = "discourse"

    def __init__(
        self,
        store,
        client,
        base_url: str,
        *,
        category: str | None = None,
        since=None,
        max_topics: int | None = None,
        progress=None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        self.category = category
        super().__init__(
            store, client, f"{self.base}|{category or 'latest'}", since=since, progress=progress, max_pages=max_pages
        )
        client.trust(self.base)
        self.max_topics = max_topics

    def params(self) -> dict:
        return {**super().params(), "base_url": self.base, "category": self.category, "max_topics": self.max_topics}

    def _list_url(self) -> str:
        return f"{self.base}/c/{self.category.strip('/')}.json" if self.category else f"{self.base}/latest.json"

    def topic(self, topic_id) -> dict | None:
        """The topic with every post in ``post_stream.posts``; None when it is gone."""
        url = f"{self.base}/t/{topic_id}.json"
        try:
            data = self.client.get_json(url, expect=dict).data
        except NotFound:
            self.counts["gone"] += 1
            return None
        with shape(url):
            stream = data.get("post_stream") or {}
            posts = {p["id"]: p for p in stream.get("posts") or []}
            missing = [pid for pid in stream.get("stream") or [] if pid not in posts]
        for i in range(0, len(missing), POSTS_PER_REQUEST):
            chunk = missing[i : i + POSTS_PER_REQUEST]
            try:
                more = self.client.get_json(f"{self.base}/t/{topic_id}/posts.json", {"post_ids[]": chunk}, expect=dict)
            except NotFound:
                continue  # posts deleted meanwhile
            with shape(more.url):
                for p in (more.data.get("post_stream") or {}).get("posts") or []:
                    posts[p["id"]] = p
        with shape(url):
            stream["posts"] = sorted(posts.values(), key=lambda p: p.get("post_number", 0))
        data["post_stream"] = stream
        return data

    def run(self) -> dict:
        run_id = self.start()
        page = int(self.cursor["page"]) if self.cursor else 0
        high = self.cursor.get("high_water") if self.cursor else None
        fetched = int(self.cursor.get("fetched", 0)) if self.cursor else 0
        pages = self.pager("topic list")
        while True:
            resp = self.client.get_json(self._list_url(), {"page": page}, expect=dict)
            listing = resp.data
            self.counts["pages"] += 1
            with shape(resp.url):
                topics = (listing.get("topic_list") or {}).get("topics") or []
                if not topics:
                    break
                records, done = [], False
                fresh = [t for t in topics if newer_than(t.get("last_posted_at") or t.get("bumped_at"), self.since)]
                for t in topics:
                    high = later(high, t.get("last_posted_at") or t.get("bumped_at"))
                if any(not t.get("pinned") and t not in fresh for t in topics):
                    done = True  # the list runs newest activity first: everything below is older still
                more = (listing.get("topic_list") or {}).get("more_topics_url")
                ids = [t["id"] for t in topics]
            pages.turn(resp.url, ids)
            for t in fresh:
                if self.max_topics is not None and fetched >= self.max_topics:
                    done = True
                    break
                full = self.topic(t["id"])
                fetched += 1
                self.progress(1)
                if full is not None:
                    with shape(f"{self.base}/t/{t['id']}.json"):
                        records.extend(_full_topic(full, Path(f"{self.base}/t/{t['id']}.json"), 0, self.host))
            page += 1
            cursor = {"page": page, "run_id": run_id, "high_water": high, "since": self.since, "fetched": fetched}
            self.commit(run_id, records, cursor)
            if done or not more:
                break
        self.finish(run_id, high)
        return self.counts | {"run_id": run_id}
