"""What every command shares: the Typer apps, options, the store, progress bars and printing rows."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from devquarry.errors import InputError
from devquarry.store import Store, default_db

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Mine developer discussions for the challenges of building on LLMs.")
ingest_app = typer.Typer(no_args_is_help=True, help="Import threads from files into the store.")
app.add_typer(ingest_app, name="ingest")
codebooks_app = typer.Typer(no_args_is_help=True, help="Challenge taxonomies (codebooks).")
app.add_typer(codebooks_app, name="codebooks")
labels_app = typer.Typer(no_args_is_help=True, help="Hand labels.")
app.add_typer(labels_app, name="labels")
embeddings_app = typer.Typer(no_args_is_help=True, help="Embedding models.")
app.add_typer(embeddings_app, name="embeddings")

# Piped output gets a wide table rather than Rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

DbOpt = Annotated[Optional[Path], typer.Option("--db", help="DuckDB store (default devquarry.duckdb, or $DEVQUARRY_DB).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print rows as JSON.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print rows as CSV.")]
TableOpt = Annotated[bool, typer.Option("--table", help="Print rows as a table (the default).")]
Files = Annotated[list[Path], typer.Argument(help="Input files.", show_default=False)]


def main() -> None:
    """Entry point: bad input exits 2 with one line on stderr; other failures exit 1."""
    try:
        app(standalone_mode=False)
    except InputError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click's usage errors are ClickException
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        if os.environ.get("DEVQUARRY_DEBUG"):
            raise
        err.print(f"[red]error:[/red] {exc.__class__.__name__}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _store(db: Path | None, read_only: bool = False) -> Store:
    return Store(db or default_db(), read_only=read_only)


@contextmanager
def _progress(total: int, label: str, *columns):
    show = err.is_terminal or os.environ.get("DEVQUARRY_PROGRESS") == "1"
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), *columns, TimeRemainingColumn(),
                  console=err, disable=not show) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda n: bar.advance(task, n)


def _byte_progress(total: int, label: str):
    return _progress(total, label, DownloadColumn(), TransferSpeedColumn())


def _count_progress(total: int, label: str):
    return _progress(total, label, TextColumn("{task.completed}/{task.total}"))


def emit(df: pd.DataFrame, *, as_json: bool = False, as_csv: bool = False, title: str | None = None) -> None:
    """Print rows as a Rich table, JSON or CSV (the same flags on every command that prints rows)."""
    if as_json:
        sys.stdout.write(df.to_json(orient="records", date_format="iso", indent=2) + "\n")
        return
    if as_csv:
        sys.stdout.write(df.to_csv(index=False))
        return
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[_cell(v) for v in row])
    out.print(table)


def _cell(v) -> str:
    if v is None or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
        return ""
    if isinstance(v, (list, tuple)) or hasattr(v, "tolist") and not isinstance(v, (str, float, int)):
        items = v.tolist() if hasattr(v, "tolist") else v
        return ", ".join(str(i.get("title", i)) if isinstance(i, dict) else str(i) for i in items)
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    return str(v)
