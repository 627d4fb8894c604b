"""Per-source summary of the store: what is there and how much of it is resolved."""

from __future__ import annotations

import pandas as pd

from devquarry.store import Store

# replies_stated sums the reply counts the source gave (GitHub's comments_count, Stack Exchange's
# AnswerCount, Discourse's posts_count - 1, a table's reply_count column); replies_stored counts the
# replies held (answers, posts after the first, issue comments; not comments on Stack Exchange
# posts). An export with truncated comment lists, or a topic list without posts, states more than
# it stores.
INFO_SQL = """
SELECT t.source,
       count(*) AS threads,
       sum(b.reply_count)::BIGINT AS replies_stated,
       coalesce(max(r.n), 0) AS replies_stored,
       min(t.created_at) AS first_date,
       max(t.created_at) AS last_date,
       avg(CASE WHEN t.is_resolved THEN 1.0 WHEN NOT t.is_resolved THEN 0.0 END) AS share_resolved,
       median(date_diff('second', t.created_at, t.first_reply_at) / 3600.0)
           FILTER (WHERE t.first_reply_at >= t.created_at) AS median_hours_to_first_reply,
       count(*) FILTER (WHERE t.first_reply_at IS NOT NULL) AS threads_with_reply_time
FROM threads t
JOIN thread b ON b.source = t.source AND b.source_id = t.source_id
LEFT JOIN (SELECT source, count(*) AS n FROM reply WHERE kind = 'answer' GROUP BY source) r ON r.source = t.source
GROUP BY t.source
ORDER BY threads DESC, t.source
"""


def info(store: Store) -> pd.DataFrame:
    """One row per source: threads, replies the source states and replies held, first and last
    date, share resolved (over threads whose resolution is known; empty where none is), median
    hours to first reply (over threads whose first reply time is known)."""
    df = store.query(INFO_SQL)
    # Whole numbers, left empty where no thread of the source states a count (plain ints and None:
    # the CLI's table and JSON print them as numbers, where a float column would print 1330.0).
    stated = df["replies_stated"]
    df["replies_stated"] = stated.astype("int64") if stated.notna().all() else [None if pd.isna(v) else int(v) for v in stated]
    return df
