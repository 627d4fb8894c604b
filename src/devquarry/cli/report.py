"""info, runs, report and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devquarry.cli.common import CsvOpt, DbOpt, JsonOpt, TableOpt, _steps, _store, app, emit, output_format, say


@app.command()
def info(db: DbOpt = None, as_json: JsonOpt = False, as_csv: CsvOpt = False, as_table: TableOpt = False) -> None:
    """Per source: threads, replies, date range, share resolved, median hours to first reply."""
    from devquarry.info import info as info_frame

    output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        df = info_frame(store)
    emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table, title=f"{store.path}")


@app.command()
def runs(db: DbOpt = None, as_json: JsonOpt = False, as_csv: CsvOpt = False, as_table: TableOpt = False) -> None:
    """Every run recorded in the store: command, parameters, versions, counts, times."""
    import pandas as pd

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        df = store.runs()
    if fmt == "table":
        df = df[["run_id", "command", "counts", "started_at", "ended_at"]].copy()
        for col in ("started_at", "ended_at"):  # runs last seconds: a date alone says nothing
            df[col] = pd.to_datetime(df[col], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table)


@app.command()
def report(
    out_: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    db: DbOpt = None,
) -> None:
    """Write a self-contained HTML report of the store."""
    from devquarry.report import build_report

    with _store(db, read_only=True) as store:
        path = build_report(store, out_)
    say(f"report written to {path}")


@app.command()
def demo(
    out_: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    refit: Annotated[
        bool, typer.Option("--refit", help="Fit topics and coders again even when the threads and labels are unchanged.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Run the bundled Stack Overflow corpus through every step and write the report."""
    from devquarry.demo import run_demo

    with _store(db, create=True) as store, _steps() as steps:
        _, path = run_demo(store, out_, steps=steps, refit=refit)
    say(f"report written to {path}; store {store.path}")


@app.command()
def export(
    out_: Annotated[Path, typer.Option("--out", help="Folder to write into (created; must be empty unless --force).")],
    format_: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Write every table and view of the store (threads, replies, ...) as Parquet or CSV files, one line per file."""
    from devquarry.export import export as run_export

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        df = run_export(store, out_, format_, force=force)
    if fmt != "table" or as_table:
        emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table, title=f"exported to {out_}")
        return
    for row in df.itertuples(index=False):
        say(f"{row.path}  {row.kind} {row.name}: {row.rows:,} rows")
