"""Distributions: how many threads fall in each bin of a measure (replies, views, hours to the
first reply, days to close), per group, with shares and their 95% intervals.

Bins are written as a paper prints them, comma-separated: ``0`` (exactly 0), ``1-2`` (1 to 2, both
included), ``<=200``, ``<1``, ``>10``, ``>=10``. Bins must be in ascending order and must not
overlap, but for a shared end (``0-1,1-24``): a value on it falls in the first bin (first match
wins), so continuous measures can be cut at round numbers. Values in no bin are counted in a row
``(outside the bins)``, so that the shares add up to 100%.

A thread whose value is unknown (a source without reply counts or views, a thread never replied
to or not closed) is left out of ``n`` and counted in ``unknown``. The threads are selected as
``metrics`` selects them (``metrics.select_groups``: the same groups, copies merged, codes from a
classify run or hand labels), and the intervals are ``stats.proportion_ci``'s: a seeded bootstrap
for groups under ``stats.SMALL_GROUP`` values, the Wilson score interval above.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from devquarry import stats
from devquarry.errors import InputError
from devquarry.store import Store

# measure -> (SQL over metrics' ``sel`` table, what it is in words)
MEASURES = {
    "replies": ("reply_count", "replies per thread"),
    "views": ("views", "views per thread"),
    "score": ("score", "score per thread"),
    "hours_to_first_reply": ("hours_first", "hours to the first reply"),
    "hours_to_accepted": ("hours_accepted", "hours to the accepted answer"),
    "days_to_close": (
        "CASE WHEN closed_at >= created_at THEN date_diff('second', created_at, closed_at) / 86400.0 END",
        "days to close",
    ),
}
# What `--bins MEASURE` alone uses: the forum study's bins for replies and views (arXiv 2408.05002).
DEFAULT_BINS = {
    "replies": "0,1-2,3-5,6-10,>10",
    "views": "<=200,201-500,501-1000,1001-2000,2001-5000,5001-10000,>10000",
    "score": "<0,0,1-5,>5",
    "hours_to_first_reply": "<=1,1-24,24-168,>168",
    "hours_to_accepted": "<=1,1-24,24-168,>168",
    "days_to_close": "<=1,1-7,7-30,30-90,>90",
}
OUTSIDE = "(outside the bins)"

_NUM = r"\d+(?:\.\d+)?"
_RANGE = re.compile(rf"^({_NUM})\s*-\s*({_NUM})$")
_BOUND = re.compile(rf"^(<=|>=|<|>|≤|≥)\s*({_NUM})$")
_EXACT = re.compile(rf"^({_NUM})$")


@dataclass(frozen=True)
class Bin:
    label: str
    lo: float
    hi: float
    lo_closed: bool = True
    hi_closed: bool = True

    def contains(self, x: np.ndarray) -> np.ndarray:
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        return above & below


def parse_bins(spec: str | list[str], where: str | None = None) -> list[Bin]:
    """Bins from ``"0,1-2,3-5,6-10,>10"`` (or a list of such labels); ``where`` names the input
    in errors."""
    labels = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    if not labels or any(not s for s in labels):
        raise InputError(where, f"empty bin in {spec!r}: write bins like 0,1-2,3-5,>5", field="bins")
    bins = [_bin(s, where) for s in labels]
    for prev, cur in zip(bins, bins[1:]):
        # A shared end (0-1,1-24) is allowed: the value on it goes to the first bin.
        swallowed = cur.lo == cur.hi == prev.hi and prev.hi_closed
        if prev.hi > cur.lo or swallowed:
            raise InputError(
                where,
                f"bins {prev.label!r} and {cur.label!r} overlap or are out of order: list them in ascending order",
                field="bins",
            )
    if len({b.label for b in bins}) != len(bins):
        raise InputError(where, f"a bin is listed twice in {spec!r}", field="bins")
    return bins


def _bin(text: str, where: str | None) -> Bin:
    label = text.replace("≤", "<=").replace("≥", ">=").replace(" ", "")
    if m := _EXACT.match(label):
        v = float(m.group(1))
        return Bin(label, v, v)
    if m := _RANGE.match(label):
        lo, hi = float(m.group(1)), float(m.group(2))
        if lo > hi:
            raise InputError(where, f"bin {text!r} runs backwards: write the smaller number first", field="bins")
        return Bin(label, lo, hi)
    if m := _BOUND.match(label):
        op, v = m.group(1), float(m.group(2))
        if op in ("<", "<="):
            return Bin(label, -math.inf, v, lo_closed=False, hi_closed=op == "<=")
        return Bin(label, v, math.inf, lo_closed=op == ">=", hi_closed=False)
    raise InputError(where, f"not a bin: {text!r}; write a number (0), a range (1-2), or a bound (<=200, >10)", field="bins")


def assign(values, bins: list[Bin]) -> np.ndarray:
    """Each value's bin index (the first bin that holds it), -1 where none does, -2 where unknown (NaN)."""
    x = np.asarray(values, dtype=float)
    out = np.full(len(x), -1, dtype=int)
    out[np.isnan(x)] = -2
    for i, b in enumerate(bins):
        free = out == -1
        out[free & b.contains(np.where(np.isnan(x), 0.0, x))] = i
    return out


