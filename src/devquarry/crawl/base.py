"""What every crawler shares: a run recorded at the start, batches ingested with their checkpoint
in one transaction, and the checkpoint's shape.

Checkpoint per (crawler, target), in the store's ``crawl_state``:
- ``since``: the high-water mark of the last crawl that finished (what a re-run starts from);
- ``cursor``: where an unfinished crawl stopped (the next page, its run, its high-water mark so
  far); a restart resumes there and re-fetches at most the page it was killed in, which ingests
  as unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from devquarry.crawl.http import CrawlError, HttpClient
from devquarry.ingest import ingest
from devquarry.model import Record
from devquarry.sources.base import Source
from devquarry.store import Store


class Batch(Source):
    """Records already fetched, handed to the ordinary ingest."""

    def __init__(self, records: list[Record], kind: str, params: dict) -> None:
        self.paths = []
        self.progress = lambda n: None
        self.kind = kind
        self._records, self._params = records, params

    def params(self) -> dict[str, Any]:
        return self._params

    def records(self) -> Iterator[Record]:
        yield from self._records


# Pages of one list a run may read: a forum of 300,000 topics has 10,000 pages of 30. A server that
# pages forever stops here (--max-pages); a page that repeats an earlier one stops at once.
DEFAULT_MAX_PAGES = 10_000


class Pager:
    """One list's pages: counts them against ``limit`` and stops on a page (its items, or the
    cursor that leads to it) seen before, which means the server would page forever."""

    def __init__(self, limit: int | None, what: str) -> None:
        self.limit, self.what, self.count, self.seen = limit, what, 0, {}

    def turn(self, url: str, *marks) -> None:
        """Call once per page read, before using it, with what identifies it (its item ids, its next
        cursor); past the limit: the page after the last one allowed was read, and is not used."""
        self.count += 1
        for mark in marks:
            if mark is None:
                continue
            digest = hashlib.sha256(json.dumps(mark, sort_keys=True, default=str).encode()).hexdigest()
            if digest in self.seen:
                raise CrawlError(
                    url, f"page {self.count} of the {self.what} repeats page {self.seen[digest]}: the server pages forever"
                )
            self.seen[digest] = self.count
        if self.limit is not None and self.count > self.limit:
            raise CrawlError(
                url,
                f"stopped after {self.limit} pages of the {self.what} (--max-pages); "
                "raise --max-pages if the source is that large",
            )


@contextmanager
def shape(url: str):
    """A page the crawler cannot read (a field missing, a list where an object belongs, a date that is
    no date) fails as a :class:`CrawlError` naming the page, before anything of it is written."""
    try:
        yield
    except KeyError as exc:
        raise CrawlError(url, f"unexpected answer: field {exc} missing") from None
    except (TypeError, AttributeError, ValueError, OverflowError) as exc:
        raise CrawlError(url, f"unexpected answer: {str(exc)[:120]}") from None


class Crawler:
    name = "crawler"

    def __init__(
        self,
        store: Store,
        client: HttpClient,
        target: str,
        *,
        since: datetime | None = None,
        progress: Callable[[int], None] | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
    ) -> None:
        self.store, self.client, self.target = store, client, target
        self.max_pages = max_pages
        self.progress = progress or (lambda n: None)
        saved = store.crawl_state(self.name, target)
        self.cursor = saved.get("cursor")
        self.since = since.isoformat() if since else saved.get("since")
        if self.cursor and since is None:
            self.since = self.cursor.get("since")
        self.counts = {"threads": 0, "requests": 0, "gone": 0, "pages": 0}
        self._requests_before = client.requests

    def params(self) -> dict:
        return {"target": self.target, "since": self.since, "rate_per_minute": self.client.rate, "replay": self.client.replay}

    def pager(self, what: str) -> Pager:
        return Pager(self.max_pages, what)

    def start(self) -> int:
        """The run this crawl writes into: the interrupted one's when resuming, else a new one,
        recorded with the first batch written (a crawl killed before it leaves no empty run)."""
        self._started = datetime.now(UTC)
        if self.cursor and self.cursor.get("run_id"):
            self._recorded = True
            return int(self.cursor["run_id"])
        self._recorded = False
        return self.store.next_run_id()

    def _record(self, run_id: int) -> None:
        if not getattr(self, "_recorded", True):
            self.store.record_run(run_id, f"crawl {self.name}", self.params(), {}, self._started)
            self._recorded = True

    def commit(self, run_id: int, records: list[Record], cursor: dict | None, since: str | None = None) -> pd.DataFrame:
        """Ingest a batch and move the checkpoint, all or nothing."""
        state = {
            "since": since if since is not None else self.store.crawl_state(self.name, self.target).get("since"),
            "cursor": cursor,
        }
        new = not getattr(self, "_recorded", True)
        frame = ingest(
            self.store,
            Batch(records, f"crawl {self.name}", self.params()),
            # The first batch records the run, in its own transaction: with the lock on the store
            # held, the id it takes is the one reserved in start().
            run_id=None if new else run_id,
            command=f"crawl {self.name}",
            also=lambda con: self.store.save_crawl_state(self.name, self.target, state),
        )
        if new and frame.attrs["run_id"] != run_id:
            raise RuntimeError(f"another writer took run {run_id} while the crawl held the store")
        self._recorded = True
        self.counts["threads"] += sum(1 for r in records if type(r).__name__ == "Thread")
        return frame

    def finish(self, run_id: int, high_water: str | None) -> None:
        with self.store.transaction():
            self._record(run_id)
            self.store.save_crawl_state(self.name, self.target, {"since": high_water or self.since, "cursor": None})
            self.counts["requests"] = self.client.requests - self._requests_before
            self.store.add_run_counts(run_id, {k: v for k, v in self.counts.items() if k != "threads"} | {"finished": True})


def later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return max(a, b, key=lambda v: pd.Timestamp(v))


def newer_than(value: str | None, since: str | None) -> bool:
    if since is None or value is None:
        return True
    return pd.Timestamp(value) > pd.Timestamp(since)
