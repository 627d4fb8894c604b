"""The self-contained HTML report: every figure and table inline, no network needed to view it."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup
from plotly.offline import get_plotlyjs

import devquarry
from devquarry.errors import InputError
from devquarry.report import plots
from devquarry.report.data import add_similar, report_data
from devquarry.store import Store


def _safe_url(url) -> str | None:
    """Only http(s) links reach an href: a post's url could be ``javascript:``."""
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return url
    return None


def _num(v, d=1) -> str:
    return "" if v is None or pd.isna(v) else f"{v:,.{d}f}"


# After these, a long identifier may wrap (as a URL does at its slashes); letters and digits stay together.
_SEPARATOR = re.compile(r"(?<=[._/:\-(\[=,])(?=\S)")


def _breakable(text, longer_than: int = 30) -> Markup:
    """Escaped text whose tokens longer than ``longer_than`` characters may wrap after punctuation
    (``openai.error.APIConnectionError:``, ``github:openai/openai-python``): one such token would
    otherwise set the least width of its whole column and push the table off the page."""
    out = []
    for part in re.split(r"(\s+)", "" if text is None else str(text)):
        pieces = _SEPARATOR.split(part) if len(part) > longer_than else [part]
        out.append(Markup("<wbr>").join(Markup.escape(x) for x in pieces))
    return Markup("").join(out)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("devquarry.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["safe_url"] = _safe_url
    env.filters["pct"] = lambda v, d=1: "" if v is None or pd.isna(v) else f"{v:.{d}%}"
    env.filters["num"] = _num
    env.filters["breakable"] = _breakable
    env.filters["date"] = lambda v: "" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d")
    env.filters["ci"] = lambda r, col, scale=100: (
        "" if pd.isna(r.get(f"{col}_lo", float("nan"))) else f"[{r[f'{col}_lo'] * scale:.1f}, {r[f'{col}_hi'] * scale:.1f}]"
    )
    return env


def _distinct_titles(examples) -> list:
    """A topic's example threads with copies of one question (same title) shown once."""
    seen, out = set(), []
    for ex in [] if examples is None else list(examples):
        key = str(ex.get("title") or "").strip().lower()
        if key not in seen:
            seen.add(key)
            out.append(ex)
    return out


def _records(df: pd.DataFrame | None) -> list[dict] | None:
    return None if df is None else df.to_dict("records")


def build_report(
    store: Store, out: str | Path = "report.html", *, title: str = "devquarry report", data: dict | None = None
) -> Path:
    """Write the HTML report and return its path (``data``: `report_data`'s frames, if already computed)."""
    from devquarry.codebooks import codebooks_of

    out = _output_file(out)
    with codebooks_of(store):  # a codebook known only by the copy its labels left in the store
        return _build(store, out, title, data)


def _output_file(out: str | Path) -> Path:
    """The file to write, checked before the minutes spent on the report's data."""
    out = Path(out)
    if out.is_dir():
        raise InputError(out, "is a folder: name the HTML file to write, e.g. --out report.html", field="out")
    for parent in out.parents:  # the nearest that exists must be a folder, to make the rest in
        if parent.exists():
            if not parent.is_dir():
                raise InputError(out, f"{parent} is a file, not a folder", field="out")
            break
    return out


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all, through a temporary file of a fresh name in the
    same folder (``mkstemp``: a planted ``path.tmp`` symlink is never followed), swapped in by
    ``os.replace``; a failure removes the temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide the report from the user's group
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _build(store: Store, out: Path, title: str, data: dict | None) -> Path:
    from devquarry.codebooks import load_codebook
    from devquarry.compare import side_by_side
    from devquarry.hotspots import FIX_SUPPORT, MIN_LIMIT_SHARE, MIN_LIMIT_THREADS
    from devquarry.report.data import MONTHLY_TAIL
    from devquarry.stats import RESAMPLES, SMALL_GROUP

    data = data if data is not None else report_data(store)
    if data.get("hotspots") is not None:
        add_similar(store, data["hotspots"])
    summary = data["summary"]
    figs = {name: plots.fragment(fig) for name, fig in plots.report_figures(data).items()}
    topics = None
    if data["topic_run"] is not None:
        topics = {
            "run_id": data["topic_run"],
            "params": data["topic_params"],
            "scores": data["topic_scores"],
            "table": [dict(t, examples=_distinct_titles(t.get("examples"))) for t in data["topics"].to_dict("records")],
            "themes": data["themes"].to_dict("records"),
            "hotspots": _records(data["topic_hotspots"].head(10)),
        }
    runs = data["runs"].to_dict("records")
    for r in runs:
        r["params"] = json.loads(r["params"]) if r["params"] else {}
        r["versions"] = json.loads(r["versions"]) if r["versions"] else {}
    playbook = {c.id: c for c in load_codebook("playbook").codes}
    limits = {c.id: c.name for c in load_codebook("llm-limits").codes}
    compare = None
    if data.get("compare") is not None:
        wide = side_by_side(data["compare"])
        compare = {"sources": list(data["compare"].source.unique()), "rows": wide.to_dict("records")}
    html = (
        _env()
        .get_template("report.html.j2")
        .render(
            title=title,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            version=devquarry.__version__,
            totals={
                "threads": int(summary["threads"].sum()) if not summary.empty else 0,
                "replies": int(summary["replies_stored"].sum()) if not summary.empty else 0,
                "sources": len(summary),
            },
            summary=summary.to_dict("records"),
            top=data["top"].to_dict("records"),
            figs=figs,
            by=data["by"],
            codebook=data["codebook"],
            period=data["period"],
            by_source=_records(data.get("difficulty_by_source")),
            by_group=_records(data.get("difficulty_by_group")),
            duplicates=(
                data["difficulty_by_source"].attrs.get("duplicates_dropped", 0)
                if data.get("difficulty_by_source") is not None
                else 0
            ),
            trends=_records(data.get("trends")),
            left_out=data.get("left_out") or {},
            fix_support=FIX_SUPPORT,
            min_limit_share=MIN_LIMIT_SHARE,
            min_limit_threads=MIN_LIMIT_THREADS,
            monthly_tail=MONTHLY_TAIL,
            compare=compare,
            hotspots=_records(data.get("hotspots")),
            playbook=playbook,
            limits=limits,
            topics=topics,
            taxonomy=data.get("taxonomy"),
            reproduce=data.get("reproduce") or [],
            runs=runs,
            small_group=SMALL_GROUP,
            resamples=RESAMPLES,
            plotly_js=get_plotlyjs(),
        )
    )
    return write_text_atomic(out, html)