def bin_table(values, bins: list[Bin], level: float = 0.95) -> pd.DataFrame:
    """One row per bin (and ``OUTSIDE`` where values fall in none): count, share of the known
    values, its interval, n known, unknown."""
    idx = assign(values, bins)
    known = idx[idx != -2]
    n, unknown = len(known), int((idx == -2).sum())
    labels = [(i, b.label) for i, b in enumerate(bins)]
    if (known == -1).any():
        labels.append((-1, OUTSIDE))
    rows = []
    for i, label in labels:
        flags = (known == i).astype(float)
        lo, hi, method = stats.proportion_ci(flags, level) if n else (math.nan, math.nan, "")
        rows.append(
            {
                "bin": label,
                "count": int(flags.sum()),
                "share": flags.sum() / n if n else math.nan,
                "share_lo": lo,
                "share_hi": hi,
                "ci_method": method,
                "n": n,
                "unknown": unknown,
            }
        )
    return pd.DataFrame(rows)


def measure_sql(measure: str) -> str:
    if measure not in MEASURES:
        raise InputError(None, f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}", field="bins")
    return MEASURES[measure][0]


def parse_bins_option(spec: str) -> tuple[str, list[Bin]]:
    """``"replies=0,1-2,>2"`` -> (measure, bins); ``"replies"`` alone takes ``DEFAULT_BINS``."""
    measure, _, text = spec.partition("=")
    measure = measure.strip()
    measure_sql(measure)
    return measure, parse_bins(text if text.strip() else DEFAULT_BINS[measure], where=f"--bins {measure}")


def distribution(
    store: Store,
    measure: str,
    bins: str | list[str] | list[Bin] | None = None,
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
) -> pd.DataFrame:
    """Threads per bin of ``measure`` (replies, views, score, hours_to_first_reply,
    hours_to_accepted, days_to_close), one row per group and bin with an ``(all)`` group first
    (each thread once): count, share of the threads whose value is known (``n``), its 95% interval
    (``share_lo``, ``share_hi``), and ``unknown``, the threads left out for want of a value.
    ``bins`` as ``parse_bins`` reads them (default ``DEFAULT_BINS[measure]``); the groups and
    codes as ``metrics`` takes them (``attrs["codes_from"]`` says where codes came from)."""
    from devquarry.metrics import check_codes_choice, drop_selection, resolve_codes, rows_by_code, select_groups

    expr = measure_sql(measure)
    if bins is None:
        bins = DEFAULT_BINS[measure]
    if not (isinstance(bins, list) and bins and all(isinstance(b, Bin) for b in bins)):
        bins = parse_bins(bins, where=f"bins of {measure}")
    check_codes_choice(by, labels, run)
    codes = resolve_codes(store, codebook, labels=labels, run=run, count=count) if by == "code" else None
    dropped = select_groups(store, by, period=period, sources=sources, topic_run=topic_run, dedupe=dedupe, codes=codes)
    try:
        everyone = store.query(f"SELECT {expr} AS v FROM sel_threads")
        grouped = store.query(f"SELECT grp, {expr} AS v FROM sel")
    finally:
        drop_selection(store)
    frames = [bin_table(everyone.v.to_numpy(dtype=float), bins, level).assign(group="(all)", threads=len(everyone))]
    sizes = grouped.groupby("grp").size()
    order = sorted(sizes.index) if by == "period" else sorted(sizes.index, key=lambda g: (-sizes[g], str(g)))
    for g in order:
        v = grouped.loc[grouped.grp == g, "v"].to_numpy(dtype=float)
        frames.append(bin_table(v, bins, level).assign(group=g, threads=len(v)))
    out = pd.concat(frames, ignore_index=True).assign(measure=measure)
    out = out[["measure", "group", "bin", "count", "share", "share_lo", "share_hi", "ci_method", "n", "unknown", "threads"]]
    out.attrs.update(
        measure=measure,
        what=MEASURES[measure][1],
        bins=[b.label for b in bins],
        by=by,
        level=level,
        duplicates_dropped=dropped,
        threads=len(everyone),
        unknown=int(everyone.v.isna().sum()),
    )
    if codes is not None:
        out.attrs.update(codebook=codes.codebook, codes_from=codes.description, rows=rows_by_code(codes), count=codes.count)
    return out


def unknown_note(df: pd.DataFrame) -> str:
    """What a distribution left out, in words."""
    a = df.attrs
    left = a.get("unknown", 0)
    return (
        f"{a.get('what', a.get('measure'))}: {a.get('threads', 0) - left:,} of {a.get('threads', 0):,} threads have a value"
        + (f"; {left:,} without one are left out" if left else "")
    )
