"""Replies written by bots: kept in the store, left out of reply counts and times by default.

Each reply's ``is_bot`` flag is set at ingest by the store's rule (``store.bot_reply_sql``): a
GitHub login ending in ``[bot]`` or of user type Bot, a Discourse system user (id <= 0:
``system``, ``discobot``), the Stack Exchange Community user (id -1). The ``threads`` view leaves
those replies out of ``reply_count`` and ``first_reply_at`` unless the store's ``count_bots``
setting (a row of ``meta``) is on; it is a property of the store, so every command that reads
the store agrees on it.
"""

from __future__ import annotations

import pandas as pd

from devquarry.store import Store

SETTING = "count_bots"


def count_bots(store: Store) -> bool:
    """Whether the store counts bots' replies as replies (off unless set)."""
    row = store.con.execute("SELECT value FROM meta WHERE key = ?", [SETTING]).fetchone()
    return bool(row) and str(row[0]).strip().lower() in ("1", "true", "yes", "on")


def set_count_bots(store: Store, on: bool) -> None:
    """Count bots' replies (``on``) or leave them out of reply counts and times (the default)."""
    with store.transaction() as con:
        con.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value", [SETTING, "1" if on else "0"]
        )


def bot_replies(store: Store) -> pd.DataFrame:
    """Per source and bot: the replies held, and on how many threads the bot replied first."""
    return store.query("""
        WITH firsts AS (
          SELECT source, thread_id, arg_min(author, created_at) AS author
          FROM reply WHERE kind = 'answer' AND created_at IS NOT NULL GROUP BY ALL)
        SELECT r.source, r.author AS bot, count(*) AS replies,
               count(DISTINCT r.thread_id) AS threads,
               (SELECT count(*) FROM firsts f WHERE f.source = r.source AND f.author = r.author) AS first_replies
        FROM reply r WHERE r.is_bot
        GROUP BY ALL ORDER BY r.source, replies DESC, bot""")
