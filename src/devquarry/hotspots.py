"""Hotspots: groups that are both popular and hard, each with the fix the playbook suggests, the
LLM limit its threads talk about, and example unresolved threads.

Score (stated in the report's methods section):
- popularity P = mean percentile rank, among the groups, of the thread count and (where the
  source has views) the median views;
- difficulty D = mean percentile rank of the share unresolved, the share with no reply and the
  median hours to a first reply (each where known);
- score = sqrt(P * D), in (0, 1]: high only when both are; a group is a hotspot when P >= 0.5
  and D >= 0.5 (in the upper half on both).
Fix: shown only with support, else none ("no fix suggested"). A code takes the ``playbook`` fix
whose ``applies_to`` lists it (a category: the fix at least half of its subcategories take). Any
other group (a topic, a forum category, a source) takes the fix its threads' codes map to when
those threads are at least ``FIX_SUPPORT`` of the group's threads; without codes, the fix of its
LLM limits on the same terms. A topic of quota questions, a third coded "chat" and the rest
mostly off-subject, thus gets no fix rather than prompt engineering.
LLM limit: the ``llm-limits`` code whose keywords (whole words, any case) occur in the largest
share of the group's threads (title and body), shown only when the evidence is strong (at least
``MIN_LIMIT_SHARE`` of the threads and ``MIN_LIMIT_THREADS`` threads) and not contradicted: a
thread about the provider's quotas, billing or rate limits (``PROVIDER_TALK``) is no evidence of
a limit of the model ("tokens per minute" is a rate limit, not a context limit), and a group
with more such threads than evidence gets no limit.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from devquarry.codebooks import load_codebook
from devquarry.errors import InputError
from devquarry.metrics import code_grouping, metrics, resolve_codes, select_groups
from devquarry.store import Store

PLAYBOOK = "playbook"
LIMITS = "llm-limits"
FIX_SUPPORT = 0.5
MIN_LIMIT_SHARE = 0.10
MIN_LIMIT_THREADS = 5
PROVIDER_TALK = (
    r"\b(quotas?|billing|rate[ _-]?limit\w*|ratelimit\w*|insufficient_quota|429|tokens per minute|"
    r"requests per minute|credits?|credit card|payments?|free trial|paid account|paid plan)\b"
)
_OFF = ("irrelevant", "unclassified")


def _fix_support(codebook: str, code: str) -> tuple[str | None, float]:
    """The playbook fix a code maps to and its support: 1 for a direct mapping; for a category,
    the share of its subcategories that map to the fix most of them take."""
    pb = load_codebook(PLAYBOOK)
    direct = {c: fix.id for fix in pb.codes for c in fix.applies_to.get(codebook, [])}
    if code in direct:
        return direct[code], 1.0
    try:
        cb = load_codebook(codebook)
        kids = [c.id for c in cb.codes if c.parent and cb.ancestor(c.id, cb.code(code).level) == code and c.id != code]
    except Exception:  # an unknown codebook or code maps to nothing
        return None, 0.0
    votes = Counter(direct[k] for k in kids if k in direct)
    if not votes:
        return None, 0.0
    fix, n = votes.most_common(1)[0]
    return fix, n / len(kids)


def fix_for(codebook: str, code: str) -> str | None:
    """The playbook fix for a code of a codebook (a category: the fix at least half of its subcategories take)."""
    fix, support = _fix_support(codebook, code)
    return fix if support >= FIX_SUPPORT else None


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


def _sql_re(pattern: str) -> str:
    return pattern.replace("'", "''")


def _limit_evidence(store: Store, limit_fix: dict[str, str]) -> pd.DataFrame:
    """Per group (from ``sel``): threads, the share talking about the provider's quotas, billing or
    rate limits, per LLM limit the share of threads that name it and do not talk about those, and
    per fix (``fix:ID``) the share naming any limit that maps to it, on the same terms."""
    patterns = _limit_patterns()
    cols = [f"avg((regexp_matches(txt, '{_sql_re(p)}') AND NOT provider)::INT) AS \"{cid}\"" for cid, p in patterns.items()]
    for fix in sorted(set(limit_fix.values())):
        named = " OR ".join(
            f"regexp_matches(txt, '{_sql_re(patterns[c])}')" for c, f in limit_fix.items() if f == fix and c in patterns
        )
        cols.append(f'avg((({named}) AND NOT provider)::INT) AS "fix:{fix}"')
    return store.query(f"""SELECT grp AS "group", count(*) AS n, avg(provider::INT) AS provider_talk, {", ".join(cols)} FROM
                           (SELECT grp, txt, regexp_matches(txt, '{_sql_re(PROVIDER_TALK)}') AS provider FROM
                            (SELECT grp, lower(coalesce(title, '') || ' ' || coalesce(body_text, '')) AS txt FROM sel))
                           GROUP BY grp""").set_index("group")


def _pick_limit(row: pd.Series | None) -> tuple[str | None, float]:
    """The group's LLM limit when its evidence is strong and not contradicted, with the best share either way."""
    if row is None:
        return None, np.nan
    shares = row[[c for c in row.index if c not in ("n", "provider_talk") and not c.startswith("fix:")]]
    best, share = str(shares.idxmax()), float(shares.max())
    strong = share >= MIN_LIMIT_SHARE and share * row.n >= MIN_LIMIT_THREADS
    return (best if strong and share > row.provider_talk else None), share


