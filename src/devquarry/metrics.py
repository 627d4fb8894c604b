"""Popularity and difficulty per group (source, forum category, codebook code, topic, period).

Definitions (DESIGN.md section 3), per group:
- threads, share of all threads in the selection; views (median, mean); score (mean);
- pct_no_reply: threads with no reply; pct_under_3_replies: fewer than 3 replies (both over the
  threads whose reply count is known: n_reply_count);
- pct_unresolved: threads without an accepted answer (or not closed as completed, for issues);
- hours_to_first_reply (median, mean) over threads whose first reply time is known and not
  before the thread; hours_to_accepted (median) over threads with an accepted-answer time;
- days_to_close (median) over closed threads with a close time (GitHub issues).
Every figure comes with the count it is computed over, and the shares and medians with a 95%
interval (``*_lo``/``*_hi``): bootstrap below ``stats.SMALL_GROUP`` threads, closed forms above.
Copies of one question (same source, title and creation time: Stack Overflow exports repeat a
question under its duplicates' ids) count once unless ``dedupe=False``.
"""

from __future__ import annotations

import pandas as pd

from devquarry import stats
from devquarry.errors import InputError
from devquarry.store import Store

GROUPINGS = ("source", "category", "code", "topic", "period")
PERIODS = ("month", "quarter", "year")

_AGG = """
SELECT {key} AS "group",
  count(*) AS threads,
  count(*) / sum(count(*)) OVER () AS share,
  median(views) AS views_median, avg(views) AS views_mean, avg(score) AS score_mean,
  count(reply_count) AS n_reply_count,
  avg(CASE WHEN reply_count = 0 THEN 1.0 WHEN reply_count > 0 THEN 0.0 END) AS pct_no_reply,
  avg(CASE WHEN reply_count < 3 THEN 1.0 WHEN reply_count >= 3 THEN 0.0 END) AS pct_under_3_replies,
  avg(CASE WHEN is_resolved THEN 0.0 ELSE 1.0 END) AS pct_unresolved,
  count(hours_first) AS n_first_reply,
  median(hours_first) AS hours_to_first_reply_median,
  avg(hours_first) AS hours_to_first_reply_mean,
  count(hours_accepted) AS n_accepted,
  median(hours_accepted) AS hours_to_accepted_median,
  count(*) FILTER (WHERE closed_at >= created_at) AS n_closed,
  median(date_diff('second', created_at, closed_at) / 86400.0) FILTER (WHERE closed_at >= created_at) AS days_to_close_median
FROM sel
GROUP BY ALL
ORDER BY threads DESC, "group"
"""

_FLAGS = """
SELECT {key} AS "group",
  CASE WHEN reply_count = 0 THEN 1.0 WHEN reply_count > 0 THEN 0.0 END AS no_reply,
  CASE WHEN reply_count < 3 THEN 1.0 WHEN reply_count >= 3 THEN 0.0 END AS under_3,
  CASE WHEN is_resolved THEN 0.0 ELSE 1.0 END AS unresolved,
  hours_first, hours_accepted
FROM sel
"""

# Each interval: (column in the table, flag or value column, kind).
_INTERVALS = [
    ("pct_no_reply", "no_reply", "share"),
    ("pct_under_3_replies", "under_3", "share"),
    ("pct_unresolved", "unresolved", "share"),
    ("hours_to_first_reply_median", "hours_first", "median"),
    ("hours_to_accepted_median", "hours_accepted", "median"),
]


def _check(by: str, period: str) -> None:
    if by not in GROUPINGS:
        raise InputError(None, f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}", field="by")
    if period not in PERIODS:
        raise InputError(None, f"unknown period {period!r}; use one of {', '.join(PERIODS)}", field="period")


def latest_classify_run(store: Store, codebook: str) -> int | None:
    return store.con.execute("SELECT max(run_id) FROM classification WHERE codebook = ?", [codebook]).fetchone()[0]


