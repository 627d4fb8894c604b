"""Ingestion: stream a source's records into the store in one transaction.

Records are staged in batches (so memory stays flat whatever the input size) and merged
at the end: new threads are inserted; a thread whose content changed is replaced when
the new copy is at least as recent (by last activity); an older copy is skipped; a
partial copy (a topic-list entry) only refreshes counters of a full one. Replies whose
thread is unknown are dropped and counted. Any error rolls everything back.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path

import pandas as pd
import pyarrow as pa

from devquarry.errors import InputError
from devquarry.ingest_html import feed
from devquarry.model import Link, Reply, Thread
from devquarry.sources import DiscourseSource, GitHubSource, Source, StackExchangeDump, TableSource, TranscriptSource
from devquarry.sources.limits import INT32_MAX, INT64_MAX, MAX_FIELD_ENV, field_too_big, max_field_bytes, too_big
from devquarry.store import LINK_COLUMNS, REPLY_COLUMNS, THREAD_COLUMNS, Store, bot_reply_sql

BATCH_SIZE = 2000
_ARROW = {
    "VARCHAR": pa.string(),
    "VARCHAR NOT NULL": pa.string(),
    "VARCHAR[]": pa.list_(pa.string()),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "JSON": pa.string(),
}


def _schema(columns: dict[str, str]) -> pa.Schema:
    return pa.schema([(c, _ARROW[t]) for c, t in columns.items()] + [("seq", pa.int64())])


THREAD_SCHEMA = _schema(THREAD_COLUMNS)
REPLY_SCHEMA = _schema(REPLY_COLUMNS)
LINK_SCHEMA = _schema(LINK_COLUMNS)
_THREAD_FIELDS = [f.name for f in fields(Thread)]
_REPLY_FIELDS = [f.name for f in fields(Reply)]
_THREAD_VALUES = attrgetter(*_THREAD_FIELDS)
_REPLY_VALUES = attrgetter(*_REPLY_FIELDS)
_INT_LIMITS = {"BIGINT": INT64_MAX, "INTEGER": INT32_MAX}
# Sources whose reply ids never move between threads (a GitHub comment id belongs to one issue):
# a reply that turns up under another thread is refused. Elsewhere a move is real (merged questions).
FIXED_REPLY_THREADS = ("github:",)


def _bad(value, sqltype: str) -> str | None:
    """Why ``value`` cannot go into a column of ``sqltype``, or None when it can."""
    if value is None:
        return None
    sqltype = sqltype.replace(" NOT NULL", "")
    if sqltype in ("VARCHAR", "JSON"):
        ok = isinstance(value, str)
    elif sqltype in _INT_LIMITS:
        if isinstance(value, int) and abs(value) > _INT_LIMITS[sqltype]:
            return f"number out of range: {str(value)[:40]} (at most {_INT_LIMITS[sqltype]})"
        ok = isinstance(value, int)
    elif sqltype == "DOUBLE":
        try:
            ok = isinstance(value, float) and math.isfinite(value) or isinstance(value, int) and abs(value) <= INT64_MAX
        except OverflowError:
            ok = False
    elif sqltype == "TIMESTAMPTZ":
        ok = isinstance(value, datetime)
    elif sqltype == "BOOLEAN":
        ok = isinstance(value, bool)
    elif sqltype == "VARCHAR[]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = True
    return None if ok else f"cannot store {type(value).__name__} {str(value)[:40]!r} as {sqltype}"


# One encoder each, made once: json.dumps with options builds a new encoder on every call. Their
# output is json.dumps(..., sort_keys=True, default=str) and json.dumps(..., default=str), as before.
_HASH_JSON = json.JSONEncoder(sort_keys=True, default=str).encode
_RAW_JSON = json.JSONEncoder(default=str).encode


def _content_hash(values: dict) -> str:
    return hashlib.sha1(_HASH_JSON(values).encode()).hexdigest()


# The types a column takes as they are, with nothing more to check (exact types: a subclass, a
# bool where a number belongs, an int out of range go through _bad). Strings are checked for size.
_STRING_TYPES = ("VARCHAR", "VARCHAR NOT NULL", "JSON")
_PLAIN_TYPES = {"TIMESTAMPTZ": datetime, "BOOLEAN": bool}


def _column_checks(columns: dict[str, str]) -> list[tuple[str, str, type | None, int]]:
    """(name, SQL type, the exact type accepted at once or None, int limit or 0) per column."""
    out = []
    for name, sqltype in columns.items():
        plain = str if sqltype in _STRING_TYPES else _PLAIN_TYPES.get(sqltype)
        limit = _INT_LIMITS.get(sqltype.replace(" NOT NULL", ""), 0)
        out.append((name, sqltype, int if limit else plain, limit))
    return out


_CHECKS = {"thread": _column_checks(THREAD_COLUMNS), "reply": _column_checks(REPLY_COLUMNS), "link": _column_checks(LINK_COLUMNS)}


class _Stager:
    """Buffers records and appends them to temporary staging tables in batches."""

    def __init__(self, con, run_id: int, batch_size: int, source: Source | None = None) -> None:
        self.con = con
        self.source = source
        self.field_cap = max_field_bytes()
        self.run_id = run_id
        self.batch_size = batch_size
        self.seq = 0
        self.buf: dict[str, list[dict]] = {"thread": [], "reply": [], "link": []}
        self.staged = {"thread": 0, "reply": 0, "link": 0}
        for name, cols in (("thread", THREAD_COLUMNS), ("reply", REPLY_COLUMNS), ("link", LINK_COLUMNS)):
            defs = ", ".join(f"{c} {t.replace(' NOT NULL', '')}" for c, t in cols.items())
            con.execute(f"CREATE OR REPLACE TEMP TABLE stage_{name} ({defs}, seq BIGINT)")

    def add(self, rec) -> None:
        self.seq += 1
        if isinstance(rec, Thread):
            row = dict(zip(_THREAD_FIELDS, _THREAD_VALUES(rec)))
            row["raw"] = self._raw(rec, "thread", rec.source_id)
            row["content_hash"] = _content_hash(row)
            kind = "thread"
        elif isinstance(rec, Reply):
            row = dict(zip(_REPLY_FIELDS, _REPLY_VALUES(rec)))
            row["raw"] = self._raw(rec, "reply", rec.reply_id)
            row["content_hash"] = _content_hash(row)
            kind = "reply"
        elif isinstance(rec, Link):
            row = asdict(rec)
            kind = "link"
        else:
            raise TypeError(f"a source yielded {type(rec).__name__}, not a Thread, Reply or Link")
        row["run_id"] = self.run_id
        row["seq"] = self.seq
        self._check(kind, row)
        buf = self.buf[kind]
        buf.append(row)
        if len(buf) >= self.batch_size:
            self.flush(kind)

    def _where(self):
        return getattr(self.source, "current", None)

    def _raw(self, rec, kind: str, rid) -> str | None:
        if rec.raw is None:
            return None
        try:
            return _RAW_JSON(rec.raw)
        except (ValueError, RecursionError) as exc:
            raise InputError(
                self._where(), f"cannot store the record as JSON ({exc})", record=f"{kind} {rid}", field="raw"
            ) from None

    def _check(self, kind: str, row: dict) -> None:
        """The last line of defence: a source that let a wrong type or a huge value through fails
        here, on one line naming the record, and not deep inside Arrow or DuckDB."""
        quarter = self.field_cap // 4
        for name, sqltype, plain, limit in _CHECKS[kind]:
            value = row.get(name)
            if value is None:
                continue
            cls = value.__class__
            if cls is plain:
                # What _bad accepts at once (and a string short enough that it cannot pass the cap,
                # UTF-8 taking at most 4 bytes a character): one type test instead of a call per column.
                if cls is str:
                    if len(value) <= quarter or name == "raw":
                        continue
                elif not limit or -limit <= value <= limit:
                    continue
            rid = row.get("source_id") or row.get("reply_id") or row.get("from_id")
            why = _bad(value, sqltype)
            if why:
                raise InputError(self._where(), why, record=f"{kind} {rid}", field=name)
            if name != "raw" and isinstance(value, str) and field_too_big(value, self.field_cap):
                raise too_big(self._where(), "field", self.field_cap, MAX_FIELD_ENV, record=f"{kind} {rid}", field=name)

    def flush(self, kind: str | None = None) -> None:
        schemas = {"thread": THREAD_SCHEMA, "reply": REPLY_SCHEMA, "link": LINK_SCHEMA}
        for k in [kind] if kind else list(self.buf):
            rows = self.buf[k]
            if not rows:
                continue
            batch = pa.Table.from_pylist(rows, schema=schemas[k])  # noqa: F841 (read by DuckDB)
            self.con.execute(f"INSERT INTO stage_{k} SELECT * FROM batch")
            self.staged[k] += len(rows)
            rows.clear()


def ingest(
    store: Store,
    source: Source,
    *,
    command: str | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
    run_id: int | None = None,
    also: Callable | None = None,
    engine=None,
) -> pd.DataFrame:
    """Ingest one source into the store; return counts per table (new, updated, unchanged, skipped).

    ``run_id``: add to a run recorded earlier (a crawl's batches) instead of recording a new one;
    ``also(con)`` runs inside the same transaction (a crawler's checkpoint); ``engine``
    (``devquarry.engine``; default local): where HTML bodies become text (``ingest_html``)."""
    started = datetime.now(UTC)
    if engine is not None:
        from devquarry.engine import get_engine

        engine = get_engine(engine)  # an unknown engine or a missing extra stops here, before any work
    if progress is not None:
        source.progress = progress
    with store.transaction() as con:
        existing = run_id
        run_id = run_id or store.next_run_id()
        stager = _Stager(con, run_id, batch_size, source)
        feed(source, stager.add, engine)
        stager.flush()
        counts = _merge(con, run_id, source)
        for name in ("thread", "reply", "link"):
            con.execute(f"DROP TABLE IF EXISTS stage_{name}")
        if existing:
            store.add_run_counts(run_id, counts)
        else:
            store.record_run(run_id, command or f"ingest {source.kind}", source.params(), counts, started)
        if also is not None:
            also(con)
    frame = pd.DataFrame(
        [
            {
                "table": "thread",
                "new": counts["threads_new"],
                "updated": counts["threads_updated"] + counts["threads_refreshed"],
                "unchanged": counts["threads_unchanged"],
                "skipped": counts["threads_stale"],
            },
            {
                "table": "reply",
                "new": counts["replies_new"],
                "updated": counts["replies_updated"],
                "unchanged": counts["replies_unchanged"],
                "skipped": counts["replies_orphaned"] + counts["replies_stale"],
            },
            {"table": "link", "new": counts["links_new"], "updated": 0, "unchanged": counts["links_unchanged"], "skipped": 0},
        ]
    )
    frame.attrs["run_id"] = run_id
    frame.attrs["counts"] = counts
    return frame


# The posts_count a Discourse topic (full or listed) stated, kept in its raw JSON.
_POSTS = "TRY_CAST(json_extract_string({}.raw, '$.posts_count') AS BIGINT)"


def _merge(con, run_id: int, source: Source | None = None) -> dict[str, int]:
    tcols = list(THREAD_COLUMNS)
    rcols = list(REPLY_COLUMNS)
    counts: dict[str, int] = {}
    # Within one ingest a full copy of a thread wins over a list entry, then the most recent, then the last read.
    con.execute("""CREATE OR REPLACE TEMP TABLE s_thread AS SELECT * EXCLUDE (seq) FROM stage_thread
        QUALIFY row_number() OVER (PARTITION BY source, source_id
                                   ORDER BY coalesce(is_partial, false), updated_at DESC NULLS LAST, seq DESC) = 1""")
    con.execute("""CREATE OR REPLACE TEMP TABLE s_action AS
        SELECT s.source, s.source_id, CASE
            WHEN t.source IS NULL THEN 'new'
            WHEN t.content_hash = s.content_hash THEN 'unchanged'
            WHEN t.is_partial AND NOT s.is_partial THEN 'updated'
            WHEN s.updated_at < t.updated_at THEN 'stale'
            WHEN s.is_partial AND NOT t.is_partial THEN 'refresh'
            ELSE 'updated' END AS action
        FROM s_thread s LEFT JOIN thread t USING (source, source_id)""")
    actions = dict(con.execute("SELECT action, count(*) FROM s_action GROUP BY action").fetchall())
    counts["threads_new"] = actions.get("new", 0)
    counts["threads_updated"] = actions.get("updated", 0)
    counts["threads_unchanged"] = actions.get("unchanged", 0)
    counts["threads_stale"] = actions.get("stale", 0)
    # A topic-list entry no older than a full copy refreshes its counters (replies, views, likes),
    # category, open/closed state and an accepted answer it reports, and nothing else (not the posts).
    # Replies move by the change in posts_count since the full copy, so that the small actions
    # (moderator posts) the full copy left out stay out; without both counts the entry's own is taken.
    counts["threads_refreshed"] = con.execute(f"""UPDATE thread t SET views = n.views, score = n.score,
            category = n.category, state = n.state, is_resolved = n.is_resolved, reply_count = n.reply_count,
            raw = CASE WHEN n.posts_count IS NULL THEN t.raw
                       ELSE json_merge_patch(coalesce(t.raw, '{{}}'), json_object('posts_count', n.posts_count)) END,
            updated_at = n.updated_at
        FROM (SELECT s.source, s.source_id, coalesce(s.views, e.views) AS views, coalesce(s.score, e.score) AS score,
                     coalesce(s.category, e.category) AS category, coalesce(s.state, e.state) AS state,
                     CASE WHEN s.is_resolved THEN true ELSE e.is_resolved END AS is_resolved,
                     CASE WHEN s.reply_count IS NULL THEN e.reply_count
                          WHEN e.reply_count IS NOT NULL AND {_POSTS.format("s")} IS NOT NULL AND {_POSTS.format("e")} IS NOT NULL
                          THEN greatest(e.reply_count + {_POSTS.format("s")} - {_POSTS.format("e")}, 0)
                          ELSE s.reply_count END AS reply_count,
                     {_POSTS.format("s")} AS posts_count, greatest(e.updated_at, s.updated_at) AS updated_at
              FROM s_thread s JOIN s_action a USING (source, source_id) JOIN thread e USING (source, source_id)
              WHERE a.action = 'refresh') n
        WHERE t.source = n.source AND t.source_id = n.source_id
          AND (t.views IS DISTINCT FROM n.views OR t.score IS DISTINCT FROM n.score OR t.category IS DISTINCT FROM n.category
               OR t.state IS DISTINCT FROM n.state OR t.is_resolved IS DISTINCT FROM n.is_resolved
               OR t.reply_count IS DISTINCT FROM n.reply_count OR t.updated_at IS DISTINCT FROM n.updated_at)""").fetchone()[0]
    setters = ", ".join(f"{c} = excluded.{c}" for c in tcols if c not in ("source", "source_id"))
    # New rows by a plain INSERT: they cannot conflict (s_thread holds one row a key, 'new' ones are
    # not in the table), and DuckDB's ON CONFLICT path holds the whole insert in memory, which ran a
    # large dump out of memory. Only the updated ones go through it.
    con.execute(f"""INSERT INTO thread ({", ".join(tcols)}) SELECT {", ".join("s." + c for c in tcols)}
        FROM s_thread s JOIN s_action a USING (source, source_id) WHERE a.action = 'new'""")
    con.execute(f"""INSERT INTO thread ({", ".join(tcols)}) SELECT {", ".join("s." + c for c in tcols)}
        FROM s_thread s JOIN s_action a USING (source, source_id) WHERE a.action = 'updated'
        ON CONFLICT DO UPDATE SET {setters}""")

    con.execute("""CREATE OR REPLACE TEMP TABLE s_reply0 AS SELECT * EXCLUDE (seq) FROM stage_reply
        QUALIFY row_number() OVER (PARTITION BY source, reply_id ORDER BY seq DESC) = 1""")
    # Comments know only the post they hang under: a question (the thread) or an answer.
    # Bots are told by one rule (the store's), the same that migrates stores made before the flag.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE s_reply AS
        SELECT r.* REPLACE (coalesce(r.thread_id, t.source_id, pr.thread_id, er.thread_id) AS thread_id,
                            coalesce(r.is_bot, {bot_reply_sql("r.")}) AS is_bot)
        FROM s_reply0 r
        LEFT JOIN thread t ON r.thread_id IS NULL AND t.source = r.source AND t.source_id = r.parent_id
        LEFT JOIN s_reply0 pr ON r.thread_id IS NULL AND pr.source = r.source AND pr.reply_id = r.parent_id
        LEFT JOIN reply er ON r.thread_id IS NULL AND er.source = r.source AND er.reply_id = r.parent_id""")
    _refuse_moved_replies(con, source)
    con.execute("""CREATE OR REPLACE TEMP TABLE r_action AS
        SELECT s.source, s.reply_id, CASE
            WHEN t.source IS NULL THEN 'orphaned'
            WHEN a.action = 'stale' THEN 'stale'
            WHEN e.source IS NULL THEN 'new'
            WHEN e.content_hash = s.content_hash THEN 'unchanged'
            ELSE 'updated' END AS action
        FROM s_reply s
        LEFT JOIN thread t ON t.source = s.source AND t.source_id = s.thread_id
        LEFT JOIN s_action a ON a.source = s.source AND a.source_id = s.thread_id
        LEFT JOIN reply e ON e.source = s.source AND e.reply_id = s.reply_id""")
    ractions = dict(con.execute("SELECT action, count(*) FROM r_action GROUP BY action").fetchall())
    for key in ("new", "updated", "unchanged", "orphaned", "stale"):
        counts[f"replies_{key}"] = ractions.get(key, 0)
    rsetters = ", ".join(f"{c} = excluded.{c}" for c in rcols if c not in ("source", "reply_id"))
    con.execute(f"""INSERT INTO reply ({", ".join(rcols)}) SELECT {", ".join("s." + c for c in rcols)}
        FROM s_reply s JOIN r_action a USING (source, reply_id) WHERE a.action = 'new'""")  # as for threads
    con.execute(f"""INSERT INTO reply ({", ".join(rcols)}) SELECT {", ".join("s." + c for c in rcols)}
        FROM s_reply s JOIN r_action a USING (source, reply_id) WHERE a.action = 'updated'
        ON CONFLICT DO UPDATE SET {rsetters}""")

    before = con.execute("SELECT count(*) FROM link").fetchone()[0]
    staged_links = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT source, from_id, to_id, link_type FROM stage_link)"
    ).fetchone()[0]
    con.execute(f"""INSERT INTO link SELECT {", ".join(LINK_COLUMNS)} FROM stage_link
        QUALIFY row_number() OVER (PARTITION BY source, from_id, to_id, link_type ORDER BY seq DESC) = 1
        ON CONFLICT DO NOTHING""")
    counts["links_new"] = con.execute("SELECT count(*) FROM link").fetchone()[0] - before
    counts["links_unchanged"] = staged_links - counts["links_new"]
    for name in ("s_thread", "s_action", "s_reply0", "s_reply", "r_action"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    return counts


def _refuse_moved_replies(con, source: Source | None) -> None:
    """A reply id of a FIXED_REPLY_THREADS source under another thread than in the store (or than
    elsewhere in this input) is two comments sharing an id: storing it would move one of them."""
    prefixes = " OR ".join(f"source LIKE '{p}%'" for p in FIXED_REPLY_THREADS)
    clash = con.execute(f"""
        SELECT s.source, s.reply_id, s.thread_id, e.thread_id, 'the store' FROM s_reply s
        JOIN reply e ON e.source = s.source AND e.reply_id = s.reply_id
        WHERE ({prefixes.replace("source", "s.source")}) AND e.thread_id IS DISTINCT FROM s.thread_id
        UNION ALL
        SELECT source, reply_id, max(thread_id), min(thread_id), 'this input' FROM stage_reply
        WHERE {prefixes} GROUP BY source, reply_id HAVING count(DISTINCT thread_id) > 1
        LIMIT 1""").fetchone()
    if clash:
        name, rid, here, there, where = clash
        paths = getattr(source, "paths", None) or []
        raise InputError(
            paths[0] if len(paths) == 1 else None,
            f"comment {rid} of {name} is under issue {here} here but under issue {there} in {where}; "
            "a comment id belongs to one issue",
            record=f"issue {here}",
            field="comments.id",
        )


def ingest_stackexchange(
    store: Store, path: str | Path, *, tags: list[str] | None = None, site: str | None = None, **kw
) -> pd.DataFrame:
    """Ingest a Stack Exchange dump folder (or its Posts.xml)."""
    return ingest(store, StackExchangeDump(path, tags=tags, site=site), **kw)


def ingest_discourse(store: Store, paths, *, host: str | None = None, **kw) -> pd.DataFrame:
    """Ingest Discourse topic JSON (``/t/{id}.json``, crawls with posts) or topic lists."""
    return ingest(store, DiscourseSource(paths, host=host), **kw)


def ingest_github(store: Store, paths, *, repo: str | None = None, encoding: str = "utf-8", **kw) -> pd.DataFrame:
    """Ingest GitHub issues from JSON exports or headerless CSV exports."""
    return ingest(store, GitHubSource(paths, repo=repo, encoding=encoding), **kw)


def ingest_table(store: Store, paths, *, source: str, mapping=None, encoding: str = "utf-8", **kw) -> pd.DataFrame:
    """Ingest CSV, JSONL or XLSX rows as threads, with a field=column mapping."""
    return ingest(store, TableSource(paths, source=source, mapping=mapping, encoding=encoding), **kw)


def ingest_transcripts(store: Store, paths, *, max_tokens: int = 300, **kw) -> pd.DataFrame:
    """Ingest talk transcripts (VTT, SRT, text) as paragraphs of at most max_tokens tokens."""
    return ingest(store, TranscriptSource(paths, max_tokens=max_tokens), **kw)
