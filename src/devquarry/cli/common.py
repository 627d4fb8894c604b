"""What every command shares: the Typer apps, options, the store, progress bars and printing rows."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

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
    """Entry point: bad input and usage errors exit 2 with one line on stderr, Ctrl-C exits 130,
    other failures exit 1."""
    try:
        # Not standalone: Typer would print a multi-line usage panel and hide our own exit codes.
        rc = app(standalone_mode=False)
    except InputError as exc:
        _fail(str(exc), 2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted; the store is as it was before this command", 130)
    except typer.TyperException as exc:  # Typer's vendored click: UsageError, BadParameter, NoSuchOption...
        code = getattr(exc, "exit_code", 1)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(f"{exc.format_message()}{hint}", 2 if code == 2 else code)
    except Exception as exc:
        if os.environ.get("DEVQUARRY_DEBUG"):
            raise
        _fail(f"{exc.__class__.__name__}: {exc}", 1)
    else:
        # Non-standalone Typer returns the code of an Exit instead of raising it (130 after Ctrl-C).
        if rc == 130:
            _fail("interrupted; the store is as it was before this command", 130)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc:
            sys.exit(rc)


def _fail(message: str, code: int) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), " ", safe_text(message)), highlight=False, soft_wrap=True)
    sys.exit(code)


def safe_text(value) -> str:
    """Thread text as literal terminal text: control characters (escape sequences) removed."""
    return _CONTROL.sub("", str(value))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@contextmanager
def _store(db: Path | None, read_only: bool = False, create: bool = False) -> Iterator[Store]:
    """Open the store. Only commands that add data may create it (``create``); a store this
    command created that still holds no thread when it fails is removed again, so a failed first
    ingest leaves no file behind (a crawl's committed pages are kept: it resumes from them)."""
    path = Path(db or default_db())
    if not create and not path.exists():
        raise InputError(path, "no such store; ingest something first (or pass --db)")
    new = not path.exists()
    store = Store(path, read_only=read_only)
    try:
        yield store
    except BaseException:
        empty = new and _holds_nothing(store)
        store.close()
        if empty:
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    store.close()


def _holds_nothing(store: Store) -> bool:
    try:
        return store.con.execute("SELECT count(*) FROM thread").fetchone()[0] == 0
    except Exception:  # a store that failed half-way through creation holds nothing worth keeping
        return True


@contextmanager
def _progress(total: int, label: str, *columns):
    show = err.is_terminal or os.environ.get("DEVQUARRY_PROGRESS") == "1"
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), *columns, TimeRemainingColumn(),
                  console=err, disable=not show) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda n: bar.advance(task, n)


class _StepBars:
    """A bar per step while it runs (bytes for the ingest, counts elsewhere, a pulse where a step
    has no count), then one summary line per step that stays on screen."""

    def __init__(self, bar: Progress) -> None:
        self.bar, self.task, self.name = bar, None, ""

    def start(self, name: str, total: int | None = None) -> None:
        self.name = name
        self.task = self.bar.add_task(name, total=total or None)

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)

    def stage(self, description: str, total: int | None = None) -> None:
        self.bar.update(self.task, description=f"{self.name}: {description}", total=total or None, completed=0)

    def done(self, summary: str) -> None:
        self.bar.remove_task(self.task)
        self.bar.console.print(Text.assemble(("✓ ", "green"), (f"{self.name}: ", "bold"), safe_text(summary)), highlight=False, soft_wrap=True)


@contextmanager
def _steps() -> Iterator[_StepBars]:
    show = err.is_terminal or os.environ.get("DEVQUARRY_PROGRESS") == "1"
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, disable=not show) as bar:
        yield _StepBars(bar)


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
    # Text, not str: cells hold thread text, which Rich must not read as markup ("[/INST]" raised MarkupError).
    table = Table(title=Text(safe_text(title)) if title else None, show_lines=False)
    for col in df.columns:
        table.add_column(Text(str(col)), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[Text(safe_text(_cell(v))) for v in row])
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
