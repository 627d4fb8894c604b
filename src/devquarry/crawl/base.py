"""What every crawler shares: a run recorded at the start, batches ingested with their checkpoint
in one transaction, and the checkpoint's shape.

Checkpoint per (crawler, target), in the store's ``crawl_state``:
- ``since``: the high-water mark of the last crawl that finished (what a re-run starts from);
- ``cursor``: where an unfinished crawl stopped (the next page, its run, its high-water mark so
  far); a restart resumes there and re-fetches at most the page it was killed in, which ingests
  as unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from devquarry.crawl.http import HttpClient
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
    ) -> None:
        self.store, self.client, self.target = store, client, target
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

    def start(self) -> int:
        """The run this crawl writes into: the interrupted one's when resuming, else a new one."""
        if self.cursor and self.cursor.get("run_id"):
            return int(self.cursor["run_id"])
        with self.store.transaction():
            run_id = self.store.next_run_id()
            self.store.record_run(run_id, f"crawl {self.name}", self.params(), {}, datetime.now(UTC))
        return run_id

    def commit(self, run_id: int, records: list[Record], cursor: dict | None, since: str | None = None) -> pd.DataFrame:
        """Ingest a batch and move the checkpoint, all or nothing."""
        state = {
            "since": since if since is not None else self.store.crawl_state(self.name, self.target).get("since"),
            "cursor": cursor,
        }
        frame = ingest(
            self.store,
            Batch(records, f"crawl {self.name}", self.params()),
            run_id=run_id,
            also=lambda con: self.store.save_crawl_state(self.name, self.target, state),
        )
        self.counts["threads"] += sum(1 for r in records if type(r).__name__ == "Thread")
        return frame

    def finish(self, run_id: int, high_water: str | None) -> None:
        with self.store.transaction():
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
