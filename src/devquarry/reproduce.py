"""Reproduce a study: each of its published figures beside the same measure on this store.

``reproduce(store, "chen2024-forum")`` runs every figure of the study (``devquarry.studies``) on
the store's threads, selected as ``metrics`` selects them (copies merged; ``source`` narrows to
some sources), and returns one row per figure and item (a bin, a code): the published value and
its n beside ours and our n, the difference (ours minus published, in points for shares), our
95% interval, and where the store lacks what a measure needs (view counts, reply counts, codes),
a ``missing`` text instead of a number. ``origin`` says whether the published side is printed in
the paper or computed from the study's own data. How each measure is computed:
``devquarry.studies.measures``.
"""

from __future__ import annotations

import math

import pandas as pd

from devquarry.errors import InputError
from devquarry.store import Store
from devquarry.studies import Study, load_study
from devquarry.studies.measures import FIGURES, Context, kind, thread_frame

COLUMNS = [
    "study",
    "figure",
    "measure",
    "ref",
    "item",
    "definition",
    "origin",
    "unit",
    "published",
    "published_count",
    "published_n",
    "ours",
    "our_count",
    "our_n",
    "difference",
    "ours_lo",
    "ours_hi",
    "missing",
    "note",
]


def reproduce(
    store: Store,
    study: str | Study,
    *,
    source: str | list[str] | None = None,
    labels: str | None = None,
    run: int | None = None,
    count: str | None = None,
    dedupe: bool = True,
    level: float = 0.95,
) -> pd.DataFrame:
    """The study's published figures beside ours on this store, one row per figure and item (see
    the module's doc). ``labels=RATER`` or ``run=ID`` chooses the codes of the code-share figures
    as ``metrics`` does (default: the latest classify run of the study's codebook, else its hand
    labels); ``attrs`` hold the study's title, source and note and where the codes came from."""
    st = load_study(study)
    sources = [source] if isinstance(source, str) else (list(source) if source else None)
    if sources:
        held = [r[0] for r in store.con.execute("SELECT DISTINCT source FROM thread ORDER BY 1").fetchall()]
        unknown = [x for x in sources if x not in held]
        if unknown:
            raise InputError(
                None, f"no threads of source {unknown[0]!r}; this store's sources: {', '.join(held)}", field="source"
            )
    ctx = Context(store, st, sources, dedupe, level, labels, run, count)
    ctx.threads = thread_frame(store, sources, dedupe)
    rows = []
    for f in st.figures:
        for row in FIGURES[kind(f.measure)](ctx, f):
            rows.append(
                {
                    "study": st.id,
                    "figure": f.id,
                    "measure": f.measure,
                    "ref": f.ref,
                    "definition": f.definition,
                    "origin": f.origin,
                    **row,
                }
            )
    out = pd.DataFrame(rows).reindex(columns=COLUMNS)
    out["difference"] = out.ours - out.published
    for col in ("published_count", "published_n", "our_count", "our_n"):  # counts stay whole in every format
        out[col] = out[col].astype("Int64")
    out.attrs.update(
        study=st.id,
        title=st.title,
        source=st.source,
        url=st.url,
        note=st.note,
        threads=len(ctx.threads),
        sources=sources,
    )
    out.attrs.update(ctx.codes_from)
    return out


def _absent(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _fmt(value, unit: str, count=None) -> str:
    if _absent(value):
        return ""
    count = None if _absent(count) else count
    # As precise as the paper printed it (8.98%), else one decimal.
    digits = 2 if round(value, 1) != round(value, 2) and unit != "rank" and not count else 1
    if unit == "%":
        text = f"{value:.{digits}f}%"
    elif unit == "rank":
        text = f"#{value:.0f}"
    else:
        text = f"{value:,.{digits}f} {unit}".strip()
    if count is not None:
        text += f" ({int(count):,})"
    return text


def _fmt_n(n) -> str:
    return "" if _absent(n) else f"{int(n):,}"


def _fmt_diff(d, unit: str) -> str:
    if _absent(d):
        return ""
    if unit == "%":
        return f"{d:+.2f} pts"
    if unit == "rank":
        return f"{d:+.0f}"
    return f"{d:+,.2f}"


def _collapse(df: pd.DataFrame) -> pd.DataFrame:
    """A per-code figure the store has nothing for, as one row: 26 rows repeating that no codes
    are held would bury the rest of the table."""
    keep = []
    for _, g in df.groupby("figure", sort=False):
        missing = g.missing.dropna().unique()
        if (
            len(g) > 1
            and g.measure.iloc[0] in ("code_shares", "unresolved_by_code", "unresolved_rank")
            and g.missing.notna().all()
            and len(missing) == 1
        ):
            first = g.iloc[[0]].copy()
            first["item"] = f"({len(g)} codes)"
            first[["published", "published_count"]] = math.nan
            keep.append(first)
        else:
            keep.append(g)
    return pd.concat(keep) if keep else df


def display_rows(df: pd.DataFrame, *, flag_missing: bool = False) -> pd.DataFrame:
    """The rows as a reader reads them: values with their unit and count, n with thousands
    separators, the difference in points; what is missing instead of our value."""
    df = _collapse(df)
    out = pd.DataFrame(
        {
            "figure": df.figure,
            "item": df["item"].fillna(""),
            "published": [_fmt(v, u, c) for v, u, c in zip(df.published, df.unit, df.published_count)],
            "published n": df.published_n.map(_fmt_n),
            "ours": [
                m if isinstance(m, str) and m else _fmt(v, u, None if u == "rank" else c)
                for v, u, c, m in zip(df.ours, df.unit, df.our_count, df.missing)
            ],
            "our n": df.our_n.map(_fmt_n),
            "difference": [_fmt_diff(d, u) for d, u in zip(df.difference, df.unit)],
            "origin": df.origin,
        }
    )
    if flag_missing:  # the report greys out what it could not compute
        out["is_missing"] = df.missing.map(lambda m: isinstance(m, str) and bool(m)).to_numpy()
    return out


__all__ = ["COLUMNS", "display_rows", "reproduce"]
