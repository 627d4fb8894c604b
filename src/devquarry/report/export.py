"""The report's tables for papers (CSV, Markdown, LaTeX) and its figures as PNG or SVG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from devquarry.errors import InputError
from devquarry.metrics import HEADLINE_COLUMNS
from devquarry.safe_text import sheet_frame
from devquarry.store import Store

FORMATS = {"csv": ".csv", "markdown": ".md", "latex": ".tex"}
FIGURE_FORMATS = ("png", "svg")

_TRENDS = [
    "group",
    "threads",
    "periods",
    "first_period",
    "last_period",
    "tau",
    "p_value",
    "slope",
    "slope_lo",
    "slope_hi",
    "trend",
]
_HOTSPOTS = [
    "group",
    "threads",
    "pct_unresolved",
    "popularity",
    "difficulty",
    "score",
    "is_hotspot",
    "fix",
    "fix_support",
    "limit",
    "limit_share",
]


# A reproduction table for a paper: what each side says and how far apart they are.
REPRODUCE_COLUMNS = [
    "figure",
    "ref",
    "item",
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
]


def _cols(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return df[[c for c in cols if c in df.columns]].reset_index(drop=True)


def paper_tables(data: dict) -> dict[str, pd.DataFrame]:
    """The report's tables, by name, from ``report_data``."""
    from devquarry.compare import side_by_side

    t = {"overview": data["summary"]}
    if data.get("difficulty_by_source") is not None:
        t["difficulty_by_source"] = _cols(data["difficulty_by_source"], HEADLINE_COLUMNS)
    if data.get("difficulty_by_group") is not None:
        t[f"difficulty_by_{data['by']}"] = _cols(data["difficulty_by_group"], HEADLINE_COLUMNS)
    if data.get("trends") is not None:
        t["trends"] = _cols(data["trends"], _TRENDS)
    if data.get("taxonomy"):
        t["taxonomy_shares"] = pd.DataFrame(data["taxonomy"]["rows"])[
            ["code", "name", "machine", "machine_share", "machine_any", "hand", "hand_share", "published"]
        ]
    if data.get("compare") is not None:
        t["cross_platform"] = side_by_side(data["compare"])
    if data.get("hotspots") is not None:
        t["hotspots"] = _cols(data["hotspots"], _HOTSPOTS)
    for measure, dist in (data.get("distributions") or {}).items():
        t[f"{measure}_distribution"] = dist.drop(columns=["ci_method"]).reset_index(drop=True)
    for rep in data.get("reproduce") or []:
        t[f"reproduce_{rep['study'].id}"] = _cols(rep["frame"], REPRODUCE_COLUMNS)
    if data.get("topic_run") is not None:
        topics = data["topics"].copy()
        topics["keywords"] = topics["keywords"].map(lambda k: ", ".join(list(k)[:8]))
        t["topics"] = topics[[c for c in ("topic_id", "size", "share", "keywords", "theme") if c in topics]]
        t["topic_hotspots"] = _cols(data["topic_hotspots"], _HOTSPOTS)
    return t


def _write(df: pd.DataFrame, path: Path, fmt: str) -> None:
    df = df.copy()
    for c in df.columns:  # lists and arrays as text, so every format can hold them
        if df[c].map(lambda v: isinstance(v, (list, tuple)) or hasattr(v, "tolist") and not isinstance(v, str)).any():
            df[c] = df[c].map(lambda v: ", ".join(map(str, list(v))) if v is not None and not isinstance(v, str) else v)
    # Cells hold forum text: in a sheet '=HYPERLINK(...)' is a live formula, in Markdown '|' adds a
    # column and '<script>' runs; numbers are data and stay as they are.
    if fmt == "csv":
        sheet_frame(df).to_csv(path, index=False)
    elif fmt == "markdown":
        path.write_text(_markdown_frame(df).to_markdown(index=False, floatfmt=".3f", missingval="") + "\n", encoding="utf-8")
    else:
        path.write_text(
            df.to_latex(index=False, float_format="%.3f", escape=True, na_rep="", longtable=len(df) > 40), encoding="utf-8"
        )


def _markdown_frame(df: pd.DataFrame) -> pd.DataFrame:
    from devquarry.safe_text import markdown_cell

    df = df.copy()
    for c in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
            df[c] = df[c].map(lambda v: markdown_cell(v) if isinstance(v, str) else v)
    df.columns = [markdown_cell(c) for c in df.columns]
    return df


def write_tables(store: Store, out: str | Path, fmt: str = "csv", data: dict | None = None) -> list[Path]:
    """Write every table of the report into ``out`` in one format; return the paths (``data``:
    ``report_data``'s result, when the caller has it already)."""
    from devquarry.report.data import report_data

    if fmt not in FORMATS:
        raise InputError(None, f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}", field="format")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # --out names a file (or a path through one)
        raise InputError(out, "is a file, not a folder: name a folder to write the tables into", field="out") from None
    paths = []
    for name, df in paper_tables(data or report_data(store)).items():
        path = out / f"{name}{FORMATS[fmt]}"
        _write(df, path, fmt)
        paths.append(path)
    return paths


def write_figures(store: Store, out: str | Path, fmt: str = "png", scale: float = 2.0, data: dict | None = None) -> list[Path]:
    """Write every figure of the report as PNG or SVG (kaleido, with the system's Chromium)."""
    import plotly.io as pio

    from devquarry.extras import require
    from devquarry.report.data import report_data
    from devquarry.report.plots import report_figures

    if fmt not in FIGURE_FORMATS:
        raise InputError(None, f"unknown figure format {fmt!r}; use png or svg", field="figures")
    require("kaleido", "figures", "writing PNG and SVG figures")  # plotly renders images through it
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = report_figures(data or report_data(store))
    paths = [out / f"{name}.{fmt}" for name in figs]
    # One browser session renders them all (starting Chromium per figure costs seconds each).
    pio.write_images(
        list(figs.values()),
        [str(p) for p in paths],
        format=fmt,
        width=1000,
        height=[f.layout.height or 450 for f in figs.values()],
        scale=scale if fmt == "png" else 1,
    )
    return paths
