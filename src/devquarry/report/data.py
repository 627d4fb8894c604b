"""What the report shows, as DataFrames: usable from a notebook, and the same frames that
``devquarry tables`` writes for papers."""

from __future__ import annotations

import json

import pandas as pd

from devquarry.info import info
from devquarry.store import Store

MONTHLY_SQL = """
SELECT source, date_trunc('month', created_at) AS month, count(*) AS threads
FROM threads WHERE created_at IS NOT NULL GROUP BY ALL ORDER BY source, month
"""
# Over ``sel`` (metrics.select_groups by source): copies of a question are merged there, so the
# Stack Overflow export's five copies of one 406k-view question show once.
TOP_SQL = """
SELECT source, title, url, views, reply_count, is_resolved, created_at
FROM sel
QUALIFY row_number() OVER (PARTITION BY source ORDER BY views DESC NULLS LAST, reply_count DESC, created_at) <= ?
ORDER BY source, views DESC NULLS LAST
"""
# Groups that are no challenge of the codebook: left out of the per-code tables and charts.
OFF_SUBJECT = ("irrelevant", "unclassified")
# The monthly chart leaves out at most this share of the threads as a leading tail.
MONTHLY_TAIL = 0.01


def monthly_span(monthly: pd.DataFrame, tail: float = MONTHLY_TAIL) -> tuple[pd.DataFrame, dict]:
    """The months the monthly chart shows, and what it leaves out.

    The span starts with the last unbroken run of months with threads (all sources together), or
    earlier where the months before that run hold more than ``tail`` of the threads: then at the
    latest month before which at most ``tail`` of them lie. A couple of stray early questions (2010
    in a corpus that starts in 2020) would otherwise stretch the axis over a decade of nothing.
    Inside the span each source's months from its first to its last count zero where it had no
    thread, so no line is drawn across an empty month. Returns (source, month, threads) and a note:
    start, end, the threads left out and the first month they fall in."""
    note = {"start": None, "end": None, "left_out": 0, "left_out_share": 0.0, "first": None, "threads": 0}
    if monthly.empty:
        return monthly, note
    monthly = monthly.assign(month=pd.to_datetime(monthly.month, utc=True).dt.tz_localize(None))
    totals = monthly.groupby("month").threads.sum().sort_index()
    months = pd.date_range(totals.index.min(), totals.index.max(), freq="MS")
    run = len(months)
    while run > 0 and months[run - 1] in totals.index:
        run -= 1
    total = int(totals.sum())
    before = totals.cumsum() - totals  # threads in the months before each month
    start = min(months[run], before[before <= tail * total].index.max())
    frames = []
    for source, grp in monthly[monthly.month >= start].groupby("source", sort=False):
        span = pd.date_range(grp.month.min(), grp.month.max(), freq="MS")
        frames.append(
            grp.set_index("month").threads.reindex(span, fill_value=0).rename_axis("month").reset_index().assign(source=source)
        )
    kept = pd.concat(frames, ignore_index=True)[["source", "month", "threads"]]
    left = int(totals[totals.index < start].sum())
    note.update(
        start=start,
        end=totals.index.max(),
        left_out=left,
        left_out_share=left / total,
        threads=total,
        first=totals.index.min() if left else None,
    )
    return kept, note


def most_viewed(store: Store, top_n: int = 5) -> pd.DataFrame:
    """The ``top_n`` most viewed threads per source, copies of a question merged as metrics merges them."""
    from devquarry.metrics import select_groups

    select_groups(store, "source")
    try:
        return store.query(TOP_SQL, [top_n])
    finally:
        store.con.execute("DROP TABLE IF EXISTS sel")
        store.con.execute("DROP TABLE IF EXISTS sel_threads")


