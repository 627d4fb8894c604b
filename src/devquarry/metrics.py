"""Popularity and difficulty per group (source, forum category, codebook code, topic, period).

Definitions (DESIGN.md section 3), per group:
- threads, share of all threads in the selection; views (median, mean); score (mean);
- pct_no_reply: threads with no reply; pct_under_3_replies: fewer than 3 replies (both over the
  threads whose reply count is known: n_reply_count);
- pct_unresolved: threads without an accepted answer (or not closed as completed, for issues),
  over the threads whose resolution is known: n_resolved_known (a table with no resolved column
  leaves it unknown);
- hours_to_first_reply (median, mean) over threads whose first reply time is known and not
  before the thread; hours_to_accepted (median) over threads with an accepted-answer time;
- days_to_close (median) over closed threads with a close time (GitHub issues).
Every figure comes with the count it is computed over, and the shares and medians with a 95%
interval (``*_lo``/``*_hi``): bootstrap below ``stats.SMALL_GROUP`` threads, closed forms above.
Copies of one question (same source, title and creation time: Stack Overflow exports repeat a
question under its duplicates' ids) count once unless ``dedupe=False``.

Grouped by code, a row counts the threads having that code (a thread with several codes is in
each of them) and the ``(all)`` row counts every thread once, all its figures over distinct
threads. The codes come from one place, stated in ``attrs["codes_from"]``: a classify run
(``run=``, by default the latest of the codebook) or one rater's hand labels (``labels=``; by
default, where no run exists, each thread's first rater in name order), of threads coded (not
those marked irrelevant). ``count`` says which of a thread's codes count: its ``primary`` code
(the default, but for a multi-label codebook whose coders named no code first), so that shares
add up to 100%, or ``any`` code it has (a thread with several is in each of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from devquarry import stats
from devquarry.errors import InputError
from devquarry.store import Store

GROUPINGS = ("source", "category", "code", "topic", "period")
PERIODS = ("month", "quarter", "year")

_AGG = """
SELECT {key} AS "group",
  count(*) AS threads,
  count(*) / (SELECT count(*) FROM sel_threads) AS share,
  median(views) AS views_median, avg(views) AS views_mean, avg(score) AS score_mean,
  count(reply_count) AS n_reply_count,
  avg(CASE WHEN reply_count = 0 THEN 1.0 WHEN reply_count > 0 THEN 0.0 END) AS pct_no_reply,
  avg(CASE WHEN reply_count < 3 THEN 1.0 WHEN reply_count >= 3 THEN 0.0 END) AS pct_under_3_replies,
  count(is_resolved) AS n_resolved_known,
  avg(CASE WHEN is_resolved THEN 0.0 WHEN NOT is_resolved THEN 1.0 END) AS pct_unresolved,
  count(hours_first) AS n_first_reply,
  median(hours_first) AS hours_to_first_reply_median,
  avg(hours_first) AS hours_to_first_reply_mean,
  count(hours_accepted) AS n_accepted,
  median(hours_accepted) AS hours_to_accepted_median,
  count(*) FILTER (WHERE closed_at >= created_at) AS n_closed,
  median(date_diff('second', created_at, closed_at) / 86400.0) FILTER (WHERE closed_at >= created_at) AS days_to_close_median
FROM {table}
GROUP BY ALL
ORDER BY threads DESC, "group"
"""

_FLAGS = """
SELECT {key} AS "group",
  CASE WHEN reply_count = 0 THEN 1.0 WHEN reply_count > 0 THEN 0.0 END AS no_reply,
  CASE WHEN reply_count < 3 THEN 1.0 WHEN reply_count >= 3 THEN 0.0 END AS under_3,
  CASE WHEN is_resolved THEN 0.0 WHEN NOT is_resolved THEN 1.0 END AS unresolved,
  hours_first, hours_accepted
