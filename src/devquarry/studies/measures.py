"""The measures a study's figures name (``devquarry.studies.MEASURES``), computed on a store for
``devquarry.reproduce``: each returns the rows of one figure, published value beside ours.

Shares are in % of the threads whose value is known (a table without reply counts or a resolved
column leaves them unknown, not zero: they are left out and counted in ``note``); code shares count
each thread once per code at the figure's level (its primary code rolled up, or every code, as
``metrics`` counts the codebook), over the threads coded at that level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from devquarry import stats
from devquarry.distributions import MEASURES as DISTRIBUTIONS
from devquarry.distributions import OUTSIDE, bin_table, parse_bins
from devquarry.errors import InputError
from devquarry.store import Store
from devquarry.studies import Figure, Study

# Resolution is known where the source says anything of it: an accepted answer's time, a resolved
# flag on any of its threads, or replies to find an accepted answer among (so not a table without a
# resolved column). The threads view once read a missing flag as unresolved, which made a
# statistics-only table 100% unresolved; this holds whether or not the view leaves it NULL.
_RESOLUTION_KNOWN = """s.is_resolved IS NOT NULL AND (s.accepted_at IS NOT NULL
  OR s.source IN (SELECT DISTINCT source FROM thread WHERE is_resolved IS NOT NULL)
  OR s.source IN (SELECT DISTINCT source FROM reply))"""

_NONE_HELD = {
    "replies": "no reply counts: the store's sources give none",
    "views": "no view counts: the store's sources give none",
    "score": "no scores: the store's sources give none",
    "hours_to_first_reply": "no first-reply times: the store's sources give none",
    "hours_to_accepted": "no accepted-answer times: the store's sources give none",
    "days_to_close": "no close times: the store's threads were not closed, or their sources give none",
    "resolution": "resolution unknown: the store's sources give no resolved flag or accepted answer",
}


@dataclass
class Context:
    """What one call of ``reproduce`` shares between its figures: the selection, and the codes read once."""

    store: Store
    study: Study
    sources: list[str] | None
    dedupe: bool
    level: float
    labels: str | None
    run: int | None
    count: str | None
    threads: pd.DataFrame = field(default_factory=pd.DataFrame)
    _codes: tuple | None = None
    cb: object = None  # the codebook the codes belong to, once read
    codes_from: dict = field(default_factory=dict)

    def codes(self) -> tuple[pd.DataFrame | None, str | None]:
        """(one row per thread and code: source, source_id, code, is_resolved, resolution_known;
        or None and why not), once per call of reproduce."""
        if self._codes is None:
            self._codes = _code_frame(self)
        return self._codes


def kind(measure: str) -> str:
    if measure.startswith("pct_"):
        return "share"
    if measure.startswith("hours_"):
        return "hours"
    return measure


def thread_frame(store: Store, sources: list[str] | None, dedupe: bool) -> pd.DataFrame:
    from devquarry.metrics import drop_selection, select_groups

    values = ", ".join(f'{sql} AS "{name}"' for name, (sql, _) in DISTRIBUTIONS.items())
    select_groups(store, "source", sources=sources, dedupe=dedupe)
    try:
        return store.query(
            f"""WITH s AS (SELECT source, source_id, {values}, is_resolved, accepted_at FROM sel_threads)
                SELECT s.* EXCLUDE (accepted_at), {_RESOLUTION_KNOWN} AS resolution_known FROM s"""
        )
    finally:
        drop_selection(store)


def _code_frame(ctx: Context) -> tuple[pd.DataFrame | None, str | None]:
    from devquarry.codebooks import load_codebook
    from devquarry.metrics import drop_selection, resolve_codes, select_groups

    cb_id = ctx.study.codebook
    if not cb_id:
        return None, "the study names no codebook"
    try:
        codes = resolve_codes(ctx.store, cb_id, labels=ctx.labels, run=ctx.run, count=ctx.count)
    except InputError:
        if ctx.labels or ctx.run is not None:  # the user chose them: a wrong choice is their error
            raise
        return None, (
            f"no hand labels or machine codes for {cb_id}: `devquarry labels import` or `devquarry classify --codebook {cb_id}`"
        )
    select_groups(ctx.store, "code", sources=ctx.sources, dedupe=ctx.dedupe, codes=codes)
    try:
        df = ctx.store.query(
            f"""SELECT s.source, s.source_id, s.grp AS code, s.is_resolved, {_RESOLUTION_KNOWN} AS resolution_known
                FROM sel s"""
        )
    finally:
        drop_selection(ctx.store)
    # Kept on the context, not in attrs: pandas deep-copies attrs on every operation.
    ctx.cb = load_codebook(codes.codebook, store=ctx.store)
    ctx.codes_from = {"codebook": codes.codebook, "codes_from": codes.description}
    return df, None


def _at_level(codes: pd.DataFrame, cb, level: int) -> tuple[pd.DataFrame, int]:
    """The codes rolled up to ``level`` (one row per thread and code there), and how many threads
    were coded only above it (a bare category at subcategory level); off-subject groups
    (irrelevant, unclassified) and codes not in the codebook are left out."""
    known = {c.id: c for c in cb.codes}
    keep = codes[codes.code.isin(known)].copy()
    deep = keep.code.map(lambda c: known[c].level >= level)
    shallow = keep.loc[~deep, ["source", "source_id"]].drop_duplicates()
    keep = keep[deep].copy()
    keep["code"] = [cb.ancestor(c, level) for c in keep.code]
    keep = keep.drop_duplicates(["source", "source_id", "code"])
    threads = keep[["source", "source_id"]].drop_duplicates()
    only_shallow = len(shallow.merge(threads, how="left", indicator=True).query("_merge == 'left_only'"))
    return keep, only_shallow


def _share_row(flags: np.ndarray, level: float) -> dict:
    n = len(flags)
    if not n:
        return {"ours": math.nan, "our_count": 0, "our_n": 0}
    lo, hi, _ = stats.proportion_ci(flags.astype(float), level)
    return {"ours": flags.mean() * 100, "our_count": int(flags.sum()), "our_n": n, "ours_lo": lo * 100, "ours_hi": hi * 100}


def _published_share(f: Figure, count: int | None = None, n: int | None = None, value: float | None = None) -> dict:
    n = n if n is not None else f.n
    if value is None and count is not None and n:
        value = count / n * 100
    return {"published": value, "published_count": count, "published_n": n, "unit": "%"}


def _distribution(ctx: Context, f: Figure) -> list[dict]:
    bins = parse_bins(list(f.bins), where=f"study {ctx.study.id}: figure {f.id}")
    values = ctx.threads[f.of].to_numpy(dtype=float) if len(ctx.threads) else np.array([])
    table = bin_table(values, bins, ctx.level).set_index("bin")
    n_pub = f.n if f.n is not None else (sum(f.counts) if f.counts else None)
    known = int(table.n.iloc[0]) if len(table) else 0
    unknown = int(table.unknown.iloc[0]) if len(table) else 0
    missing = _NONE_HELD[f.of] if known == 0 else None
    note = f"{unknown:,} threads without a value left out" if unknown and known else None
    rows = []
    for i, b in enumerate(bins):
        pub = _published_share(f, count=f.counts[i], n=n_pub) if f.counts else _published_share(f, value=f.shares[i], n=n_pub)
        row = {"item": b.label, **pub, "missing": missing, "note": note}
        if not missing:
            r = table.loc[b.label]
            row.update(
                ours=r["share"] * 100, our_count=int(r["count"]), our_n=known, ours_lo=r.share_lo * 100, ours_hi=r.share_hi * 100
            )
        rows.append(row)
    if OUTSIDE in table.index and not missing:
        r = table.loc[OUTSIDE]
        rows.append(
            {"item": OUTSIDE, "unit": "%", "ours": r["share"] * 100, "our_count": int(r["count"]), "our_n": known, "note": note}
        )
    return rows


_FLAGS = {
    "pct_no_reply": ("replies", lambda t: t.replies == 0),
    "pct_under_3_replies": ("replies", lambda t: t.replies < 3),
    "pct_accepted": ("resolution", lambda t: t.is_resolved.astype(bool)),
    "pct_unresolved": ("resolution", lambda t: ~t.is_resolved.astype(bool)),
}


def _share(ctx: Context, f: Figure) -> list[dict]:
    if f.measure not in _FLAGS:
        raise InputError(ctx.study.path, f"no such share measure {f.measure!r}", record=f"figure {f.id}", field="measure")
    needs, flag = _FLAGS[f.measure]
    row = {"item": "", **_published_share(f, count=f.count, value=f.value)}
    t = ctx.threads
    if f.over == "coded":
        codes, why = ctx.codes()
        if codes is None:
            return [{**row, "missing": why}]
        coded, _ = _at_level(codes, ctx.cb, 0)
        t = t.merge(coded[["source", "source_id"]].drop_duplicates(), on=["source", "source_id"])
    known = t[t.resolution_known.astype(bool)] if needs == "resolution" else t[t.replies.notna()]
    left = len(t) - len(known)
    if known.empty:
        return [{**row, "missing": _NONE_HELD[needs]}]
    note = (
        f"{left:,} threads whose {'resolution' if needs == 'resolution' else 'reply count'} is unknown left out" if left else None
    )
    return [{**row, **_share_row(flag(known).to_numpy(), ctx.level), "note": note}]


def _hours(ctx: Context, f: Figure) -> list[dict]:
    row = {"item": "", "published": f.value, "published_n": f.n, "unit": "hours"}
    h = ctx.threads.hours_to_first_reply.dropna().to_numpy(dtype=float) if len(ctx.threads) else np.array([])
    if not len(h):
        return [{**row, "missing": _NONE_HELD["hours_to_first_reply"]}]
    if f.measure.endswith("_mean"):
        value = float(h.mean())
        lo, hi = stats.bootstrap_ci(h, np.mean, ctx.level) if len(h) < stats.SMALL_GROUP else _mean_ci(h, ctx.level)
    else:
        value = float(np.median(h))
        lo, hi, _ = stats.median_interval(h, ctx.level)
    return [{**row, "ours": value, "our_n": len(h), "ours_lo": lo, "ours_hi": hi}]


def _mean_ci(x: np.ndarray, level: float) -> tuple[float, float]:
    from scipy import stats as st

    lo, hi = st.t.interval(level, len(x) - 1, loc=x.mean(), scale=st.sem(x))
    return float(lo), float(hi)


def _per_code(ctx: Context, f: Figure) -> tuple[pd.DataFrame | None, str | None, dict, int]:
    """(one row per thread and code at the figure's level, why missing, the codebook's codes at that
    level by id, threads coded only above that level)."""
    codes, why = ctx.codes()
    if codes is None:
        from devquarry.codebooks import load_codebook

        cb = load_codebook(ctx.study.codebook) if ctx.study.codebook else None
        return None, why, {c.id: c for c in cb.at_level(f.level)} if cb else {}, 0
    at, shallow = _at_level(codes, ctx.cb, f.level)
    return at, None, {c.id: c for c in ctx.cb.at_level(f.level)}, shallow


def _flags(count: int, n: int) -> np.ndarray:
    return np.r_[np.ones(count), np.zeros(n - count)]


def _code_shares(ctx: Context, f: Figure) -> list[dict]:
    at, why, level_codes, shallow = _per_code(ctx, f)
    published = {c: (cb.share if f.shares_from == "codebook" else None) for c, cb in level_codes.items()}
    counts = {}
    for item in f.items:
        published[item["code"]] = item["value"]
        counts[item["code"]] = item["count"]
    n_threads = 0 if at is None else len(at[["source", "source_id"]].drop_duplicates())
    per_code = at.groupby("code").size() if at is not None else pd.Series(dtype=int)
    note = f"{shallow:,} threads coded only with a category are left out at this level" if shallow else None
    rows = []
    for code, value in published.items():
        name = level_codes[code].name if code in level_codes else code
        row = {"item": f"{code}: {name}" if name != code else code, **_published_share(f, count=counts.get(code), value=value)}
        if not n_threads:
            rows.append({**row, "missing": why or "no thread is coded at this level"})
            continue
        rows.append({**row, **_share_row(_flags(int(per_code.get(code, 0)), n_threads), ctx.level), "note": note})
    return rows


def _unresolved_table(at: pd.DataFrame) -> pd.DataFrame:
    known = at[at.resolution_known.astype(bool)]
    return (
        known.assign(unresolved=~known.is_resolved.astype(bool))
        .groupby("code")
        .agg(n=("unresolved", "size"), count=("unresolved", "sum"), pct=("unresolved", "mean"))
    )


def _unresolved_by_code(ctx: Context, f: Figure) -> list[dict]:
    at, why, level_codes, _ = _per_code(ctx, f)
    table = _unresolved_table(at) if at is not None else None
    rows = []
    for item in f.items:
        code = item["code"]
        name = level_codes[code].name if code in level_codes else code
        row = {"item": f"{code}: {name}", **_published_share(f, count=item["count"], n=item["n"], value=item["value"])}
        if table is None:
            rows.append({**row, "missing": why})
        elif code not in table.index:
            rows.append({**row, "missing": "no thread with this code and a known resolution"})
        else:
            r = table.loc[code]
            rows.append({**row, **_share_row(_flags(int(r["count"]), int(r.n)), ctx.level)})
    if table is not None and table.empty:
        for r in rows:
            r["missing"] = r.get("missing") or _NONE_HELD["resolution"]
    return rows


def _unresolved_rank(ctx: Context, f: Figure) -> list[dict]:
    at, why, level_codes, _ = _per_code(ctx, f)
    table = _unresolved_table(at) if at is not None else None
    if table is not None and not table.empty:
        table["rank"] = table.pct.rank(ascending=False, method="min")
    rows = []
    for i, code in enumerate(f.ranking, start=1):
        name = level_codes[code].name if code in level_codes else code
        row = {"item": f"{code}: {name}", "published": float(i), "unit": "rank"}
        if table is None:
            rows.append({**row, "missing": why})
        elif table.empty or code not in table.index:
            rows.append({**row, "missing": _NONE_HELD["resolution"] if table.empty else "no thread with this code"})
        else:
            r = table.loc[code]
            rows.append(
                {
                    **row,
                    "ours": float(r["rank"]),
                    "our_n": int(r.n),
                    "our_count": int(r["count"]),
                    "note": f"ours: {r.pct:.1%} of {int(r.n):,} without an accepted answer, rank {int(r['rank'])} of {len(table)}",
                }
            )
    return rows


FIGURES = {
    "distribution": _distribution,
    "share": _share,
    "hours": _hours,
    "code_shares": _code_shares,
    "unresolved_by_code": _unresolved_by_code,
    "unresolved_rank": _unresolved_rank,
}
