"""The workbench's reads: thread lists with facets, one thread whole, the facets' choices.
Every function takes the store first and returns rows; the routes only render them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from devquarry.store import Store

PAGE = 50
FILTER_KEYS = ("source", "q", "hand", "machine", "topic", "theme", "resolved", "since", "until", "min_replies", "rater")


@dataclass
class Filter:
    """A thread filter as the list page and the coding queue read it from a query string."""

    codebook: str | None = None
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params, codebook: str | None) -> Filter:
        return cls(codebook, {k: params.get(k).strip() for k in FILTER_KEYS if params.get(k) and params.get(k).strip()})

    def sql(self, store: Store, alias: str = "t") -> tuple[str, list]:
        """A WHERE clause (without the keyword, ``true`` when empty) and its parameters."""
        t, v = alias, self.values
        where, params = [], []
        if "source" in v:
            where.append(f"{t}.source = ?")
            params.append(v["source"])
        if "q" in v:
            where.append(f"{t}.title ILIKE ?")
            params.append("%" + v["q"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            where[-1] += " ESCAPE '\\'"
        if "hand" in v and self.codebook:
            who = "AND l.rater = ?" if "rater" in v else ""
            if v["hand"] == "(none)":
                where.append(
                    f"NOT EXISTS (SELECT 1 FROM label l WHERE l.codebook = ? AND l.source = {t}.source AND l.source_id = {t}.source_id {who})"
                )
                params += [self.codebook] + ([v["rater"]] if who else [])
            else:
                what = "l.status = 'irrelevant'" if v["hand"] == "irrelevant" else "l.code = ?"
                where.append(
                    f"EXISTS (SELECT 1 FROM label l WHERE l.codebook = ? AND l.source = {t}.source AND l.source_id = {t}.source_id "
                    f"AND {what} {who})"
                )
                params += [self.codebook] + ([] if v["hand"] == "irrelevant" else [v["hand"]]) + ([v["rater"]] if who else [])
        if "rater" in v and "hand" not in v and self.codebook:  # every thread this rater labelled
            where.append(
                f"EXISTS (SELECT 1 FROM label l WHERE l.codebook = ? AND l.rater = ? AND l.source = {t}.source AND l.source_id = {t}.source_id)"
            )
            params += [self.codebook, v["rater"]]
        if "machine" in v and self.codebook:
            run = latest_run(store, self.codebook)
            where.append(
                f"EXISTS (SELECT 1 FROM classification c WHERE c.run_id = ? AND c.source = {t}.source "
                f"AND c.source_id = {t}.source_id AND coalesce(c.rank, 0) = 0 AND c.code = ?)"
            )
            params += [run or -1, v["machine"]]
        if "topic" in v or "theme" in v:
            run = topic_run(store)
            col, key = ("topic_id", "topic") if "topic" in v else ("theme_id", "theme")
            where.append(
                f"EXISTS (SELECT 1 FROM topic_assignment a JOIN topic p USING (run_id, topic_id) WHERE a.run_id = ? "
                f"AND a.source = {t}.source AND a.source_id = {t}.source_id AND p.{col} = TRY_CAST(? AS INTEGER))"
            )
            params += [run or -1, v[key]]
        if v.get("resolved") in ("yes", "no"):
            where.append(f"coalesce({t}.is_resolved, false) = ?")
            params.append(v["resolved"] == "yes")
        if "since" in v:
            where.append(f"{t}.created_at >= TRY_CAST(? AS TIMESTAMPTZ)")
            params.append(v["since"])
        if "until" in v:
            where.append(f"{t}.created_at < TRY_CAST(? AS TIMESTAMPTZ) + INTERVAL 1 DAY")
            params.append(v["until"])
        if "min_replies" in v:
            where.append(f"coalesce({t}.reply_count, 0) >= TRY_CAST(? AS INTEGER)")
            params.append(v["min_replies"])
        return (" AND ".join(where) or "true"), params


def latest_run(store: Store, codebook: str | None) -> int | None:
    if not codebook:
        return None
    return store.con.execute("SELECT max(run_id) FROM classification WHERE codebook = ?", [codebook]).fetchone()[0]


def topic_run(store: Store) -> int | None:
    return store.con.execute("SELECT max(run_id) FROM topic").fetchone()[0]


SUMMARY = "serve_threads"


def summarize(store: Store) -> str:
    """A temporary table of what lists and queues read from the ``threads`` view (reply count,
    resolved), made once per state of the threads: the view counts every reply on each read, a
    fifth of a second on a store of 100,000 threads. Returns its name."""
    store.con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {SUMMARY} AS
        SELECT source, source_id, title, url, created_at, views, reply_count, is_resolved FROM threads"""
    )
    return SUMMARY


