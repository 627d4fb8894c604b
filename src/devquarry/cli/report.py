"""info, runs, report and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from devquarry.cli.common import (CsvOpt, DbOpt, JsonOpt, _byte_progress, _store, app, emit, out)


@app.command()
def info(db: DbOpt = None, as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """Per source: threads, replies, date range, share resolved, median hours to first reply."""
    from devquarry.info import info as info_frame

    with _store(db, read_only=True) as store:
        df = info_frame(store)
    emit(df, as_json=as_json, as_csv=as_csv, title=f"{store.path}")


@app.command()
def runs(db: DbOpt = None, as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """Every run recorded in the store: command, parameters, versions, counts, times."""
    with _store(db, read_only=True) as store:
        df = store.runs()
    if not as_json and not as_csv:
        df = df[["run_id", "command", "counts", "started_at", "ended_at"]]
    emit(df, as_json=as_json, as_csv=as_csv)


@app.command()
def metrics(
    by: Annotated[str, typer.Option(help="Group by source, category (forum category), code (a codebook's), topic or period.")] = "source",
    codebook: Annotated[Optional[str], typer.Option(help="With --by code: the codebook (latest machine codes, else hand labels).")] = None,
    period: Annotated[str, typer.Option(help="With --by period: month, quarter or year.")] = "quarter",
    source: Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Popularity and difficulty per group: threads, views, % no reply, % under 3 replies, % unresolved, hours to first reply and to an accepted answer."""
    from devquarry.metrics import metrics as run_metrics

    with _store(db, read_only=True) as store:
        df = run_metrics(store, by, codebook=codebook, period=period, sources=source)
    if not as_json and not as_csv:
        df = df[["group", "threads", "share", "views_median", "pct_no_reply", "pct_under_3_replies", "pct_unresolved",
                 "hours_to_first_reply_median", "hours_to_first_reply_mean", "hours_to_accepted_median", "days_to_close_median"]]
    emit(df, as_json=as_json, as_csv=as_csv)


@app.command()
def report(
    out_: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    db: DbOpt = None,
) -> None:
    """Write a self-contained HTML report of the store."""
    from devquarry.report import build_report

    with _store(db, read_only=True) as store:
        path = build_report(store, out_)
    out.print(f"report written to {path}")


@app.command()
def demo(
    out_: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    db: DbOpt = None,
) -> None:
    """Run the bundled Stack Overflow corpus through every step and write the report."""
    from devquarry.demo import demo_source, run_demo

    with _store(db) as store, _byte_progress(demo_source().total_bytes, "demo corpus") as advance:
        counts, path = run_demo(store, out_, progress=advance)
    emit(counts, title=f"demo corpus ingested into {store.path}")
    out.print(f"report written to {path}")
