"""metrics, trends, compare, hotspots and tables: the figures of the studies, on any store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from devquarry.cli.common import CsvOpt, DbOpt, JsonOpt, TableOpt, _store, app, emit, out

ByOpt = Annotated[str, typer.Option(help="Group by source, category (forum category), code (a codebook's), topic or period.")]
CodebookOpt = Annotated[Optional[str], typer.Option(help="With --by code: the codebook (latest machine codes, else hand labels).")]
PeriodOpt = Annotated[str, typer.Option(help="month, quarter or year.")]
SourceOpt = Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")]

_METRIC_COLUMNS = ["group", "threads", "share", "views_median", "pct_no_reply", "pct_under_3_replies", "pct_unresolved",
                   "pct_unresolved_lo", "pct_unresolved_hi", "hours_to_first_reply_median", "hours_to_first_reply_mean",
                   "hours_to_accepted_median", "days_to_close_median"]


@app.command()
def metrics(
    by: ByOpt = "source",
    codebook: CodebookOpt = None,
    period: PeriodOpt = "quarter",
    source: SourceOpt = None,
    keep_duplicates: Annotated[bool, typer.Option(help="Count copies of a question (same source, title and time) apart.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Popularity and difficulty per group: threads, views, % no reply, % under 3 replies, % unresolved (95% interval), hours to first reply and to an accepted answer."""
    from devquarry.metrics import metrics as run_metrics

    with _store(db, read_only=True) as store:
        df = run_metrics(store, by, codebook=codebook, period=period, sources=source, dedupe=not keep_duplicates)
    if not as_json and not as_csv:
        df = df[[c for c in _METRIC_COLUMNS if c in df.columns]]
    emit(df, as_json=as_json, as_csv=as_csv)


@app.command()
def trends(
    by: ByOpt = "source",
    codebook: CodebookOpt = None,
    period: PeriodOpt = "quarter",
    measure: Annotated[str, typer.Option(help="threads (new threads per period) or pct_unresolved.")] = "threads",
    source: SourceOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Trend per group over periods: Mann-Kendall test of its direction and Sen's slope with its 95% interval."""
    from devquarry.trends import trends as run_trends

    with _store(db, read_only=True) as store:
        df = run_trends(store, by, codebook=codebook, period=period, sources=source, measure=measure)
    emit(df, as_json=as_json, as_csv=as_csv, title=f"{measure} per {period}")


@app.command()
def compare(
    codebook: Annotated[str, typer.Option(help="The codebook whose codes are compared.")],
    source: SourceOpt = None,
    long: Annotated[bool, typer.Option("--long", help="One row per code and source, with intervals.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """One codebook's codes side by side across sources: threads, share and % unresolved per source."""
    from devquarry.compare import compare as run_compare, side_by_side

    with _store(db, read_only=True) as store:
        df = run_compare(store, codebook, sources=source)
    emit(df if long else side_by_side(df), as_json=as_json, as_csv=as_csv)


@app.command()
def hotspots(
    by: Annotated[str, typer.Option(help="code (needs --codebook), topic, category or source.")] = "code",
    codebook: Annotated[Optional[str], typer.Option(help="Codebook of the codes (for --by topic: names each topic's fix).")] = None,
    source: SourceOpt = None,
    min_threads: Annotated[int, typer.Option(help="Leave out groups smaller than this.")] = 10,
    examples: Annotated[int, typer.Option(help="Example unresolved threads per group.")] = 3,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Groups ranked by hotspot score sqrt(popularity x difficulty), with the playbook's fix, the LLM limit, and example threads."""
    from devquarry.hotspots import hotspots as run_hotspots

    with _store(db, read_only=True) as store:
        df = run_hotspots(store, by, codebook=codebook, sources=source, min_threads=min_threads, examples=examples)
    if not as_json and not as_csv:
        df = df[["group", "threads", "pct_unresolved", "popularity", "difficulty", "score", "is_hotspot", "fix", "limit", "examples"]]
    emit(df, as_json=as_json, as_csv=as_csv)


@app.command()
def tables(
    out_: Annotated[Path, typer.Option("--out", help="Folder to write the tables (and figures) into.")] = Path("tables"),
    format_: Annotated[str, typer.Option("--format", help="csv, markdown or latex.")] = "csv",
    figures: Annotated[Optional[str], typer.Option(help="Also write the report's figures as png or svg.")] = None,
    db: DbOpt = None,
) -> None:
    """Write the report's tables for papers (csv, markdown or LaTeX), and its figures as PNG or SVG."""
    from devquarry.report.data import report_data
    from devquarry.report.export import write_figures, write_tables

    with _store(db, read_only=True) as store:
        data = report_data(store)
        paths = write_tables(store, out_, format_, data=data)
        if figures:
            paths += write_figures(store, out_, figures, data=data)
    for p in paths:
        out.print(str(p))
