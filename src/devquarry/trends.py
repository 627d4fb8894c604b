"""Trend per group over periods: new threads (or the share unresolved) per month, quarter or year,
and the Mann-Kendall test of its direction with Sen's slope (``stats.mann_kendall``).

Each group's series runs over its own span, with zeros only inside it: the periods its sources
have threads in, from the first source's first to the last one's last. Grouped by source, that is
each source's own span; a code of one source shares that source's span (its zeros while the source
ran are observations: a new API's questions rising from none). Padding a young repository with
years of zeros from an older source would read as a significant rise of slope 0.

Two things are left out, and ``attrs`` says how many threads each took:
- ``left_out_early``: stray early threads, an early run of periods cut off by empty ones that holds
  under ``STRAY_SHARE`` of the selection (a 2010 post in a corpus that starts in 2020);
- ``dropped_partial``: a source's current period when its data end inside it, a partial period
  that would read as a fall. A source's data end is the latest time it records anything (a thread
  created, updated, closed or answered, a reply): a repository that went quiet years before it was
  crawled keeps its last period. ``complete_only=False`` keeps them all.
"""

from __future__ import annotations

import pandas as pd

from devquarry import stats
from devquarry.errors import InputError
from devquarry.metrics import check_codes_choice, drop_selection, resolve_codes, select_groups
from devquarry.store import Store

MEASURES = ("threads", "pct_unresolved")
STRAY_SHARE = 0.01
_FREQ = {"month": "MS", "quarter": "QS", "year": "YS"}


def period_label(start: pd.Timestamp, period: str) -> str:
    """2025Q2, 2025-06 or 2025."""
    if period == "quarter":
        return f"{start.year}Q{start.quarter}"
    return start.strftime("%Y-%m") if period == "month" else str(start.year)


def _stray_cut(totals: pd.Series, periods: pd.DatetimeIndex) -> pd.Timestamp | None:
    """The latest start of a run of periods after empty ones such that the threads before it are
    fewer than STRAY_SHARE of all; None when nothing is stray."""
    cut, before, total = None, 0, totals.sum()
    for prev, cur in zip(periods[:-1], periods[1:]):
        before += totals.get(prev, 0)
        if totals.get(prev, 0) == 0 and totals.get(cur, 0) > 0 and before < STRAY_SHARE * total:
            cut = cur
    return cut


def _data_ends(store: Store) -> dict[str, float]:
    """Each selected source's data end (epoch seconds): the latest time it records anything."""
    rows = store.con.execute("""
        WITH src AS (SELECT DISTINCT source FROM sel)
        SELECT source, epoch(max(ts)) FROM (
          SELECT source, greatest(created_at, updated_at, closed_at, accepted_at, first_reply_at) AS ts
          FROM thread WHERE source IN (SELECT source FROM src)
          UNION ALL SELECT source, created_at FROM reply WHERE source IN (SELECT source FROM src))
        GROUP BY source""").fetchall()
    return {src: end for src, end in rows if end is not None}


def _partial(df: pd.DataFrame, per_source: pd.DataFrame, ends: dict[str, float], period: str) -> tuple[pd.DataFrame, dict | None]:
    """Drop each source's current period where its data end inside it; say what went."""
    offset = pd.tseries.frequencies.to_offset(_FREQ[period])
    cut = {}
    for src, end in ends.items():
        seen = pd.Timestamp(end, unit="s")
        current = pd.Timestamp(seen.to_period({"month": "M", "quarter": "Q", "year": "Y"}[period]).start_time)
        if seen < current + offset - pd.Timedelta(days=1):
            cut[src] = (current, seen)
    key = pd.Series(list(zip(df.source, df.period)), index=df.index)
    gone = key.isin([(s, c) for s, (c, _) in cut.items()])
    if not gone.any():
        return df, None
    dropped = per_source[
        pd.Series(list(zip(per_source.source, per_source.period))).isin([(s, c) for s, (c, _) in cut.items()]).to_numpy()
    ]
    periods = []
    for start, g in dropped.groupby("period"):
        srcs = sorted(g.source)
        periods.append(
            {
                "period": period_label(start, period),
                "threads": int(g.threads.sum()),
                "sources": srcs,
                "data_end": max(cut[s][1] for s in srcs).strftime("%Y-%m-%d"),
            }
        )
    info = {
        "threads": int(dropped.threads.sum()),
        "periods": periods,
        "groups": df[gone].groupby("group").threads.sum().astype(int).to_dict(),
    }
    return df[~gone], info