def _drop_off_subject(df: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if df is None or "group" not in df else df[~df.group.isin(OFF_SUBJECT)].reset_index(drop=True)


def report_codebook(store: Store) -> str | None:
    """The codebook the report groups by: the latest classify run's, else the most hand-labelled one."""
    row = store.con.execute("SELECT codebook FROM classification ORDER BY run_id DESC LIMIT 1").fetchone()
    if row:
        return row[0]
    row = store.con.execute("SELECT codebook, count(*) n FROM label GROUP BY 1 ORDER BY n DESC LIMIT 1").fetchone()
    return row[0] if row else None


def report_grouping(store: Store) -> tuple[str, str | None]:
    """(by, codebook): codes where a codebook applies, else forum categories or tags, else sources."""
    cb = report_codebook(store)
    if cb:
        return "code", cb
    has_cat = store.con.execute("SELECT count(DISTINCT category) FROM thread WHERE category IS NOT NULL").fetchone()[0]
    return ("category", None) if has_cat else ("source", None)


def taxonomy_table(store: Store) -> dict | None:
    """Shares per code: the latest classify run's machine codes (if any) beside the hand labels in
    the store and the shares the codebook publishes."""
    from devquarry.codebooks import load_codebook
    from devquarry.labeling import label_shares

    row = store.con.execute("SELECT run_id, params FROM run WHERE command = 'classify' ORDER BY run_id DESC LIMIT 1").fetchone()
    if row:
        run_id, params = row[0], json.loads(row[1])
        name = params["codebook"]
    else:
        name = report_codebook(store)
        if not name:
            return None
        run_id, params = None, {}
    from devquarry.classify import counting

    cb = load_codebook(name)
    level = params.get("level") or 0
    how = counting(cb)
    # Codes deeper than the table's level (a forum label "C.2", or a machine code at subcategory
    # level) count for their ancestor: a thread once per code at this level.
    codes = store.query(
        "SELECT DISTINCT source, source_id, code, coalesce(rank, 0) AS rank FROM classification WHERE run_id = ?", [run_id]
    )
    known = {c.id for c in cb.codes}
    codes["code"] = [cb.ancestor(c, level) if c in known else c for c in codes.code]
    any_code = codes[["source", "source_id", "code"]].drop_duplicates().groupby("code").size()
    machine = (
        codes[codes["rank"] == 0].drop_duplicates(["source", "source_id"]).groupby("code").size()
        if how == "primary"
        else any_code
    )
    hand = pd.Series(dtype=int)
    if store.con.execute("SELECT count(*) FROM label WHERE codebook = ?", [cb.id]).fetchone()[0]:
        hand = label_shares(store, cb.id, level).set_index("code").threads
    rows = []
    for c in cb.at_level(level):
        rows.append(
            {
                "code": c.id,
                "name": c.name,
                "machine": int(machine.get(c.id, 0)),
                "machine_any": int(any_code.get(c.id, 0)),
                "hand": int(hand.get(c.id, 0)),
                "published": c.share / 100 if c.share is not None else None,
            }
        )
    total_m = sum(r["machine"] for r in rows)
    total_h = sum(r["hand"] for r in rows) or 1
    for r in rows:
        r["machine_share"] = r["machine"] / total_m if total_m else None
        r["hand_share"] = r["hand"] / total_h
    threads = store.con.execute(
        "SELECT count(DISTINCT (source, source_id)) FROM classification WHERE run_id = ?", [run_id]
    ).fetchone()[0]
    return {
        "run_id": run_id,
        "codebook": cb.id,
        "name": cb.name,
        "method": params.get("method"),
        "rows": rows,
        "counting": how,
        "threads": int(threads),
        "irrelevant": int(machine.get("irrelevant", 0)),
        "unclassified": int(machine.get("unclassified", 0)),
    }


def report_distributions(store: Store, measures: tuple[str, ...] = ("replies", "views")) -> dict[str, pd.DataFrame]:
    """Per source, each measure's distribution over its default bins (``distributions.DEFAULT_BINS``:
    the forum study's), for the measures some thread has a value of."""
    from devquarry.distributions import distribution

    out = {}
    for measure in measures:
        df = distribution(store, measure, by="source")
        if df.attrs["threads"] > df.attrs["unknown"]:
            out[measure] = df
    return out


def reproductions(store: Store) -> list[dict]:
    """The shipped studies this store can be set beside, each as ``reproduce`` returns it: a study
    whose ``sources`` name a source of the store (compared on those sources), or whose codebook the
    store holds codes for (on the whole store); kept only where at least one figure has a number."""
    from fnmatch import fnmatch

    from devquarry.errors import InputError
    from devquarry.metrics import store_codebooks
    from devquarry.reproduce import display_rows, reproduce
    from devquarry.studies import list_studies, load_study

    held = set(store_codebooks(store))
    sources = [r[0] for r in store.con.execute("SELECT DISTINCT source FROM thread ORDER BY 1").fetchall()]
    out = []
    for study_id in list_studies().id:
        study = load_study(study_id)
        matching = [s for s in sources if any(fnmatch(s, p) for p in study.sources)]
        if not matching and study.codebook not in held:
            continue
        try:
            df = reproduce(store, study, source=matching or None)
        except InputError:  # e.g. a codebook held under an id that no longer loads: nothing to compare
            continue
        if df.ours.notna().any():
            out.append(
                {"study": study, "frame": df, "rows": display_rows(df, flag_missing=True).to_dict("records"), "sources": matching}
            )
    return out


def report_data(store: Store, top_n: int = 5, period: str = "quarter") -> dict:
    """Everything the report shows."""
    from devquarry import topics as tp
    from devquarry.compare import compare
    from devquarry.hotspots import hotspots
    from devquarry.metrics import metrics
    from devquarry.trends import series, trends

    by, codebook = report_grouping(store)
    monthly, monthly_note = monthly_span(store.query(MONTHLY_SQL))
    data = {
        "summary": info(store),
        "monthly": monthly,
        "monthly_note": monthly_note,
        "top": most_viewed(store, top_n),
        "runs": store.query("SELECT run_id, command, params, versions, counts, started_at, ended_at FROM run ORDER BY run_id"),
        "topic_run": None,
        "by": by,
        "codebook": codebook,
        "period": period,
    }
    n = store.con.execute("SELECT count(*) FROM thread").fetchone()[0]
    if n == 0:
        return data
    data["difficulty_by_source"] = metrics(store, "source")
    group = metrics(store, by, codebook=codebook) if by != "source" else None
    data["left_out"] = {} if group is None else {g: int(n) for g, n in zip(group.group, group.threads) if g in OFF_SUBJECT}
    data["difficulty_by_group"] = _drop_off_subject(group)
    data["trends"] = _drop_off_subject(trends(store, by, codebook=codebook, period=period))
    data["series"] = _drop_off_subject(series(store, by, codebook=codebook, period=period))
    data["taxonomy"] = taxonomy_table(store)
    data["distributions"] = report_distributions(store)
    data["reproduce"] = reproductions(store)
    data["compare"] = None
    if codebook:
        long = compare(store, codebook)
        if long.source.nunique() > 1:
            data["compare"] = long
    data["hotspots"] = hotspots(store, by, codebook=codebook) if by != "source" else None
    if store.con.execute("SELECT count(*) FROM run WHERE command = 'topics'").fetchone()[0]:
        run_id = tp.latest_topic_run(store)
        data["topic_run"] = run_id
        data["topics"] = tp.topic_table(store, run_id)
        data["themes"] = tp.theme_table(store, run_id)
        data["topics_over_time"] = tp.topics_over_time(store, run_id, period=period)
        data["topic_hotspots"] = hotspots(store, "topic", codebook=codebook)
        row = store.con.execute("SELECT params, counts FROM run WHERE run_id = ?", [run_id]).fetchone()
        data["topic_params"], data["topic_scores"] = json.loads(row[0]), json.loads(row[1])
    return data


def add_similar(store: Store, hot: pd.DataFrame, k: int = 3) -> None:
    """Give each example thread of each hotspot its ``k`` closest resolved threads (the ask index)."""
    from devquarry.ask import similar_resolved

    hot_rows = hot[hot.is_hotspot.astype(bool)]  # an empty object column would select columns, not rows
    examples = [e for ex in hot_rows.examples for e in ex]
    if not examples or not store.con.execute("SELECT count(*) FROM threads WHERE is_resolved").fetchone()[0]:
        return
    pairs = [(e["source"], e["source_id"]) for e in examples]
    bodies = store.query(
        f"""SELECT source, source_id, title, body_text FROM thread
                             WHERE (source, source_id) IN ({", ".join("(?, ?)" for _ in pairs)})""",
        [x for p in pairs for x in p],
    )
    similar = similar_resolved(store, bodies.to_dict("records"), k=k)
    for ex in hot_rows.examples:
        for e in ex:
            e["similar"] = similar.get(f"{e['source']}|{e['source_id']}", [])
