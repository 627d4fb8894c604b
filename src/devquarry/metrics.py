"""Popularity and difficulty per group (source, forum category, codebook code, topic, period).

Definitions (DESIGN.md section 3), per group:
- threads, share of all threads in the selection; views (median, mean); score (mean);
- pct_no_reply: threads with no reply; pct_under_3_replies: fewer than 3 replies (both over the
  threads whose reply count is known: n_reply_count);
- pct_unresolved: threads without an accepted answer (or not closed as completed, for issues);
- hours_to_first_reply (median, mean) over threads whose first reply time is known and not
  before the thread; hours_to_accepted (median) over threads with an accepted-answer time;
- days_to_close (median) over closed threads with a close time (GitHub issues).
Every figure comes with the count it is computed over.
"""

from __future__ import annotations

import pandas as pd

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
  count(*) FILTER (WHERE first_reply_at >= created_at) AS n_first_reply,
  median(date_diff('second', created_at, first_reply_at) / 3600.0) FILTER (WHERE first_reply_at >= created_at) AS hours_to_first_reply_median,
  avg(date_diff('second', created_at, first_reply_at) / 3600.0) FILTER (WHERE first_reply_at >= created_at) AS hours_to_first_reply_mean,
  count(*) FILTER (WHERE accepted_at >= created_at) AS n_accepted,
  median(date_diff('second', created_at, accepted_at) / 3600.0) FILTER (WHERE accepted_at >= created_at) AS hours_to_accepted_median,
  count(*) FILTER (WHERE closed_at >= created_at) AS n_closed,
  median(date_diff('second', created_at, closed_at) / 86400.0) FILTER (WHERE closed_at >= created_at) AS days_to_close_median
FROM sel
GROUP BY ALL
ORDER BY threads DESC, "group"
"""


def metrics(
    store: Store,
    by: str = "source",
    *,
    codebook: str | None = None,
    period: str = "quarter",
    sources: list[str] | None = None,
    topic_run: int | None = None,
) -> pd.DataFrame:
    """Popularity and difficulty figures, one row per group (plus an ``(all)`` row first)."""
    if by not in GROUPINGS:
        raise InputError(None, f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}", field="by")
    if period not in PERIODS:
        raise InputError(None, f"unknown period {period!r}; use one of {', '.join(PERIODS)}", field="period")
    where, params = "", []
    if sources:
        where = f"WHERE t.source IN ({', '.join('?' for _ in sources)})"
        params = list(sources)
    if by == "code":
        if not codebook:
            raise InputError(None, "--by code needs --codebook", field="codebook")
        run = store.con.execute("SELECT max(run_id) FROM classification WHERE codebook = ?", [codebook]).fetchone()[0]
        if run is not None:
            join, key = f"JOIN classification c ON c.source = t.source AND c.source_id = t.source_id AND c.run_id = {int(run)}", "c.code"
        else:  # no machine codes yet: the hand labels' primary code
            join, key = ("JOIN label c ON c.source = t.source AND c.source_id = t.source_id AND c.rank = 0 AND c.status = 'coded' "
                         "AND c.codebook = ?"), "c.code"
            params = [codebook] + params
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
    sel = f"SELECT t.*, {key} AS grp FROM threads t {join} {where}"
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE sel AS {sel}", params)
    try:
        groups = store.query(_AGG.format(key="grp"))
        overall = store.query(_AGG.format(key="'(all)'").replace("GROUP BY ALL", ""))
    finally:
        store.con.execute("DROP TABLE IF EXISTS sel")
    if by == "period":
        groups = groups.sort_values("group", ignore_index=True)
    out = pd.concat([overall, groups], ignore_index=True)
    out.attrs["by"] = by
    return out
