"""The self-contained HTML report: every figure and table inline, no network needed to view it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd
from plotly.offline import get_plotlyjs

import devquarry
from devquarry.info import info
from devquarry.report import plots
from devquarry.store import Store

MONTHLY_SQL = """
SELECT source, date_trunc('month', created_at) AS month, count(*) AS threads
FROM threads WHERE created_at IS NOT NULL GROUP BY ALL ORDER BY source, month
"""
TOP_SQL = """
SELECT source, title, url, views, reply_count, is_resolved, created_at
FROM threads
QUALIFY row_number() OVER (PARTITION BY source ORDER BY views DESC NULLS LAST, reply_count DESC, created_at) <= ?
ORDER BY source, views DESC NULLS LAST
"""


def _safe_url(url) -> str | None:
    """Only http(s) links reach an href: a post's url could be ``javascript:``."""
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return url
    return None


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("devquarry.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["safe_url"] = _safe_url
    env.filters["pct"] = lambda v: "" if v is None or pd.isna(v) else f"{v:.1%}"
    env.filters["num"] = lambda v, d=1: "" if v is None or pd.isna(v) else f"{v:,.{d}f}"
    env.filters["date"] = lambda v: "" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d")
    return env


def taxonomy_table(store: Store) -> dict | None:
    """The latest classify run: machine codes per code beside hand-labelled and published shares."""
    from devquarry.codebooks import load_codebook

    row = store.con.execute("SELECT run_id, params FROM run WHERE command = 'classify' ORDER BY run_id DESC LIMIT 1").fetchone()
    if not row:
        return None
    run_id, params = row[0], json.loads(row[1])
    cb = load_codebook(params["codebook"])
    machine = store.query("""SELECT code, count(DISTINCT (source, source_id)) AS threads FROM classification
                             WHERE run_id = ? GROUP BY code""", [run_id]).set_index("code").threads
    hand = store.query("""SELECT code, count(*) AS threads FROM label WHERE codebook = ? AND rank = 0 AND status = 'coded'
                          GROUP BY code""", [cb.id]).set_index("code").threads
    level = params.get("level") or 0
    rows = []
    for c in cb.at_level(level):
        rows.append({"code": c.id, "name": c.name, "machine": int(machine.get(c.id, 0)), "hand": int(hand.get(c.id, 0)),
                     "published": c.share / 100 if c.share is not None else None})
    total_m = sum(machine) or 1
    total_h = sum(r["hand"] for r in rows) or 1
    for r in rows:
        r["machine_share"] = r["machine"] / total_m
        r["hand_share"] = r["hand"] / total_h
    return {"run_id": run_id, "codebook": cb.id, "name": cb.name, "method": params.get("method"), "rows": rows,
            "threads": int(store.con.execute("SELECT count(DISTINCT (source, source_id)) FROM classification WHERE run_id = ?", [run_id]).fetchone()[0])}


def report_data(store: Store, top_n: int = 5) -> dict:
    """Everything the report shows, as DataFrames (usable from a notebook too)."""
    from devquarry import topics as tp

    data = {
        "summary": info(store),
        "monthly": store.query(MONTHLY_SQL),
        "top": store.query(TOP_SQL, [top_n]),
        "runs": store.query("SELECT run_id, command, params, versions, counts, started_at, ended_at FROM run ORDER BY run_id"),
        "topic_run": None,
    }
    data["taxonomy"] = taxonomy_table(store)
    has_topics = store.con.execute("SELECT count(*) FROM run WHERE command = 'topics'").fetchone()[0]
    if has_topics:
        run_id = tp.latest_topic_run(store)
        data["topic_run"] = run_id
        data["topics"] = tp.topic_table(store, run_id)
        data["themes"] = tp.theme_table(store, run_id)
        data["topics_over_time"] = tp.topics_over_time(store, run_id, period="quarter")
        row = store.con.execute("SELECT params, counts FROM run WHERE run_id = ?", [run_id]).fetchone()
        data["topic_params"], data["topic_scores"] = json.loads(row[0]), json.loads(row[1])
    return data


def build_report(store: Store, out: str | Path = "report.html", *, title: str = "devquarry report") -> Path:
    """Write the HTML report and return its path."""
    data = report_data(store)
    summary = data["summary"]
    figures = []
    if not data["monthly"].empty:
        figures.append(plots.threads_per_month(data["monthly"]))
    if not summary.empty:
        figures.append(plots.resolved_share(summary))
    topics = None
    if data["topic_run"] is not None:
        if not data["topics_over_time"].empty:
            figures_topics = plots.topics_over_time(data["topics_over_time"])
        else:
            figures_topics = None
        topics = {
            "run_id": data["topic_run"],
            "params": data["topic_params"],
            "scores": data["topic_scores"],
            "table": data["topics"].to_dict("records"),
            "themes": data["themes"].to_dict("records"),
            "figure": figures_topics,
        }
    runs = data["runs"].to_dict("records")
    for r in runs:
        r["params"] = json.loads(r["params"]) if r["params"] else {}
        r["versions"] = json.loads(r["versions"]) if r["versions"] else {}
    html = _env().get_template("report.html.j2").render(
        title=title,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=devquarry.__version__,
        totals={
            "threads": int(summary["threads"].sum()) if not summary.empty else 0,
            "replies": int(summary["replies"].sum()) if not summary.empty else 0,
            "sources": len(summary),
        },
        summary=summary.to_dict("records"),
        top=data["top"].to_dict("records"),
        figures=figures,
        topics=topics,
        taxonomy=data["taxonomy"],
        runs=runs,
        plotly_js=get_plotlyjs(),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