def _code_fix_support(store: Store, codebook: str, labels: str | None, run: int | None) -> pd.DataFrame | None:
    """Per group (from ``sel``) and fix: the share of the group's threads with a code that maps to
    the fix (the codes metrics would group by: ``run``, rater ``labels``, else the latest run, else
    the hand labels)."""
    try:
        codes = resolve_codes(store, codebook, labels=labels, run=run)
    except InputError:  # no codes of this codebook in the store: nothing supports a fix
        return None
    join, params = codes.join()
    coded = store.query(f"SELECT DISTINCT t.grp, t.source, t.source_id, c.code FROM sel t {join}", params)
    n = store.query("SELECT grp, count(DISTINCT (source, source_id)) AS n FROM sel GROUP BY grp").set_index("grp").n
    coded = coded[~coded.code.isin(_OFF)]
    coded["fix"] = coded.code.map({c: fix_for(codes.codebook, c) for c in coded.code.unique()})
    coded = coded.dropna(subset=["fix"]).drop_duplicates(["grp", "source", "source_id", "fix"])
    counts = coded.groupby(["grp", "fix"]).size().unstack(fill_value=0)
    return counts.div(n.reindex(counts.index), axis=0)


def _best(support: pd.Series | None) -> tuple[str | None, float]:
    if support is None or support.empty or not support.notna().any():
        return None, np.nan
    fix, share = str(support.idxmax()), float(support.max())
    return (fix if share >= FIX_SUPPORT else None), share


def hotspots(
    store: Store,
    by: str = "code",
    *,
    codebook: str | None = None,
    sources: list[str] | None = None,
    min_threads: int = 10,
    examples: int = 3,
    period: str = "quarter",
    labels: str | None = None,
    run: int | None = None,
    count: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> pd.DataFrame:
    """Every group with at least ``min_threads`` threads, scored and ranked; hotspots first.
    ``labels``/``run`` choose the codes of ``by="code"`` as in ``metrics``; without a codebook the
    store's own is used (``metrics.code_grouping``, as the command and the report do), the choice in
    ``attrs["grouping_note"]``. ``since``/``until`` as in ``metrics``."""
    by, codebook, note = code_grouping(store, by, codebook)
    window = {"since": since, "until": until}
    m = metrics(store, by, codebook=codebook, sources=sources, period=period, labels=labels, run=run, count=count, **window)
    # Threads set aside as off-subject or left uncoded are not a challenge to act on.
    m = m[(m.group != "(all)") & (m.threads >= min_threads) & ~m.group.isin(_OFF)]
    if m.empty:
        return m.assign(
            popularity=[],
            difficulty=[],
            score=[],
            is_hotspot=[],
            fix=[],
            fix_support=[],
            fix_basis=[],
            limit=[],
            limit_share=[],
            examples=[],
        )
    m = score(m)
    limit_fix = {c: fix.id for fix in load_codebook(PLAYBOOK).codes for c in fix.applies_to.get(LIMITS, [])}
    select_groups(store, by, codebook=codebook, sources=sources, period=period, labels=labels, run=run, count=count, **window)
    try:
        evidence = _limit_evidence(store, limit_fix)
        ex = store.query(
            """SELECT grp AS "group", title, url, views, source, source_id FROM sel WHERE NOT is_resolved
                            QUALIFY row_number() OVER (PARTITION BY grp ORDER BY views DESC NULLS LAST, reply_count DESC NULLS LAST,
                                                       created_at DESC) <= ?""",
            [examples],
        )
        code_support = _code_fix_support(store, codebook, labels, run) if codebook and by != "code" else None
    finally:
        store.con.execute("DROP TABLE IF EXISTS sel")
        store.con.execute("DROP TABLE IF EXISTS sel_threads")
    rows = []
    for g in m.group:
        ev = evidence.loc[g] if g in evidence.index else None
        limit, share = _pick_limit(ev)
        if by == "code":  # support: 1 for a code's own mapping, else the share of its subcategories
            fix, support = _fix_support(codebook, g)
            fix, basis = (fix if support >= FIX_SUPPORT else None), ("code" if support == 1 else "subcategories")
        elif code_support is not None:
            fix, support = _best(code_support.loc[g] if g in code_support.index else None)
            basis = "threads"
        else:  # no codes: the fixes of the limits its threads name
            fix, support = _best(
                None if ev is None else ev[[c for c in ev.index if c.startswith("fix:")]].rename(lambda c: c[4:])
            )
            basis = "threads"
        rows.append(
            {
                "fix": fix,
                "fix_support": support,
                "fix_basis": basis,
                "limit": limit,
                "limit_share": share,
                "examples": ex[ex.group == g].drop(columns="group").to_dict("records"),
            }
        )
    # The columns even when no group is left (every thread of a coding run unclassified, say).
    extra = pd.DataFrame(rows, index=m.index, columns=["fix", "fix_support", "fix_basis", "limit", "limit_share", "examples"])
    said = {k: m.attrs[k] for k in ("codes_from", "count", "rows") if k in m.attrs}
    m = pd.concat([m, extra], axis=1)
    m.attrs.update(
        **said,
        by=by,
        codebook=codebook,
        min_threads=min_threads,
        fix_support=FIX_SUPPORT,
        min_limit_share=MIN_LIMIT_SHARE,
        min_limit_threads=MIN_LIMIT_THREADS,
    )
    m.attrs["grouping_note"] = note
    return m
