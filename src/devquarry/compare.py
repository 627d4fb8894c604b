"""Cross-platform: one codebook's groups side by side across sources (Stack Overflow, a forum,
GitHub issues), from the latest machine codes of that codebook (else its hand labels), or from
the hand labels of one rater (``labels=``) or one classify run (``run=``). Per source, a code's row
counts the threads with that code and ``(all)`` each thread once."""

from __future__ import annotations

import pandas as pd

from devquarry.codebooks import load_codebook
from devquarry.metrics import check_codes_choice, metrics, resolve_codes, rows_by_code
from devquarry.store import Store

MEASURES = ("threads", "share", "pct_unresolved", "pct_no_reply", "hours_to_first_reply_median")


def compare(
    store: Store,
    codebook: str,
    *,
    sources: list[str] | None = None,
    measures: tuple[str, ...] = MEASURES,
    by: str = "code",
    labels: str | None = None,
    run: int | None = None,
    count: str | None = None,
) -> pd.DataFrame:
    """Long table: one row per (group, source) with the chosen measures and their intervals.
    ``by="category"`` compares forum categories or tags instead of codes; ``count`` as in ``metrics``."""
    check_codes_choice(by, labels, run)
    codes = resolve_codes(store, codebook, labels=labels, run=run, count=count) if by == "code" else None
    if codes is not None:
        codebook, labels, run, count = codes.codebook, codes.rater, codes.run, codes.count
    if sources is None:
        sources = [r[0] for r in store.con.execute("SELECT DISTINCT source FROM thread ORDER BY source").fetchall()]
    frames = []
    for src in sources:
        m = metrics(store, by, codebook=codebook, sources=[src], labels=labels, run=run, count=count)
        if m.empty or m.threads.iloc[0] == 0 or len(m) == 1:
            continue
        cols = ["group"] + [c for c in m.columns if c in measures or any(c == f"{x}_{e}" for x in measures for e in ("lo", "hi"))]
        frames.append(m[cols].assign(source=src))
    attrs = {"codebook": codebook, "by": by}
    if codes is not None:
        attrs.update(codes_from=codes.description, rows=rows_by_code(codes), count=codes.count)
    if not frames:
        out = pd.DataFrame(columns=["group", "source", *measures])
        out.attrs.update(attrs)
        return out
    out = pd.concat(frames, ignore_index=True)
    out = out[["group", "source"] + [c for c in out.columns if c not in ("group", "source")]]
    out.attrs.update(attrs)
    return out


def side_by_side(long: pd.DataFrame, measures: tuple[str, ...] = ("threads", "share", "pct_unresolved")) -> pd.DataFrame:
    """Wide table for papers: one row per group, ``source: measure`` columns, codebook order and names."""
    if long.empty:
        return long
    wide = long.pivot(index="group", columns="source", values=list(measures))
    wide.columns = [f"{src}: {m}" for m, src in wide.columns]
    wide = wide[[f"{s}: {m}" for s in long.source.unique() for m in measures]]
    codebook = long.attrs.get("codebook")
    order = list(wide.index)
    names = {}
    if codebook and long.attrs.get("by", "code") == "code":
        cb = load_codebook(codebook)
        ids = [c.id for c in cb.codes]
        order = ["(all)"] + [i for i in ids if i in wide.index] + [g for g in wide.index if g not in ids and g != "(all)"]
        names = {c.id: c.name for c in cb.codes}
    wide = wide.reindex([g for g in order if g in wide.index])
    counts = [c for c in wide.columns if c.endswith((": threads", ": share"))]
    wide[counts] = wide[counts].fillna(0)
    wide.insert(0, "name", [names.get(g, g) for g in wide.index])
    return wide.reset_index()
