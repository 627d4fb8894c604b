"""The DuckDB store: versioned schema, idempotent upserts in one transaction, run records.

Tables hold what the sources said; the views ``threads`` and ``replies`` add what can be
derived from the replies held (reply count, first reply, accepted answer, resolved) where
the source did not say it. Read through the views.
"""

from __future__ import annotations

import json
import os
import platform
import re
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from devquarry.errors import InputError

SCHEMA_VERSION = 9
DEFAULT_DB = "devquarry.duckdb"
DEFAULT_MEMORY_LIMIT = "1GB"
# What the text models (topics, the supervised coders) read of a thread.
TEXT_COLUMNS = ["source", "source_id", "title", "body_text"]
TRACKED_PACKAGES = ("devquarry", "duckdb", "lxml", "pandas", "pyarrow", "jinja2", "plotly")

THREAD_COLUMNS = {
    "source": "VARCHAR NOT NULL",
    "source_id": "VARCHAR NOT NULL",
    "url": "VARCHAR",
    "title": "VARCHAR",
    "body_text": "VARCHAR",
    "body_html": "VARCHAR",
    "code": "VARCHAR",
    "tags": "VARCHAR[]",
    "category": "VARCHAR",
    "author": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "updated_at": "TIMESTAMPTZ",
    "views": "BIGINT",
    "score": "DOUBLE",
    "reply_count": "INTEGER",
    "first_reply_at": "TIMESTAMPTZ",
    "accepted_at": "TIMESTAMPTZ",
    "accepted_reply_id": "VARCHAR",
    "is_resolved": "BOOLEAN",
    "closed_at": "TIMESTAMPTZ",
    "state": "VARCHAR",
    "label": "VARCHAR",
    "is_partial": "BOOLEAN",
    "raw": "JSON",
    "content_hash": "VARCHAR",
    "run_id": "INTEGER",
}
REPLY_COLUMNS = {
    "source": "VARCHAR NOT NULL",
    "reply_id": "VARCHAR NOT NULL",
    "thread_id": "VARCHAR",
    "parent_id": "VARCHAR",
    "kind": "VARCHAR",
    "author": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "body_text": "VARCHAR",
    "body_html": "VARCHAR",
    "code": "VARCHAR",
    "score": "DOUBLE",
    "is_accepted": "BOOLEAN",
    "raw": "JSON",
    "content_hash": "VARCHAR",
    "run_id": "INTEGER",
    # Last, so that a store migrated by ALTER TABLE ... ADD COLUMN has the same column order.
    "is_bot": "BOOLEAN",
}


def bot_reply_sql(prefix: str = "") -> str:
    """SQL that is true for a reply written by a bot: a GitHub login ending in ``[bot]`` (or user
    type Bot), a Discourse system user (id <= 0: system, discobot), the Stack Exchange Community
    user (id -1). ``prefix`` is the reply table's alias with its dot (``"r."``)."""
    r = prefix
    raw = f"{r}raw"
    return f"""coalesce(
  {r}author ILIKE '%[bot]' OR json_extract_string({raw}, '$.user.type') = 'Bot'
  OR json_extract_string({raw}, '$.author_type') = 'Bot'
  OR ({r}source LIKE 'discourse:%' AND (lower({r}author) IN ('system', 'discobot')
      OR TRY_CAST(json_extract_string({raw}, '$.user_id') AS BIGINT) <= 0))
  OR (({r}source = 'stackoverflow' OR {r}source LIKE 'stackexchange:%') AND ({r}author = '-1'
      OR json_extract_string({raw}, '$.OwnerUserId') = '-1' OR json_extract_string({raw}, '$.UserId') = '-1'
      OR json_extract_string({raw}, '$.owner.user_id') = '-1')),
  false)"""


LINK_COLUMNS = {
    "source": "VARCHAR NOT NULL",
    "from_id": "VARCHAR NOT NULL",
    "to_id": "VARCHAR NOT NULL",
    "link_type": "VARCHAR NOT NULL",
    "created_at": "TIMESTAMPTZ",
    "run_id": "INTEGER",
}


def _table_sql(name: str, columns: dict[str, str], key: tuple[str, ...]) -> str:
    cols = ",\n  ".join(f"{c} {t}" for c, t in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  {cols},\n  PRIMARY KEY ({', '.join(key)})\n)"


SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    _table_sql("thread", THREAD_COLUMNS, ("source", "source_id")),
    _table_sql("reply", REPLY_COLUMNS, ("source", "reply_id")),
    _table_sql("link", LINK_COLUMNS, ("source", "from_id", "to_id", "link_type")),
    """CREATE TABLE IF NOT EXISTS embedding (
  backend VARCHAR NOT NULL, model VARCHAR NOT NULL, text_hash VARCHAR NOT NULL,
  dim INTEGER, vector BLOB, PRIMARY KEY (backend, model, text_hash))""",
    """CREATE TABLE IF NOT EXISTS topic (
  run_id INTEGER NOT NULL, topic_id INTEGER NOT NULL, label VARCHAR, keywords VARCHAR[],
  keybert VARCHAR[], size INTEGER, theme_id INTEGER, PRIMARY KEY (run_id, topic_id))""",
    """CREATE TABLE IF NOT EXISTS topic_assignment (
  run_id INTEGER NOT NULL, source VARCHAR NOT NULL, source_id VARCHAR NOT NULL, topic_id INTEGER,
  PRIMARY KEY (run_id, source, source_id))""",
    """CREATE TABLE IF NOT EXISTS theme (
  run_id INTEGER NOT NULL, theme_id INTEGER NOT NULL, label VARCHAR, keywords VARCHAR[], size INTEGER,
  PRIMARY KEY (run_id, theme_id))""",
    """CREATE TABLE IF NOT EXISTS label (
  codebook VARCHAR NOT NULL, source VARCHAR NOT NULL, source_id VARCHAR NOT NULL, rater VARCHAR NOT NULL,
  code VARCHAR NOT NULL, rank INTEGER, level INTEGER, status VARCHAR, uncertain BOOLEAN, run_id INTEGER,
  PRIMARY KEY (codebook, source, source_id, rater, code))""",
    """CREATE TABLE IF NOT EXISTS classification (
  run_id INTEGER NOT NULL, codebook VARCHAR NOT NULL, source VARCHAR NOT NULL, source_id VARCHAR NOT NULL,
  code VARCHAR NOT NULL, score DOUBLE, method VARCHAR, PRIMARY KEY (run_id, source, source_id, code))""",
    # A user's codebook (its YAML text), kept with its labels: later runs need it after the file is gone.
    """CREATE TABLE IF NOT EXISTS codebook (
  id VARCHAR PRIMARY KEY, yaml VARCHAR NOT NULL, path VARCHAR, stored_at TIMESTAMPTZ)""",
    # A crawler's checkpoint, written in the same transaction as the threads it stands for.
    """CREATE TABLE IF NOT EXISTS crawl_state (
  crawler VARCHAR NOT NULL, target VARCHAR NOT NULL, state JSON, updated_at TIMESTAMPTZ,
  PRIMARY KEY (crawler, target))""",
    """CREATE TABLE IF NOT EXISTS run (
  run_id INTEGER PRIMARY KEY, command VARCHAR, params JSON, versions JSON,
  counts JSON, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)""",
    # Version 9: a machine code's rank within its thread (0 = the primary code, the one shares count),
    # and the answers of LLM coders, kept so that a re-run costs no call.
    "ALTER TABLE classification ADD COLUMN IF NOT EXISTS rank INTEGER",
    """UPDATE classification c SET rank = r.n FROM (
  SELECT run_id, source, source_id, code,
         row_number() OVER (PARTITION BY run_id, source, source_id ORDER BY score DESC NULLS LAST, code) - 1 AS n
  FROM classification) r
WHERE c.rank IS NULL AND c.run_id = r.run_id AND c.source = r.source AND c.source_id = r.source_id AND c.code = r.code""",
    """CREATE TABLE IF NOT EXISTS llm_answer (
  model VARCHAR NOT NULL, prompt_hash VARCHAR NOT NULL, sample INTEGER NOT NULL, answer VARCHAR,
  created_at TIMESTAMPTZ, PRIMARY KEY (model, prompt_hash, sample))""",
    # Version 8 added reply.is_bot: a store made before gets the column and the flag here.
    "ALTER TABLE reply ADD COLUMN IF NOT EXISTS is_bot BOOLEAN",
    f"UPDATE reply SET is_bot = {bot_reply_sql()} WHERE is_bot IS NULL",
    # An answer is accepted when the source flags it or the thread names it (Stack Exchange
    # keeps AcceptedAnswerId on the question only).
    """CREATE OR REPLACE VIEW replies AS
SELECT r.* REPLACE (coalesce(r.is_accepted, false) OR (t.accepted_reply_id IS NOT NULL
        AND r.reply_id = t.accepted_reply_id) AS is_accepted)
FROM reply r LEFT JOIN thread t ON t.source = r.source AND t.source_id = r.thread_id""",
    # Bots' replies (is_bot) are kept but neither counted nor taken as the first reply, unless the
    # meta setting count_bots is on. Where the source gave its own count (GitHub's comments_count,
    # Discourse's posts, Stack Exchange's AnswerCount), the bot replies held are taken off it.
    """CREATE OR REPLACE VIEW threads AS
WITH cfg AS (
  SELECT coalesce(lower(trim(max(value))) IN ('1', 'true', 'yes', 'on'), false) AS count_bots
  FROM meta WHERE key = 'count_bots'),
agg AS (
  SELECT source, thread_id,
         count(*) FILTER (WHERE kind = 'answer' AND (count_bots OR NOT coalesce(is_bot, false))) AS n_answers,
         count(*) FILTER (WHERE kind = 'answer' AND NOT count_bots AND coalesce(is_bot, false)) AS n_bot_answers,
         min(created_at) FILTER (WHERE kind = 'answer' AND (count_bots OR NOT coalesce(is_bot, false))) AS first_answer_at,
         min(created_at) FILTER (WHERE is_accepted AND kind = 'answer') AS accepted_answer_at
  FROM replies CROSS JOIN cfg GROUP BY ALL)
SELECT t.* EXCLUDE (content_hash, reply_count, first_reply_at, accepted_at, is_resolved),
       -- 0 only where the source holds replies at all; an imported table without them stays unknown
       coalesce(CASE WHEN t.reply_count IS NOT NULL
                     THEN greatest(t.reply_count - coalesce(a.n_bot_answers, 0), coalesce(a.n_answers, 0)) END,
                a.n_answers, CASE WHEN t.source IN (SELECT DISTINCT source FROM reply) THEN 0 END) AS reply_count,
       coalesce(t.first_reply_at, a.first_answer_at) AS first_reply_at,
       coalesce(t.accepted_at, a.accepted_answer_at) AS accepted_at,
       -- unknown (NULL) only where the source says nothing of resolution: neither a flag on any of
       -- its threads nor replies to find an accepted answer among (a table with no resolved column)
       coalesce(t.is_resolved, CASE WHEN a.accepted_answer_at IS NOT NULL THEN true
                                    WHEN t.source IN (SELECT DISTINCT source FROM thread WHERE is_resolved IS NOT NULL)
                                      OR t.source IN (SELECT DISTINCT source FROM reply) THEN false END) AS is_resolved
FROM thread t LEFT JOIN agg a ON a.source = t.source AND a.thread_id = t.source_id""",
]