def thread_page(
    store: Store, flt: Filter, offset: int = 0, limit: int = PAGE, table: str = "threads"
) -> tuple[pd.DataFrame, int]:
    """One page of matching threads, newest first, and the number matching. ``table``: the
    ``threads`` view or its summary (``summarize``)."""
    where, params = flt.sql(store)
    total = store.con.execute(f"SELECT count(*) FROM {table} t WHERE {where}", params).fetchone()[0]
    run = latest_run(store, flt.codebook)
    rows = store.query(
        f"""WITH k AS (SELECT t.source, t.source_id, t.title, t.url, t.created_at, t.reply_count, t.is_resolved, t.views
                       FROM {table} t WHERE {where}
                       ORDER BY t.created_at DESC NULLS LAST, t.source, t.source_id LIMIT ? OFFSET ?),
        h AS (SELECT l.source, l.source_id, string_agg(DISTINCT CASE WHEN l.status = 'irrelevant' THEN 'irrelevant' ELSE l.code END, ', ') AS hand
              FROM label l JOIN k USING (source, source_id) WHERE l.codebook = ? GROUP BY ALL),
        m AS (SELECT c.source, c.source_id, first(c.code ORDER BY coalesce(c.rank, 0)) AS machine
              FROM classification c JOIN k USING (source, source_id) WHERE c.run_id = ? GROUP BY ALL)
        SELECT k.*, h.hand, m.machine FROM k LEFT JOIN h USING (source, source_id) LEFT JOIN m USING (source, source_id)
        ORDER BY k.created_at DESC NULLS LAST, k.source, k.source_id""",
        [*params, int(limit), int(offset), flt.codebook or "", run or -1],
    )
    return rows, int(total)


def facets(store: Store, codebook: str | None) -> dict:
    """The choices of each facet: sources, codes of the codebook, topics and themes of the latest run."""
    out = {"sources": [r[0] for r in store.con.execute("SELECT DISTINCT source FROM thread ORDER BY 1").fetchall()]}
    out["codes"] = []
    if codebook:
        from devquarry.codebooks import load_codebook

        try:
            out["codes"] = [(c.id, c.name) for c in load_codebook(codebook, store=store).codes]
        except Exception:  # a codebook the store names but cannot load: its codes come from the labels
            out["codes"] = [
                (r[0], r[0])
                for r in store.con.execute(
                    "SELECT DISTINCT code FROM label WHERE codebook = ? AND code <> '' ORDER BY 1", [codebook]
                ).fetchall()
            ]
    run = topic_run(store)
    out["topics"] = store.con.execute(
        "SELECT topic_id, label FROM topic WHERE run_id = ? ORDER BY size DESC", [run or -1]
    ).fetchall()
    out["themes"] = store.con.execute(
        "SELECT theme_id, label FROM theme WHERE run_id = ? ORDER BY size DESC", [run or -1]
    ).fetchall()
    out["raters"] = [
        r[0]
        for r in store.con.execute("SELECT DISTINCT rater FROM label WHERE codebook = ? ORDER BY 1", [codebook or ""]).fetchall()
    ]
    return out


def lit(value) -> str:
    """A SQL string literal. Point look-ups by key are written with literals, not parameters:
    DuckDB then reads the row through the primary key's index (a third of the time on 100,000 threads)."""
    return "'" + str(value).replace("\x00", "").replace("'", "''") + "'"


THREAD_FIELDS = (
    "source, source_id, url, title, body_text, tags, category, author, created_at, updated_at, views, score, "
    "accepted_reply_id, closed_at, state"
)


