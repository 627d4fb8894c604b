"""Hotspots: groups that are both popular and hard, each with the fix the playbook suggests, the
LLM limit its threads talk about most, and example unresolved threads.

Score (stated in the report's methods section):
- popularity P = mean percentile rank, among the groups, of the thread count and (where the
  source has views) the median views;
- difficulty D = mean percentile rank of the share unresolved, the share with no reply and the
  median hours to a first reply (each where known);
- score = sqrt(P * D), in (0, 1]: high only when both are; a group is a hotspot when P >= 0.5
  and D >= 0.5 (in the upper half on both).
Fix: the ``playbook`` code whose ``applies_to`` lists the group's code (for a category, the fix
most of its subcategories take); for a topic, the fix of the topic's most frequent machine code
when a codebook is given, else the fix of its LLM limit.
LLM limit: the ``llm-limits`` code whose keywords appear (whole words, any case) in the most of
the group's threads (title and body), with that share; none below 5%.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from devquarry.codebooks import load_codebook
from devquarry.metrics import latest_classify_run, metrics, select_groups
from devquarry.store import Store

PLAYBOOK = "playbook"
LIMITS = "llm-limits"
MIN_LIMIT_SHARE = 0.05


def fix_for(codebook: str, code: str) -> str | None:
    """The playbook fix for a code of a codebook (a category takes its subcategories' majority)."""
    pb = load_codebook(PLAYBOOK)
    direct = {c: fix.id for fix in pb.codes for c in fix.applies_to.get(codebook, [])}
    if code in direct:
        return direct[code]
    try:
        cb = load_codebook(codebook)
        kids = [c.id for c in cb.codes if c.parent and cb.ancestor(c.id, cb.code(code).level) == code and c.id != code]
    except (KeyError, Exception):
        return None
    votes = Counter(direct[k] for k in kids if k in direct)
    return votes.most_common(1)[0][0] if votes else None


def _limit_patterns() -> dict[str, str]:
    cb = load_codebook(LIMITS)
    return {c.id: r"\b(" + "|".join(re.escape(k.lower()) for k in c.keywords) + r")\b" for c in cb.codes}


def _rank(s: pd.Series) -> pd.Series:
    return s.rank(pct=True, method="average") if s.notna().any() else pd.Series(np.nan, index=s.index)


def score(m: pd.DataFrame) -> pd.DataFrame:
    """Add popularity, difficulty, score and is_hotspot to a metrics table (without its (all) row)."""
    m = m.copy()
    pop = [_rank(m.threads)]
    if m.views_median.notna().any():
        pop.append(_rank(m.views_median))
    diff = [_rank(m[c]) for c in ("pct_unresolved", "pct_no_reply", "hours_to_first_reply_median") if m[c].notna().any()]
    m["popularity"] = pd.concat(pop, axis=1).mean(axis=1)
    m["difficulty"] = pd.concat(diff, axis=1).mean(axis=1) if diff else np.nan
    m["score"] = np.sqrt(m.popularity * m.difficulty)
    m["is_hotspot"] = (m.popularity >= 0.5) & (m.difficulty >= 0.5)
    return m.sort_values(["score", "threads"], ascending=False, ignore_index=True)


def hotspots(store: Store, by: str = "code", *, codebook: str | None = None, sources: list[str] | None = None,
             min_threads: int = 10, examples: int = 3, period: str = "quarter") -> pd.DataFrame:
    """Every group with at least ``min_threads`` threads, scored and ranked; hotspots first."""
    m = metrics(store, by, codebook=codebook, sources=sources, period=period)
    # Threads set aside as off-subject or left uncoded are not a challenge to act on.
    m = m[(m.group != "(all)") & (m.threads >= min_threads) & ~m.group.isin(["irrelevant", "unclassified"])]
    if m.empty:
        return m.assign(popularity=[], difficulty=[], score=[], is_hotspot=[], fix=[], limit=[], limit_share=[], examples=[])
    m = score(m)
    select_groups(store, by, codebook=codebook, sources=sources, period=period)
    try:
        patterns = _limit_patterns()
        cols = ", ".join(f"avg(regexp_matches(txt, '{p.replace(chr(39), chr(39) * 2)}')::INT) AS \"{cid}\""
                         for cid, p in patterns.items())
        limits = store.query(f"""SELECT grp AS "group", {cols} FROM
                                 (SELECT grp, lower(coalesce(title, '') || ' ' || coalesce(body_text, '')) AS txt FROM sel)
                                 GROUP BY grp""").set_index("group")
        ex = store.query("""SELECT grp AS "group", title, url, views, source, source_id FROM sel WHERE NOT is_resolved
                            QUALIFY row_number() OVER (PARTITION BY grp ORDER BY views DESC NULLS LAST, reply_count DESC NULLS LAST,
                                                       created_at DESC) <= ?""", [examples])
        topic_codes = _topic_codes(store, codebook) if by == "topic" and codebook else {}
    finally:
        store.con.execute("DROP TABLE IF EXISTS sel")
    limit_fix = {c: fix.id for fix in load_codebook(PLAYBOOK).codes for c in fix.applies_to.get(LIMITS, [])}
    fixes, lims, shares, exs = [], [], [], []
    for g in m.group:
        row = limits.loc[g] if g in limits.index else None
        if row is not None and row.max() >= MIN_LIMIT_SHARE:
            lims.append(str(row.idxmax()))
            shares.append(float(row.max()))
        else:
            lims.append(None)
            shares.append(float(row.max()) if row is not None else np.nan)
        if by == "code":
            fix = fix_for(codebook, g)
        elif by == "topic" and g in topic_codes:
            fix = fix_for(codebook, topic_codes[g])
        else:
            fix = limit_fix.get(lims[-1]) if lims[-1] else None
        fixes.append(fix)
        exs.append(ex[ex.group == g].drop(columns="group").to_dict("records"))
    m["fix"], m["limit"], m["limit_share"], m["examples"] = fixes, lims, shares, exs
    m.attrs.update(by=by, codebook=codebook, min_threads=min_threads)
    return m


def _topic_codes(store: Store, codebook: str) -> dict[str, str]:
    """Each topic's most frequent machine code (the topic groups are named 'id: label')."""
    run = latest_classify_run(store, codebook)
    if run is None:
        return {}
    df = store.query(f"""SELECT grp, code FROM (SELECT grp, c.code, count(*) AS n FROM sel s JOIN classification c
                         ON c.source = s.source AND c.source_id = s.source_id AND c.run_id = {int(run)} GROUP BY grp, c.code)
                         QUALIFY row_number() OVER (PARTITION BY grp ORDER BY n DESC, code) = 1""")
    return dict(zip(df.grp, df.code))
