"""Live agreement between two raters, per level of the codebook, with devquarry's own agreement
function (so the page shows what `devquarry agreement` prints), and the adjudication queue."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from devquarry.codebooks import load_codebook
from devquarry.errors import InputError
from devquarry.labeling import agreement
from devquarry.store import Store

CONSENSUS = "consensus"


def kappa_interval(wide: pd.DataFrame, kappa: float, level: float = 0.95) -> tuple[float, float]:
    """Cohen's kappa's large-sample interval: kappa +- z * sqrt(po (1 - po) / (n (1 - pe)^2))."""
    a, b = wide.iloc[:, 0].to_numpy(), wide.iloc[:, 1].to_numpy()
    n = len(a)
    if n < 2:
        return (math.nan, math.nan)
    po = float(np.mean(a == b))
    cats = sorted(set(a) | set(b))
    pe = sum(float(np.mean(a == c)) * float(np.mean(b == c)) for c in cats)
    if pe >= 1:
        return (math.nan, math.nan)
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    z = float(norm.ppf(1 - (1 - level) / 2))
    return (max(-1.0, kappa - z * se), min(1.0, kappa + z * se))


def live_agreement(store: Store, codebook: str, raters: list[str]) -> list[dict]:
    """One dict per level: agreement()'s result with the interval added (``kappa_lo``, ``kappa_hi``);
    a level no thread of both raters reaches holds ``error``."""
    cb = load_codebook(codebook, store=store)
    out = []
    for level in range(len(cb.levels)):
        try:
            r = agreement(store, codebook, level, raters=raters)
        except InputError as exc:
            out.append({"level": cb.levels[level], "error": exc.message})
            continue
        if r["method"] == "Cohen":
            wide = _pairs(store, codebook, level, r["raters"])
            r["kappa_lo"], r["kappa_hi"] = kappa_interval(wide, r["kappa"])
        out.append(r)
    return out


def _pairs(store: Store, codebook: str, level: int, raters: list[str]) -> pd.DataFrame:
    from devquarry.labeling import labels_frame

    df = labels_frame(store, codebook, level)
    df = df[(df.status == "coded") & df.primary.notna() & df.rater.isin(raters)]
    return df.pivot_table(index=["source", "source_id"], columns="rater", values="primary", aggfunc="first").dropna()[raters]


def overlap_raters(store: Store, codebook: str) -> pd.DataFrame:
    """Raters of a codebook and how many threads each pair both coded."""
    return store.query(
        """WITH r AS (SELECT DISTINCT rater, source, source_id FROM label WHERE codebook = ? AND status = 'coded')
           SELECT a.rater AS rater_a, b.rater AS rater_b, count(*) AS threads FROM r a JOIN r b
             ON a.source = b.source AND a.source_id = b.source_id AND a.rater < b.rater
           GROUP BY ALL ORDER BY threads DESC, 1, 2""",
        [codebook],
    )


def to_adjudicate(store: Store, codebook: str, raters: list[str], limit: int = 200) -> pd.DataFrame:
    """Threads the two raters coded differently (primary code, deepest level) and not yet settled by a
    ``consensus`` label: title, each rater's codes."""
    a, b = raters
    return store.query(
        """WITH p AS (SELECT source, source_id, rater, string_agg(CASE WHEN status = 'irrelevant' THEN 'irrelevant' ELSE code END, ', '
                           ORDER BY rank) AS codes, first(code ORDER BY rank) AS primary_code, first(status) AS status
                      FROM label WHERE codebook = ? AND rater IN (?, ?) GROUP BY ALL)
           SELECT x.source, x.source_id, t.title, x.codes AS codes_a, y.codes AS codes_b,
                  x.primary_code AS primary_a, y.primary_code AS primary_b
           FROM p x JOIN p y ON x.source = y.source AND x.source_id = y.source_id AND x.rater = ? AND y.rater = ?
           JOIN thread t ON t.source = x.source AND t.source_id = x.source_id
           WHERE (x.primary_code <> y.primary_code OR x.status <> y.status)
             AND NOT EXISTS (SELECT 1 FROM label c WHERE c.codebook = ? AND c.rater = ? AND c.source = x.source AND c.source_id = x.source_id)
           ORDER BY x.source, x.source_id LIMIT ?""",
        [codebook, a, b, a, b, codebook, CONSENSUS, limit],
    )