def select_groups(store: Store, by: str = "source", *, codebook: str | None = None, period: str = "quarter",
                  sources: list[str] | None = None, topic_run: int | None = None, dedupe: bool = True) -> int:
    """Fill the temporary table ``sel``: one row per thread and group (a multi-label code puts a
    thread in several), with ``grp``, the ``threads`` view's columns and the hours to the first
    reply and to the accepted answer. Returns the number of duplicate copies left out."""
    _check(by, period)
    where, params = [], []
    if sources:
        where.append(f"t.source IN ({', '.join('?' for _ in sources)})")
        params = list(sources)
    if by == "code":
        if not codebook:
            raise InputError(None, "--by code needs --codebook", field="codebook")
        run = latest_classify_run(store, codebook)
        if run is not None:
            join = f"JOIN classification c ON c.source = t.source AND c.source_id = t.source_id AND c.run_id = {int(run)}"
        else:  # no machine codes yet: the hand labels' primary code
            join = ("JOIN label c ON c.source = t.source AND c.source_id = t.source_id AND c.rank = 0 AND c.status = 'coded' "
                    "AND c.codebook = ?")
            params = [codebook] + params
        key = "c.code"
    elif by == "topic":
        from devquarry.topics import latest_topic_run

        run = topic_run or latest_topic_run(store)
        join = (f"JOIN topic_assignment a ON a.source = t.source AND a.source_id = t.source_id AND a.run_id = {int(run)} "
                f"LEFT JOIN topic p ON p.run_id = a.run_id AND p.topic_id = a.topic_id")
        key = "a.topic_id || ': ' || coalesce(p.label, '')"
    elif by == "period":
        join, key = "", f"strftime(date_trunc('{period}', t.created_at), '%Y-%m')"
    elif by == "category":
        join, key = "", "coalesce(t.category, '(none)')"
    else:
        join, key = "", "t.source"
    # Copies share source, title and creation time; keep the most viewed one.
    copies = ("QUALIFY t.title IS NULL OR t.created_at IS NULL OR row_number() OVER "
              "(PARTITION BY t.source, lower(trim(t.title)), t.created_at ORDER BY t.views DESC NULLS LAST, t.source_id) = 1")
    base = f"SELECT * FROM threads t {copies}" if dedupe else "SELECT * FROM threads"
    sel = f"""WITH base AS ({base})
      SELECT t.*, {key} AS grp,
        CASE WHEN t.first_reply_at >= t.created_at THEN date_diff('second', t.created_at, t.first_reply_at) / 3600.0 END AS hours_first,
        CASE WHEN t.accepted_at >= t.created_at THEN date_diff('second', t.created_at, t.accepted_at) / 3600.0 END AS hours_accepted
      FROM base t {join} {'WHERE ' + ' AND '.join(where) if where else ''}"""
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE sel AS {sel}", params)
    if not dedupe:
        return 0
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    total = store.con.execute(f"SELECT count(*) FROM threads t {cond}", list(sources or [])).fetchone()[0]
    kept = store.con.execute(f"SELECT count(*) FROM ({base}) t {cond}", list(sources or [])).fetchone()[0]
    return total - kept


def _intervals(flags: pd.DataFrame, level: float) -> pd.DataFrame:
    rows = []
    for group, g in flags.groupby("group", sort=False):
        row = {"group": group}
        for col, src, kind in _INTERVALS:
            fn = stats.proportion_ci if kind == "share" else stats.median_interval
            lo, hi, method = fn(g[src].to_numpy(dtype=float), level)
            row[f"{col}_lo"], row[f"{col}_hi"] = lo, hi
            if kind == "share" and method:
                row["ci_method"] = method
        rows.append(row)
    return pd.DataFrame(rows)


def metrics(
    store: Store,
    by: str = "source",
    *,
    codebook: str | None = None,
    period: str = "quarter",
    sources: list[str] | None = None,
    topic_run: int | None = None,
    dedupe: bool = True,
    level: float = 0.95,
) -> pd.DataFrame:
    """Popularity and difficulty figures, one row per group (plus an ``(all)`` row first)."""
    dropped = select_groups(store, by, codebook=codebook, period=period, sources=sources, topic_run=topic_run, dedupe=dedupe)
    try:
        groups = store.query(_AGG.format(key="grp"))
        overall = store.query(_AGG.format(key="'(all)'").replace("GROUP BY ALL", ""))
        flags = pd.concat([store.query(_FLAGS.format(key="'(all)'")), store.query(_FLAGS.format(key="grp"))], ignore_index=True)
    finally:
        store.con.execute("DROP TABLE IF EXISTS sel")
    if by == "period":
        groups = groups.sort_values("group", ignore_index=True)
    out = pd.concat([overall, groups], ignore_index=True)
    if by == "code" and len(out) > 1:  # a multi-label thread counts once in the whole
        out.loc[0, "share"] = 1.0
    if not flags.empty:
        out = out.merge(_intervals(flags, level), on="group", how="left")
    out.attrs.update(by=by, duplicates_dropped=dropped, level=level)
    return out
