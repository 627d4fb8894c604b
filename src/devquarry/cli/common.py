"""What every command shares: the Typer apps, options, the store, progress bars and printing rows."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

from devquarry.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from devquarry.store import Store

# Only typer and the option types load at start: `devquarry --help` must stay fast, so pandas,
# Rich's consoles and tables, DuckDB and the store load inside the commands that use them.
# Plain help (rich_markup_mode=None): Rich's help panels cost ~0.15 s of every `--help` (measured in
# bench/cli_help.py), more than everything else a help needs.
PLAIN = {"rich_markup_mode": None, "pretty_exceptions_enable": False}
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Mine developer discussions for the challenges of building on LLMs.", **PLAIN
)
ingest_app = typer.Typer(no_args_is_help=True, help="Import threads from files into the store.", **PLAIN)
app.add_typer(ingest_app, name="ingest")
codebooks_app = typer.Typer(no_args_is_help=True, help="Challenge taxonomies (codebooks).", **PLAIN)
app.add_typer(codebooks_app, name="codebooks")
labels_app = typer.Typer(no_args_is_help=True, help="Hand labels.", **PLAIN)
app.add_typer(labels_app, name="labels")
embeddings_app = typer.Typer(no_args_is_help=True, help="Embedding models.", **PLAIN)
app.add_typer(embeddings_app, name="embeddings")


def _print_version(value: bool) -> None:
    if value:
        from devquarry._version import __version__

        sys.stdout.write(f"devquarry {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print devquarry's version and exit."),
    ] = None,
) -> None:
    """Mine developer discussions for the challenges of building on LLMs."""


class _LazyConsole:
    """A Rich console made on first use (Rich costs tens of milliseconds to import)."""

    def __init__(self, **kwargs) -> None:
        self._kwargs, self._console = kwargs, None

    def __getattr__(self, name: str):
        return getattr(self.console, name)

    @property
    def console(self) -> Console:
        """The real console: what Rich itself (a Progress, a Live) must be given."""
        if self._console is None:
            from rich.console import Console

            kwargs = dict(self._kwargs)
            if kwargs.pop("wide_when_piped", False):
                kwargs["width"] = None if sys.stdout.isatty() else 200
            self._console = Console(**kwargs)
        return self._console


# Piped output gets a wide table rather than Rich's 80-column default.
out: Console = _LazyConsole(wide_when_piped=True)  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]

DbOpt = Annotated[
    Optional[Path], typer.Option("--db", help="DuckDB store (default devquarry.duckdb, or $DEVQUARRY_DB).", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print rows as JSON.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print rows as CSV.")]
TableOpt = Annotated[bool, typer.Option("--table", help="Print rows as a table (the default).")]
Files = Annotated[list[Path], typer.Argument(help="Input files.", show_default=False)]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where the heavy per-thread work (HTML to text, embedding, coding) runs: local (this process) or ray "
        "(a Ray cluster; the [ray] extra).",
    ),
]
RayAddressOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ray-address",
        help="The Ray cluster for --engine ray (HEAD:6379; default $DEVQUARRY_RAY_ADDRESS, else a local one).",
        show_default=False,
    ),
]


def engine_of(name: str, address: str | None):
    """The engine of --engine and --ray-address (an unknown one, or a missing ray, exits 2 now)."""
    from devquarry.engine import get_engine

    return get_engine(name, address)


def output_format(as_json: bool = False, as_csv: bool = False, as_table: bool = False) -> str:
    """The one output format a command was asked for: json, csv or table (the default)."""
    picked = [name for name, on in (("json", as_json), ("csv", as_csv), ("table", as_table)) if on]
    if len(picked) > 1:
        raise InputError(None, f"--{' and --'.join(picked)} exclude each other: pick one", field="output")
    return picked[0] if picked else "table"


_INTERRUPTED: list[bool] = []


def _on_sigint(signum, frame) -> None:
    # Remembered: DuckDB turns a Ctrl-C during a query into its own "Query interrupted" error.
    _INTERRUPTED.append(True)
    signal.default_int_handler(signum, frame)


def main() -> None:
    """Entry point: bad input and usage errors exit 2 with one line on stderr, Ctrl-C exits 130,
    other failures exit 1."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
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
        if _INTERRUPTED:
            _fail("interrupted; the store is as it was before this command", 130)
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
    from rich.text import Text

    err.print(Text.assemble(("error:", "red"), " ", safe_text(message)), highlight=False, soft_wrap=True)
    sys.exit(code)


