"""Per-source summary of the store: what is there and how much of it is resolved."""

from __future__ import annotations

import pandas as pd

from devquarry.store import Store

INFO_SQL = """
SELECT t.source,
       count(*) AS threads,
       coalesce(max(r.n), 0) AS replies,
       min(t.created_at) AS first_date,
       max(t.created_at) AS last_date,
       avg(CASE WHEN t.is_resolved THEN 1.0 ELSE 0.0 END) AS share_resolved,
       median(date_diff('second', t.created_at, t.first_reply_at) / 3600.0)
           FILTER (WHERE t.first_reply_at >= t.created_at) AS median_hours_to_first_reply,
       count(*) FILTER (WHERE t.first_reply_at IS NOT NULL) AS threads_with_reply_time
FROM threads t
LEFT JOIN (SELECT source, count(*) AS n FROM reply GROUP BY source) r USING (source)
GROUP BY t.source
ORDER BY threads DESC, t.source
"""


def info(store: Store) -> pd.DataFrame:
    """One row per source: threads, replies held, first and last date, share resolved,
    median hours to first reply (over threads whose first reply time is known)."""
    return store.query(INFO_SQL)
