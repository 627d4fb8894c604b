"""Trend per group over periods: new threads (or the share unresolved) per month, quarter or year,
and the Mann-Kendall test of its direction with Sen's slope (``stats.mann_kendall``).

The periods are the selection's last unbroken run of periods with threads (a stray early post,
say from 2010 in a corpus that starts in 2020, would otherwise add years of zeros), with zeros where
a group had no thread; the last period is left out when the data end before it does (a partial
quarter would read as a fall).
"""

from __future__ import annotations

import pandas as pd

from devquarry import stats
from devquarry.errors import InputError
from devquarry.metrics import select_groups
from devquarry.store import Store

MEASURES = ("threads", "pct_unresolved")


def series(store: Store, by: str = "source", *, codebook: str | None = None, period: str = "quarter",
           sources: list[str] | None = None, complete_only: bool = True, dedupe: bool = True) -> pd.DataFrame:
    """Long table: group, period (start), threads, unresolved, pct_unresolved; empty periods filled."""
    select_groups(store, by if by != "period" else "source", codebook=codebook, period=period, sources=sources, dedupe=dedupe)
    try:
        df = store.query(f"""SELECT grp AS "group", date_trunc('{period}', created_at)::DATE AS period,
                                    count(*) AS threads, count(*) FILTER (WHERE NOT coalesce(is_resolved, false)) AS unresolved
                             FROM sel WHERE created_at IS NOT NULL GROUP BY ALL""")
        last_seen = store.con.execute("SELECT epoch(max(created_at)) FROM sel").fetchone()[0]
    finally:
        store.con.execute("DROP TABLE IF EXISTS sel")
    if df.empty:
        return df.assign(pct_unresolved=pd.Series(dtype=float))
    freq = {"month": "MS", "quarter": "QS", "year": "YS"}[period]
    periods = pd.date_range(pd.Timestamp(df.period.min()), pd.Timestamp(df.period.max()), freq=freq)
    if complete_only and len(periods) > 1:
        end = periods[-1] + pd.tseries.frequencies.to_offset(freq)
        if pd.Timestamp(last_seen, unit="s") < end - pd.Timedelta(days=1):
            periods = periods[:-1]
    df["period"] = pd.to_datetime(df.period)
    busy = set(df.period)
    start = len(periods)
    while start > 0 and periods[start - 1] in busy:
        start -= 1
    periods = periods[start:]
    df = df[df.period.isin(periods)]
    full = pd.MultiIndex.from_product([sorted(df.group.unique()), periods], names=["group", "period"])
    out = df.set_index(["group", "period"]).reindex(full, fill_value=0).reset_index()
    out["pct_unresolved"] = out.unresolved / out.threads.where(out.threads > 0)
    return out


def trends(store: Store, by: str = "source", *, codebook: str | None = None, period: str = "quarter",
           sources: list[str] | None = None, measure: str = "threads", complete_only: bool = True) -> pd.DataFrame:
    """One row per group: periods, first and last period's value, total, Kendall's tau, p-value,
    Sen's slope per period with its 95% interval, and the direction (increasing, decreasing, no trend)."""
    if measure not in MEASURES:
        raise InputError(None, f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}", field="measure")
    long = series(store, by, codebook=codebook, period=period, sources=sources, complete_only=complete_only)
    rows = []
    for group, g in long.groupby("group", sort=False):
        g = g.sort_values("period")
        values = g[measure].dropna()
        test = stats.mann_kendall(values.to_numpy())
        rows.append({"group": group, "threads": int(g.threads.sum()),
                     "first_period": g.period.iloc[0].strftime("%Y-%m") if len(g) else None,
                     "last_period": g.period.iloc[-1].strftime("%Y-%m") if len(g) else None,
                     "first_value": float(values.iloc[0]) if len(values) else None,
                     "last_value": float(values.iloc[-1]) if len(values) else None, **test})
    out = pd.DataFrame(rows)
    if not out.empty:
        out = out.sort_values("threads", ascending=False, ignore_index=True)
    out.attrs.update(by=by, period=period, measure=measure)
    return out