FROM {table}
"""

# Each interval: (column in the table, flag or value column, kind).
_INTERVALS = [
    ("pct_no_reply", "no_reply", "share"),
    ("pct_under_3_replies", "under_3", "share"),
    ("pct_unresolved", "unresolved", "share"),
    ("hours_to_first_reply_median", "hours_first", "median"),
    ("hours_to_accepted_median", "hours_accepted", "median"),
]


# The figures a reader looks at first: what the command prints and the paper tables hold.
HEADLINE_COLUMNS = [
    "group",
    "threads",
    "share",
    "views_median",
    "pct_no_reply",
    "pct_under_3_replies",
    "pct_unresolved",
    "pct_unresolved_lo",
    "pct_unresolved_hi",
    "hours_to_first_reply_median",
    "hours_to_first_reply_mean",
    "hours_to_accepted_median",
    "days_to_close_median",
]


def _check(by: str, period: str) -> None:
    if by not in GROUPINGS:
        raise InputError(None, f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}", field="by")
    if period not in PERIODS:
        raise InputError(None, f"unknown period {period!r}; use one of {', '.join(PERIODS)}", field="period")


def latest_classify_run(store: Store, codebook: str) -> int | None:
    return store.con.execute("SELECT max(run_id) FROM classification WHERE codebook = ?", [codebook]).fetchone()[0]


@dataclass(frozen=True)
class Codes:
    """Where a code grouping takes its codes from: a classify run, or hand labels (of one rater,
    or with ``rater=None`` each thread's first rater in name order)."""

    codebook: str
    run: int | None
    rater: str | None
    description: str
    count: str = "primary"

    def join(self) -> tuple[str, list]:
        """SQL joining the threads ``t`` to their codes ``c``, with its parameters."""
        on = "c.source = t.source AND c.source_id = t.source_id"
        if self.run is not None:
            first = " AND coalesce(c.rank, 0) = 0" if self.count == "primary" else ""
            return f"JOIN classification c ON {on} AND c.run_id = {int(self.run)}{first}", []
        who = "AND rater = ?" if self.rater else ""
        first = "AND rank = 0" if self.count == "primary" else ""
        # Each thread's codes from one rater only: the first in name order.
        codes = (
            f"SELECT source, source_id, code FROM label WHERE codebook = ? {first} AND status = 'coded' {who} "
            "QUALIFY dense_rank() OVER (PARTITION BY source, source_id ORDER BY rater) = 1"
        )
        return f"JOIN ({codes}) c ON {on}", [self.codebook] + ([self.rater] if self.rater else [])


def store_codebooks(store: Store) -> list[str]:
    """Codebooks this store holds machine codes or hand labels for."""
    rows = store.con.execute("SELECT codebook FROM classification UNION SELECT codebook FROM label ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def default_codebook(store: Store) -> str | None:
    """The store's own codebook, as the report picks it: the latest classify run's, else the most hand-labelled."""
    row = store.con.execute("SELECT codebook FROM classification ORDER BY run_id DESC LIMIT 1").fetchone()
    if row:
        return row[0]
    row = store.con.execute("SELECT codebook, count(*) n FROM label GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1").fetchone()
    return row[0] if row else None


def code_grouping(store: Store, by: str, codebook: str | None) -> tuple[str, str | None, str | None]:
    """(by, codebook, note): ``by="code"`` without a codebook takes the store's own, as the report
    does (the latest classify run's, else the most hand-labelled); a store without any groups by
    forum category where threads have one, else by source. The note says what was chosen."""
    if by != "code" or codebook:
        return by, codebook, None
    own = default_codebook(store)
    if own:
        return "code", own, f"no --codebook given: using {own}, this store's codebook"
    has_category = store.con.execute("SELECT count(*) FROM thread WHERE category IS NOT NULL").fetchone()[0]
    fallback = "category" if has_category else "source"
    return fallback, None, f"no codebook in this store (no classify run or hand labels): grouping by {fallback} instead"


def _known_codebook(store: Store, codebook: str) -> str:
    """The id of a codebook the store has codes for; a shipped id or a YAML file resolves to its id."""
    held = store_codebooks(store)
    if codebook in held:
        return codebook
    from devquarry.codebooks import list_codebooks, load_codebook

    shipped = list(list_codebooks().id)
    try:
        cb_id = load_codebook(codebook).id
    except InputError:
        raise InputError(
            None,
            f"unknown codebook {codebook!r}; this store has codes for: {', '.join(held) or 'none'}; "
            f"shipped: {', '.join(shipped)}",
            field="codebook",
        ) from None
    if cb_id not in held:
        raise InputError(
            None,
            f"no machine codes or hand labels for codebook {cb_id!r} in this store (it has: "
            f"{', '.join(held) or 'none'}); run `devquarry classify --codebook {cb_id}` or import labels",
            field="codebook",
        )
    return cb_id


COUNTS = ("primary", "any")


def resolve_codes(
    store: Store, codebook: str | None, *, labels: str | None = None, run: int | None = None, count: str | None = None
) -> Codes:
    """The codes a ``by="code"`` grouping uses: run ``run``, rater ``labels``'s hand labels, or by
    default the codebook's latest classify run, else its hand labels; each thread's primary code or
    ``any`` of its codes (``count``; default as the codebook is counted, see ``classify.counting``)."""
    codes = _resolve_codes(store, codebook, labels=labels, run=run)
    if count is not None and count not in COUNTS:
        raise InputError(None, f"unknown count {count!r}; use primary or any", field="count")
    if count is None:
        from devquarry.classify import counting
        from devquarry.codebooks import load_codebook

        count = counting(load_codebook(codes.codebook, store=store))
    said = "each thread's primary code" if count == "primary" else "every code of a thread"
    return Codes(codes.codebook, codes.run, codes.rater, f"{codes.description}, {said}", count)


def _resolve_codes(store: Store, codebook: str | None, *, labels: str | None = None, run: int | None = None) -> Codes:
    if labels and run is not None:
        raise InputError(None, "give hand labels (--labels RATER) or a classify run (--run ID), not both", field="labels")
    if run is not None:
        row = store.con.execute(
            "SELECT any_value(codebook), any_value(method) FROM classification WHERE run_id = ?", [int(run)]
        ).fetchone()
        if row[0] is None:
            runs = store.con.execute(
                "SELECT run_id, any_value(codebook), any_value(method) FROM classification GROUP BY run_id ORDER BY run_id"
            ).fetchall()
            listed = ", ".join(f"{r} ({c}, {m})" for r, c, m in runs) or "none"
            raise InputError(None, f"no classify run {run}; classify runs in this store: {listed}", field="run")
        if codebook and _known_codebook(store, codebook) != row[0]:
            raise InputError(None, f"classify run {run} coded {row[0]}, not {codebook}", field="run")
        return Codes(row[0], int(run), None, f"classify run {run} ({row[1]})")
    if labels and not codebook:
        books = [r[0] for r in store.con.execute("SELECT DISTINCT codebook FROM label WHERE rater = ?", [labels]).fetchall()]
        if len(books) == 1:
            codebook = books[0]
    if not codebook:
        raise InputError(None, "--by code needs --codebook", field="codebook")
    codebook = _known_codebook(store, codebook)
    raters = [
        r[0]
        for r in store.con.execute(
            "SELECT DISTINCT rater FROM label WHERE codebook = ? AND status = 'coded' ORDER BY 1", [codebook]
        ).fetchall()
    ]
    if labels:
        if labels not in raters:
            raise InputError(
                None, f"no hand labels by rater {labels!r} for {codebook}; raters: {', '.join(raters) or 'none'}", field="labels"
            )
        return Codes(codebook, None, labels, f"hand labels (rater {labels})")
    latest = latest_classify_run(store, codebook)
    if latest is not None:
        method = store.con.execute("SELECT any_value(method) FROM classification WHERE run_id = ?", [latest]).fetchone()[0]
        return Codes(codebook, int(latest), None, f"classify run {latest} ({method})")
    if len(raters) == 1:
        return Codes(codebook, None, raters[0], f"hand labels (rater {raters[0]})")
    return Codes(codebook, None, None, f"hand labels (raters {', '.join(raters)}: each thread's first in name order)")


def _day(value) -> str:
    from datetime import date

    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise InputError(None, f"not a date: {value!r} (use YYYY-MM-DD)", field="since/until") from None


def select_groups(
    store: Store,
    by: str = "source",
    *,
    codebook: str | None = None,
    period: str = "quarter",
    sources: list[str] | None = None,
    topic_run: int | None = None,
    dedupe: bool = True,
    labels: str | None = None,
    run: int | None = None,
    codes: Codes | None = None,
    count: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> int:
    """Fill the temporary table ``sel``: one row per thread and group (a multi-label code puts a
    thread in several), with ``grp``, the ``threads`` view's columns and the hours to the first
    reply and to the accepted answer; and ``sel_threads``: each thread of ``sel`` once. Returns
    the number of duplicate copies left out. ``by="code"`` takes its codes from ``codes``, else
    from ``resolve_codes(store, codebook, labels=labels, run=run)``. ``since`` and ``until``
    (dates, both days included) keep the threads created between them."""
    _check(by, period)
    where, params = [], []
    if sources:
        where.append(f"t.source IN ({', '.join('?' for _ in sources)})")
        params = list(sources)
    for bound, op, shift in ((since, ">=", ""), (until, "<", " + INTERVAL 1 DAY")):
        if bound:
            where.append(f"t.created_at {op} CAST(? AS DATE){shift}")
            params.append(_day(bound))
    where_params = list(params)
    if by == "code":
        codes = codes or resolve_codes(store, codebook, labels=labels, run=run, count=count)
        join, join_params = codes.join()
        params = join_params + params
        key = "c.code"
    elif by == "topic":
        from devquarry.topics import latest_topic_run

        run = topic_run or latest_topic_run(store)
        join = (
            f"JOIN topic_assignment a ON a.source = t.source AND a.source_id = t.source_id AND a.run_id = {int(run)} "
            f"LEFT JOIN topic p ON p.run_id = a.run_id AND p.topic_id = a.topic_id"
        )
        key = "a.topic_id || ': ' || coalesce(p.label, '')"
    elif by == "period":
        join, key = "", f"strftime(date_trunc('{period}', t.created_at), '%Y-%m')"
    elif by == "category":
        join, key = "", "coalesce(t.category, '(none)')"
    else:
        join, key = "", "t.source"
    # Copies share source, title and creation time; keep the most viewed one.
    copies = (
        "QUALIFY t.title IS NULL OR t.created_at IS NULL OR row_number() OVER "
        "(PARTITION BY t.source, lower(trim(t.title)), t.created_at ORDER BY t.views DESC NULLS LAST, t.source_id) = 1"
    )
    # Every measure reads the thread's fields and text; the raw record and the HTML (most of a
    # thread's bytes) stay out of the temp tables, which at a million threads were gigabytes.
    base = (
        f"SELECT * EXCLUDE (raw, body_html) FROM threads t {copies}"
        if dedupe
        else "SELECT * EXCLUDE (raw, body_html) FROM threads"
    )
    sel = f"""WITH base AS ({base})
      SELECT t.*, {key} AS grp,
        CASE WHEN t.first_reply_at >= t.created_at THEN date_diff('second', t.created_at, t.first_reply_at) / 3600.0 END AS hours_first,
        CASE WHEN t.accepted_at >= t.created_at THEN date_diff('second', t.created_at, t.accepted_at) / 3600.0 END AS hours_accepted
      FROM base t {join} {"WHERE " + " AND ".join(where) if where else ""}"""
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE sel AS {sel}", params)
    store.con.execute("""CREATE OR REPLACE TEMP TABLE sel_threads AS SELECT * FROM sel
                         QUALIFY row_number() OVER (PARTITION BY source, source_id ORDER BY grp) = 1""")
    if not dedupe:
        return 0
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    total = store.con.execute(f"SELECT count(*) FROM threads t {cond}", where_params).fetchone()[0]
    kept = store.con.execute(f"SELECT count(*) FROM ({base}) t {cond}", where_params).fetchone()[0]
    return total - kept


def drop_selection(store: Store) -> None:
    store.con.execute("DROP TABLE IF EXISTS sel")
    store.con.execute("DROP TABLE IF EXISTS sel_threads")


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
    labels: str | None = None,
    run: int | None = None,
    count: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> pd.DataFrame:
    """Popularity and difficulty figures, one row per group (plus an ``(all)`` row first, each thread once).
    With ``by="code"``: ``labels=RATER`` for that rater's hand labels or ``run=ID`` for that classify
    run (default: the latest run, else the hand labels), ``count`` primary or any code;
    ``attrs["codes_from"]`` says which. ``since``/``until``: only threads created in those days."""
    check_codes_choice(by, labels, run)
    codes = resolve_codes(store, codebook, labels=labels, run=run, count=count) if by == "code" else None
    dropped = select_groups(
        store, by, period=period, sources=sources, topic_run=topic_run, dedupe=dedupe, codes=codes, since=since, until=until
    )
    try:
        groups = store.query(_AGG.format(key="grp", table="sel"))
        overall = store.query(_AGG.format(key="'(all)'", table="sel_threads").replace("GROUP BY ALL", ""))
        flags = pd.concat(
            [store.query(_FLAGS.format(key="'(all)'", table="sel_threads")), store.query(_FLAGS.format(key="grp", table="sel"))],
            ignore_index=True,
        )
    finally:
        drop_selection(store)
    if by == "period":
        groups = groups.sort_values("group", ignore_index=True)
    out = pd.concat([overall, groups], ignore_index=True)
    if not flags.empty:
        out = out.merge(_intervals(flags, level), on="group", how="left")
    out.attrs.update(by=by, duplicates_dropped=dropped, level=level)
    if codes is not None:
        out.attrs.update(codebook=codes.codebook, codes_from=codes.description, rows=rows_by_code(codes), count=codes.count)
    return out


ROWS_BY_CODE = "each code's row counts the threads with that code; (all) counts each thread once"


def rows_by_code(codes: Codes) -> str:
    if codes.count == "primary":
        return "shares add up to 100%"
    return ROWS_BY_CODE


def check_codes_choice(by: str, labels: str | None, run: int | None) -> None:
    if (labels or run is not None) and by != "code":
        raise InputError(
            None, f"--labels and --run choose the codes of --by code, not --by {by}", field="labels" if labels else "run"
        )
