"""Topic runs in the store: topics, themes and per-thread assignments, keyed by run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd
import pyarrow as pa

from devquarry.errors import InputError
from devquarry.store import Store

PERIODS = {"month": "month", "quarter": "quarter", "year": "year", "week": "week"}


def save_topic_run(
    store: Store,
    params: dict,
    scores: dict,
    topics: pd.DataFrame,
    assignments: pd.DataFrame,
    themes: pd.DataFrame,
    started: datetime,
    save_model: Callable[[int], str] | None = None,
) -> int:
    """Save a run; ``save_model(run_id)`` (if given) writes the run's model files and returns
    their path, which the run's params record as ``bertopic_model``."""
    with store.transaction() as con:
        run_id = store.next_run_id()
        if save_model is not None:
            params = {**params, "bertopic_model": save_model(run_id)}
        t = pa.table(  # noqa: F841 (read by DuckDB)
            {
                "run_id": [run_id] * len(topics),
                "topic_id": topics.topic_id.astype(int).tolist(),
                "label": topics.label.tolist(),
                "keywords": topics.keywords.tolist(),
                "keybert": topics.keybert.tolist(),
                "size": topics["size"].astype(int).tolist(),
                "theme_id": [None if pd.isna(x) else int(x) for x in topics.theme_id],
            }
        )
        con.execute("INSERT INTO topic SELECT * FROM t")
        a = pa.table(  # noqa: F841 (read by DuckDB)
            {
                "run_id": [run_id] * len(assignments),
                "source": assignments.source.tolist(),
                "source_id": assignments.source_id.tolist(),
                "topic_id": assignments.topic_id.astype(int).tolist(),
            }
        )
        con.execute("INSERT INTO topic_assignment SELECT * FROM a")
        if len(themes):
            th = pa.table(  # noqa: F841 (read by DuckDB)
                {
                    "run_id": [run_id] * len(themes),
                    "theme_id": themes.theme_id.astype(int).tolist(),
                    "label": themes.label.tolist(),
                    "keywords": themes.keywords.tolist(),
                    "size": themes["size"].astype(int).tolist(),
                }
            )
            con.execute("INSERT INTO theme SELECT * FROM th")
        store.record_run(run_id, "topics", params, scores, started)
    return run_id


def latest_topic_run(store: Store) -> int:
    row = store.con.execute("SELECT max(run_id) FROM run WHERE command = 'topics'").fetchone()
    if not row or row[0] is None:
        raise InputError(store.path, "no topic run in this store; run `devquarry topics` first")
    return int(row[0])


def topic_runs(store: Store) -> pd.DataFrame:
    """Every topic run: parameters and scores."""
    return store.query("""SELECT run_id, started_at, params, counts AS scores,
        (SELECT count(*) FROM topic t WHERE t.run_id = r.run_id) AS topics
        FROM run r WHERE command = 'topics' ORDER BY run_id""")


def topic_table(store: Store, run_id: int | None = None, examples: int = 3) -> pd.DataFrame:
    """Topics of a run with size, share, keywords, theme and example threads (title and url)."""
    run_id = run_id or latest_topic_run(store)
    df = store.query(
        """
        WITH ex AS (
          SELECT a.topic_id, list(struct_pack(title := t.title, url := t.url) ORDER BY t.views DESC NULLS LAST, t.source_id)[1:?] AS examples
          FROM topic_assignment a JOIN threads t USING (source, source_id)
          WHERE a.run_id = ? GROUP BY a.topic_id)
        SELECT p.topic_id, p.label, p.size, p.size / sum(p.size) OVER () AS share, p.keywords, p.keybert,
               p.theme_id, th.label AS theme, ex.examples
        FROM topic p LEFT JOIN ex USING (topic_id)
        LEFT JOIN theme th ON th.run_id = p.run_id AND th.theme_id = p.theme_id
        WHERE p.run_id = ? ORDER BY p.size DESC, p.topic_id""",
        [examples, run_id, run_id],
    )
    return df


def theme_table(store: Store, run_id: int | None = None) -> pd.DataFrame:
    run_id = run_id or latest_topic_run(store)
    return store.query(
        """SELECT th.theme_id, th.label, th.size, th.keywords,
        (SELECT list(p.label ORDER BY p.size DESC) FROM topic p WHERE p.run_id = th.run_id AND p.theme_id = th.theme_id) AS topics
        FROM theme th WHERE th.run_id = ? ORDER BY th.size DESC""",
        [run_id],
    )


def topics_over_time(store: Store, run_id: int | None = None, period: str = "month") -> pd.DataFrame:
    """Threads per topic per period (month, quarter, year, week) by creation time, with each
    topic's share of that period's threads."""
    if period not in PERIODS:
        raise InputError(None, f"unknown period {period!r}; use one of {', '.join(PERIODS)}", field="period")
    run_id = run_id or latest_topic_run(store)
    return store.query(
        f"""
        WITH c AS (
          SELECT date_trunc('{PERIODS[period]}', t.created_at) AS period, a.topic_id, count(*) AS threads
          FROM topic_assignment a JOIN threads t USING (source, source_id)
          WHERE a.run_id = ? AND t.created_at IS NOT NULL GROUP BY ALL)
        SELECT c.period, c.topic_id, p.label, c.threads, c.threads / sum(c.threads) OVER (PARTITION BY c.period) AS share
        FROM c LEFT JOIN topic p ON p.run_id = ? AND p.topic_id = c.topic_id
        ORDER BY c.period, c.topic_id""",
        [run_id, run_id],
    )