def default_db() -> str:
    return os.environ.get("DEVQUARRY_DB", DEFAULT_DB)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


class Store:
    """One DuckDB file holding threads, replies, links and the record of every run."""

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False, memory_limit: str | None = None) -> None:
        self.path = Path(path or default_db())
        if read_only and not self.path.exists():
            raise InputError(self.path, "no such store; ingest something first")
        # A cap makes DuckDB spill large ingests to disk instead of growing with the input.
        config = {
            "memory_limit": memory_limit or os.environ.get("DEVQUARRY_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
            "preserve_insertion_order": False,
        }
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            held = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", str(exc))
            if held:
                raise InputError(
                    self.path,
                    f"the store is in use by process {held.group(2)} ({Path(held.group(1)).name}), e.g. `devquarry serve`: "
                    "stop it first, or start the server with --read-only so that other commands can read the store",
                ) from None
            raise InputError(self.path, f"cannot open as a DuckDB store ({exc})") from None
        if not read_only:
            self._migrate()
        else:
            self._check_version()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self) -> None:
        self._check_version()
        with self.transaction():
            for stmt in SCHEMA:
                self.con.execute(stmt)
            # Versions only add tables so far: creating what is missing is the migration.
            self.con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO UPDATE SET value = excluded.value",
                [str(SCHEMA_VERSION)],
            )

    def _check_version(self) -> None:
        has_meta = self.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'").fetchone()[0]
        if not has_meta:
            return
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row and int(row[0]) > SCHEMA_VERSION:
            raise InputError(
                self.path, f"store has schema version {row[0]}, newer than this devquarry ({SCHEMA_VERSION}); upgrade devquarry"
            )

    @property
    def schema_version(self) -> int:
        return int(self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    @contextmanager
    def transaction(self):
        """All or nothing: on any error the store is left exactly as it was."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def next_run_id(self) -> int:
        return self.con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM run").fetchone()[0]

    def record_run(self, run_id: int, command: str, params: dict, counts: dict, started_at: datetime) -> None:
        self.con.execute(
            "INSERT INTO run VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                command,
                json.dumps(params, default=str),
                json.dumps(library_versions()),
                json.dumps(counts, default=str),
                started_at,
                datetime.now(UTC),
            ],
        )

    def add_run_counts(self, run_id: int, counts: dict) -> None:
        """Add a batch's counts to a run recorded earlier (a crawl commits batch by batch)."""
        row = self.con.execute("SELECT counts FROM run WHERE run_id = ?", [run_id]).fetchone()
        total = json.loads(row[0]) if row and row[0] else {}
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v if isinstance(v, (int, float)) else v
        self.con.execute(
            "UPDATE run SET counts = ?, ended_at = ? WHERE run_id = ?",
            [json.dumps(total, default=str), datetime.now(UTC), run_id],
        )

    def crawl_state(self, crawler: str, target: str) -> dict:
        row = self.con.execute("SELECT state FROM crawl_state WHERE crawler = ? AND target = ?", [crawler, target]).fetchone()
        return json.loads(row[0]) if row else {}

    def save_crawl_state(self, crawler: str, target: str, state: dict) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO crawl_state VALUES (?, ?, ?, ?)",
            [crawler, target, json.dumps(state, default=str), datetime.now(UTC)],
        )

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with warnings.catch_warnings():
            # DuckDB's DataFrame conversion uses a pandas keyword that pandas 3.1 deprecates.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*inplace keyword.*")
            df = self.con.execute(sql, params or []).df()
        # DuckDB hands LIST columns back as numpy arrays; plain lists behave in templates and tests.
        for col in df.columns:
            if (
                df[col].dtype == object
                and len(df)
                and isinstance(df[col].dropna().iloc[0] if df[col].notna().any() else None, np.ndarray)
            ):
                df[col] = df[col].map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
        return df

    def threads(self, source: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Threads with derived fields filled in, as a DataFrame (without the raw record and the
        HTML, which no step reads and which doubled the memory of a million threads); ``columns``:
        only these (a step that reads the text alone holds a third of the memory), in the same order."""
        cols = "* EXCLUDE (raw, body_html)" if columns is None else ", ".join(_quoted(c) for c in columns)
        if source:
            df = self.query(f"SELECT {cols} FROM threads WHERE source = ? ORDER BY created_at, source_id", [source])
        else:
            df = self.query(
                f"SELECT {cols} FROM threads ORDER BY source, created_at, source_id"
            )  # ties too: topics depend on order
        if "tags" in df:
            df["tags"] = df["tags"].map(lambda v: [] if v is None else list(v))
        return df

    def replies(self, source: str | None = None) -> pd.DataFrame:
        where = "WHERE source = ?" if source else ""
        return self.query(
            f"SELECT * EXCLUDE (raw) FROM replies {where} ORDER BY source, thread_id, created_at", [source] if source else []
        )

    def links(self) -> pd.DataFrame:
        return self.query("SELECT * FROM link ORDER BY source, from_id")

    def runs(self) -> pd.DataFrame:
        return self.query("SELECT * FROM run ORDER BY run_id")

    def counts(self) -> dict[str, int]:
        return {t: self.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("thread", "reply", "link", "run")}


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'