def safe_text(value) -> str:
    """Thread text as literal terminal text: escape sequences and control characters removed."""
    from devquarry.safe_text import terminal_text

    return terminal_text(value)


def say(message, *, to_err: bool = False, style: str | None = None, wrap: bool = False) -> None:
    """Print a line that may hold data (titles, paths, names) as literal text: never read as Rich
    markup, escape sequences removed. Every command's own lines should go through it. Lines are
    not cut or wrapped (urls and paths stay whole) unless ``wrap`` (prose, such as a draft)."""
    from rich.text import Text

    (err if to_err else out).print(Text(safe_text(message), style=style or ""), highlight=False, soft_wrap=not wrap)


@contextmanager
def _store(db: Path | None, read_only: bool = False, create: bool = False) -> Iterator[Store]:
    """Open the store. Only commands that add data may create it (``create``); a store this
    command created that still holds no thread when it fails is removed again, so a failed first
    ingest leaves no file behind (a crawl's committed pages are kept: it resumes from them)."""
    from devquarry.store import Store, default_db

    path = Path(db or default_db())
    if not create and not path.exists():
        raise InputError(path, "no such store; ingest something first (or pass --db)")
    new = not path.exists()
    store = Store(path, read_only=read_only)
    from devquarry.codebooks import codebooks_of

    try:
        with codebooks_of(store):  # a user's codebook kept in the store serves once its file is gone
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
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    show = err.is_terminal or os.environ.get("DEVQUARRY_PROGRESS") == "1"
    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        *columns,
        TimeRemainingColumn(),
        console=err.console,
        disable=not show,
    ) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda n: bar.advance(task, n)


class _StepBars:
    """A bar per step while it runs (bytes for the ingest, counts elsewhere, a pulse where a step
    has no count), then one summary line per step that stays on screen."""

    def __init__(self, bar) -> None:
        self.bar, self.task, self.name = bar, None, ""

    def start(self, name: str, total: int | None = None) -> None:
        self.name = name
        self.task = self.bar.add_task(name, total=total or None)

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)

    def stage(self, description: str, total: int | None = None) -> None:
        self.bar.update(self.task, description=f"{self.name}: {description}", total=total or None, completed=0)

    def done(self, summary: str) -> None:
        from rich.text import Text

        self.bar.remove_task(self.task)
        self.bar.console.print(
            Text.assemble(("✓ ", "green"), (f"{self.name}: ", "bold"), safe_text(summary)), highlight=False, soft_wrap=True
        )


@contextmanager
def _steps() -> Iterator[_StepBars]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    show = err.is_terminal or os.environ.get("DEVQUARRY_PROGRESS") == "1"
    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err.console,
        disable=not show,
    ) as bar:
        yield _StepBars(bar)


def _byte_progress(total: int, label: str):
    from rich.progress import DownloadColumn, TransferSpeedColumn

    return _progress(total, label, DownloadColumn(), TransferSpeedColumn())


def _count_progress(total: int, label: str):
    from rich.progress import TextColumn

    return _progress(total, label, TextColumn("{task.completed}/{task.total}"))


def emit(
    df: pd.DataFrame, *, as_json: bool = False, as_csv: bool = False, as_table: bool = False, title: str | None = None
) -> None:
    """Print rows as a Rich table (the default, or --table), JSON or CSV: the same flags on every
    command that prints rows."""
    fmt = output_format(as_json, as_csv, as_table)
    if fmt == "json":
        sys.stdout.write(df.to_json(orient="records", date_format="iso", indent=2) + "\n")
        return
    if fmt == "csv":  # JSON escapes control characters itself; CSV must lose them, and start no formula
        from devquarry.safe_text import sheet_frame

        sys.stdout.write(sheet_frame(_inert_strings(df)).to_csv(index=False))
        return
    import pandas as pd
    from rich.table import Table
    from rich.text import Text

    # Text, not str: cells hold thread text, which Rich must not read as markup ("[/INST]" raised MarkupError).
    table = Table(title=Text(safe_text(title)) if title else None, show_lines=False)
    for col in df.columns:
        table.add_column(Text(safe_text(col)), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[Text(safe_text(_cell(v))) for v in row])
    out.print(table)


def _inert_strings(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in df.select_dtypes(include=["object", "string"]).columns:
        df[col] = df[col].map(lambda v: safe_text(v) if isinstance(v, str) else v)
    return df


def _cell(v) -> str:
    import pandas as pd

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