def thread_detail(
    store: Store, source: str, source_id: str, summary: str = "threads", runs: dict | None = None, full: bool = True
) -> dict | None:
    """One thread: its row, replies (accepted answer flagged as the ``replies`` view does), hand labels
    with raters, the latest machine codes of each codebook (``runs``: codebook -> latest run), topic.
    Without ``full``, the row, replies and machine codes only (what a coder sees)."""
    key = f"source = {lit(source)} AND source_id = {lit(source_id)}"
    row = store.query(f"SELECT {THREAD_FIELDS} FROM thread WHERE {key}")
    if row.empty:
        return None
    thread = row.iloc[0].to_dict()
    derived = store.query(f"SELECT reply_count, is_resolved FROM {summary} WHERE {key}")
    thread.update(derived.iloc[0].to_dict() if len(derived) else {"reply_count": None, "is_resolved": None})
    accepted = thread.get("accepted_reply_id")
    replies = store.query(
        f"""SELECT reply_id, kind, author, created_at, body_text, score,
                   coalesce(is_accepted, false) OR reply_id = {lit(accepted) if isinstance(accepted, str) else "NULL"} AS is_accepted, is_bot
            FROM reply WHERE source = {lit(source)} AND thread_id = {lit(source_id)}
            ORDER BY is_accepted DESC, created_at NULLS LAST, reply_id"""
    )
    out = {"thread": thread, "replies": replies.to_dict("records"), "labels": [], "topic": None, "notes": []}
    if runs is None:
        runs = latest_runs(store)
    out["machine"] = (
        store.query(
            f"""SELECT codebook, run_id, code, score, method, rank FROM classification
               WHERE {key} AND run_id IN ({", ".join(str(int(r)) for r in runs.values())})
               ORDER BY codebook, coalesce(rank, 0)"""
        ).to_dict("records")
        if runs
        else []
    )
    if not full:
        return out
    labels = store.query(
        f"""SELECT codebook, rater, string_agg(CASE WHEN status = 'irrelevant' THEN 'not about the subject' ELSE code END, ', '
                  ORDER BY rank) AS codes, bool_or(uncertain) AS unsure
           FROM label WHERE {key} GROUP BY ALL ORDER BY codebook, rater"""
    )
    topic = store.query(
        f"""SELECT p.topic_id, p.label, th.theme_id, th.label AS theme FROM topic_assignment a
           JOIN topic p USING (run_id, topic_id) LEFT JOIN theme th ON th.run_id = p.run_id AND th.theme_id = p.theme_id
           WHERE a.run_id = {int(topic_run(store) or -1)} AND a.source = {lit(source)} AND a.source_id = {lit(source_id)}"""
    )
    out.update(
        labels=labels.to_dict("records"),
        topic=topic.iloc[0].to_dict() if len(topic) else None,
        notes=notes_of(store, source, source_id),
    )
    return out


def latest_runs(store: Store) -> dict[str, int]:
    """Each codebook's latest classify run."""
    return dict(store.con.execute("SELECT codebook, max(run_id) FROM classification GROUP BY 1").fetchall())


def notes_of(store: Store, source: str, source_id: str) -> list[dict]:
    has = store.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'label_note'").fetchone()[0]
    if not has:
        return []
    return store.query(
        "SELECT codebook, rater, note FROM label_note WHERE source = ? AND source_id = ? ORDER BY codebook, rater",
        [source, source_id],
    ).to_dict("records")


def ask_index(store: Store):
    """The ask index (LSA + BM25) when the store has one, else None: building it takes seconds,
    `devquarry ask` or the report does that."""
    from devquarry.ask.answer import index_folder, open_index

    if not index_folder(store, "lsa").exists():
        return None
    try:
        return open_index(store, "lsa")[0]
    except Exception:  # an index this process may not update (a read-only store): no neighbours shown
        return None


def similar(store: Store, thread: dict, index, k: int = 3, summary: str = "threads") -> list[dict]:
    """The closest resolved threads by BM25, as the report's (``similar_resolved``) but with an index
    opened once for the server: opening it costs a third of a second."""
    from devquarry.text import thread_text

    if index is None:
        return []
    key = f"{thread['source']}|{thread['source_id']}"
    hits = index.search(thread_text(thread.get("title"), thread.get("body_text")), k=k, exclude={key}, mode="bm25")
    if not len(hits):
        return []
    meta = store.query(
        f"SELECT source || '|' || source_id AS key, title, url FROM {summary} WHERE is_resolved AND ("
        + " OR ".join(f"(source = {lit(h.split('|', 1)[0])} AND source_id = {lit(h.split('|', 1)[1])})" for h in hits.key)
        + ")"
    ).set_index("key")
    return [
        {"title": meta.title.get(h), "url": meta.url.get(h), "source": h.split("|", 1)[0], "source_id": h.split("|", 1)[1]}
        for h in hits.key
        if h in meta.index
    ]
