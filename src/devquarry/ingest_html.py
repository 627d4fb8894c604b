"""Ingest's HTML to text on an engine: the source is read here, the bodies converted by the engine's
workers in batches, the records staged here, in the same order and with the same text as a local
ingest gives (``tests/test_engine.py``)."""

from __future__ import annotations

from collections.abc import Callable

from devquarry.model import Link
from devquarry.sources import Source
from devquarry.text import PENDING, html_deferred

# Records per batch sent to the engine: each map is a job on the cluster, so batches are large.
HTML_ROWS = 20_000
# The sources whose records keep the HTML they convert as ``body_html``, unchanged: only those can
# have it converted elsewhere (GitHub issues and transcripts are not HTML).
DEFERRABLE = frozenset({"stackexchange", "discourse", "table"})


def feed(source: Source, add: Callable, engine=None) -> None:
    """``add`` each of ``source``'s records, their HTML converted by ``engine`` (default: here, as
    the source reads them)."""
    from devquarry.engine import is_local

    if is_local(engine) or source.kind not in DEFERRABLE:
        for rec in source.records():
            add(rec)
        return
    batch: list = []
    where = None  # the file the batch came from: errors found when staging name it

    def flush() -> None:
        _convert(engine, [r for r in batch if not isinstance(r, Link) and r.body_text is PENDING])
        now = source.current
        source.current = where
        try:
            for rec in batch:
                add(rec)
        finally:
            source.current = now
        batch.clear()

    with html_deferred():
        for rec in source.records():
            if batch and (len(batch) >= HTML_ROWS or source.current != where):
                flush()
            where = source.current
            batch.append(rec)
        if batch:
            flush()


def _convert(engine, records: list) -> None:
    from devquarry.engine import html_to_texts

    for rec in records:
        if rec.code is not PENDING or not rec.body_html:
            raise RuntimeError(f"{type(rec).__name__} with text to convert but not its HTML")  # a source outside DEFERRABLE
    texts, codes = html_to_texts(engine, [r.body_html for r in records])
    for rec, text, code in zip(records, texts, codes, strict=True):
        rec.body_text, rec.code = text, code