def series(
    store: Store,
    by: str = "source",
    *,
    codebook: str | None = None,
    period: str = "quarter",
    sources: list[str] | None = None,
    complete_only: bool = True,
    dedupe: bool = True,
    labels: str | None = None,
    run: int | None = None,
    count: str | None = None,
) -> pd.DataFrame:
    """Long table: group, period (start), threads, resolution_known, unresolved, pct_unresolved
    (over the threads whose resolution is known); each group over its own
    span, empty periods inside it filled with zeros; ``count`` as in ``metrics``."""
    grouping = by if by != "period" else "source"
    check_codes_choice(grouping, labels, run)
    codes = resolve_codes(store, codebook, labels=labels, run=run, count=count) if grouping == "code" else None
    select_groups(store, grouping, period=period, sources=sources, dedupe=dedupe, codes=codes)
    try:
        df = store.query(f"""SELECT grp AS "group", source, date_trunc('{period}', created_at)::DATE AS period,
                                    count(*) AS threads, count(is_resolved) AS resolution_known,
                                    count(*) FILTER (WHERE NOT is_resolved) AS unresolved
                             FROM sel WHERE created_at IS NOT NULL GROUP BY ALL""")
        # A thread with several codes is one thread of the selection: counted once here.
        per_source = store.query(f"""SELECT source, date_trunc('{period}', created_at)::DATE AS period, count(*) AS threads
                                     FROM sel_threads WHERE created_at IS NOT NULL GROUP BY ALL""")
        ends = _data_ends(store) if complete_only else {}
    finally:
        drop_selection(store)
    attrs = {"by": by, "period": period, "left_out_early": None, "dropped_partial": None}
    if codes is not None:
        attrs.update(codebook=codes.codebook, codes_from=codes.description)
    if not df.empty:
        freq = _FREQ[period]
        df["period"], per_source["period"] = pd.to_datetime(df.period), pd.to_datetime(per_source.period)
        totals = per_source.groupby("period").threads.sum()
        cut = _stray_cut(totals, pd.date_range(df.period.min(), df.period.max(), freq=freq))
        if cut is not None:
            attrs["left_out_early"] = {
                "before": period_label(cut, period),
                "threads": int(totals[totals.index < cut].sum()),
                "groups": df[df.period < cut].groupby("group").threads.sum().astype(int).to_dict(),
            }
            df = df[df.period >= cut]
        df, attrs["dropped_partial"] = _partial(df, per_source, ends, period)
    if df.empty:
        out = df.drop(columns="source").assign(pct_unresolved=pd.Series(dtype=float))
        out.attrs.update(attrs)
        return out
    # A group spans the periods its sources have threads in: a code's zeros while its source ran
    # are observations, a young repository's quarters before it existed are not.
    first, last = df.groupby("source").period.min(), df.groupby("source").period.max()
    frames = []
    for group, g in df.groupby("group", sort=True):
        srcs = g.source.unique()
        span = pd.date_range(first[srcs].min(), last[srcs].max(), freq=freq)
        g = g.groupby("period")[["threads", "resolution_known", "unresolved"]].sum()
        frames.append(g.reindex(span, fill_value=0).rename_axis("period").reset_index().assign(group=group))
    out = pd.concat(frames, ignore_index=True)[["group", "period", "threads", "resolution_known", "unresolved"]]
    # As in metrics: a thread whose resolution is unknown (a table with no resolved column) is not unresolved.
    out["pct_unresolved"] = out.unresolved / out.resolution_known.where(out.resolution_known > 0)
    out.attrs.update(attrs)
    return out


def trends(
    store: Store,
    by: str = "source",
    *,
    codebook: str | None = None,
    period: str = "quarter",
    sources: list[str] | None = None,
    measure: str = "threads",
    complete_only: bool = True,
    labels: str | None = None,
    run: int | None = None,
    count: str | None = None,
) -> pd.DataFrame:
    """One row per group: periods, first and last period's value, total, the classic Mann-Kendall
    test's tau and p-value, Sen's slope per period with its 95% interval, the direction (increasing,
    decreasing, no trend), and the threads of a partial last period left out (``partial_dropped``);
    ``attrs["test"]`` names the test."""
    if measure not in MEASURES:
        raise InputError(None, f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}", field="measure")
    long = series(
        store,
        by,
        codebook=codebook,
        period=period,
        sources=sources,
        complete_only=complete_only,
        labels=labels,
        run=run,
        count=count,
    )
    dropped = (long.attrs.get("dropped_partial") or {}).get("groups", {})
    rows = []
    for group, g in long.groupby("group", sort=False):
        g = g.sort_values("period")
        values = g[measure].dropna()
        test = stats.mann_kendall(values.to_numpy())
        rows.append(
            {
                "group": group,
                "threads": int(g.threads.sum()),
                "first_period": g.period.iloc[0].strftime("%Y-%m") if len(g) else None,
                "last_period": g.period.iloc[-1].strftime("%Y-%m") if len(g) else None,
                "first_value": float(values.iloc[0]) if len(values) else None,
                "last_value": float(values.iloc[-1]) if len(values) else None,
                **test,
                "partial_dropped": int(dropped.get(group, 0)),
            }
        )
    # A group whose threads all fell in the partial period has no series, but is still named.
    for group in sorted(set(dropped) - set(long.group)):
        empty = dict.fromkeys(("first_period", "last_period", "first_value", "last_value"))
        rows.append({"group": group, "threads": 0, **empty, **stats.mann_kendall([]), "partial_dropped": int(dropped[group])})
    out = pd.DataFrame(rows)
    if not out.empty:
        out = out.sort_values("threads", ascending=False, ignore_index=True)
    out.attrs.update(long.attrs)
    out.attrs.update(measure=measure, test=stats.TREND_TEST)
    return out
