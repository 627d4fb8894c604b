"""The workbench's ASGI app: one store opened for the server's life, its routes, its templates."""

from __future__ import annotations

import contextlib
import secrets
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import jinja2
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from devquarry.errors import InputError
from devquarry.serve.security import Guard, check_csrf, safe_url
from devquarry.store import Store

HERE = Path(__file__).parent


class Workbench:
    """The store the server holds and the lock that gives one request at a time its connection:
    a DuckDB connection is not for two threads at once, and a label's transaction must be whole."""

    def __init__(self, db: str | Path, read_only: bool = False, sheets: dict | None = None) -> None:
        self.store = Store(db, read_only=read_only)
        self.read_only = read_only
        self.sheets = sheets or {}  # queue name -> (source, source_id) in the sheet's order
        self.lock = threading.Lock()
        self.runs: dict[tuple[str, str], int] = {}  # (codebook, rater) -> this server's labelling run
        self.cache: dict = {}
        self.codebooks: dict = {}

    def call(self, fn, *args, **kwargs):
        from devquarry.codebooks import codebooks_of

        # codebooks_of: a codebook kept only in the store serves as a shipped one does
        with self.lock, codebooks_of(self.store):
            return fn(self.store, *args, **kwargs)

    async def run(self, fn, *args, **kwargs):
        return await run_in_threadpool(self.call, fn, *args, **kwargs)

    def version(self, threads_only: bool = False) -> tuple:
        """What the cached figures depend on: new labels, runs or threads change it."""
        if threads_only:
            return tuple(self.store.con.execute("SELECT (SELECT count(*) FROM thread), (SELECT count(*) FROM reply)").fetchone())
        return tuple(
            self.store.con.execute(
                "SELECT (SELECT count(*) FROM label), (SELECT coalesce(max(run_id), 0) FROM run), (SELECT count(*) FROM thread)"
            ).fetchone()
        )

    def cached(self, key, fn, *args, threads_only: bool = False, **kwargs):
        """fn(store, ...) computed once per state of the store (the overview's figures take a second);
        ``threads_only``: the value depends on the threads alone, not on labels or runs."""
        version = self.version(threads_only)
        hit = self.cache.get(key)
        if hit and hit[0] == version:
            return hit[1]
        value = fn(self.store, *args, **kwargs)
        self.cache[key] = (version, value)
        return value

    def codebook(self, name: str):
        """A codebook, parsed once per server (parsing its YAML takes 15 ms)."""
        from devquarry.codebooks import load_codebook

        if name not in self.codebooks:
            self.codebooks[name] = load_codebook(name, store=self.store)
        return self.codebooks[name]

    def summary(self) -> str:
        """The temporary table of the threads' list columns (``queries.summarize``), made again
        when the threads or replies change (or the connection was opened again)."""
        from devquarry.serve.queries import SUMMARY, summarize

        alive = self.store.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [SUMMARY]
        ).fetchone()[0]
        if not alive:
            self.cache.pop(("summary",), None)
        return self.cached(("summary",), summarize, threads_only=True)

    def close(self) -> None:
        with self.lock:
            self.store.close()


def _num(v, d=0) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    return f"{v:,.{d}f}"


def _pct(v, d=1) -> str:
    return "" if v is None or pd.isna(v) else f"{v:.{d}%}"


def _date(v) -> str:
    return "" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(safe_url=safe_url, num=_num, pct=_pct, date=_date)
    env.globals["qs"] = qs
    return env


def qs(params: dict, **changes) -> str:
    """A query string from ``params`` with ``changes`` (a None value drops the key)."""
    merged = {**params, **changes}
    return urlencode([(k, v) for k, v in merged.items() if v not in (None, "")])


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    app = request.app
    html = app.state.env.get_template(template).render(
        request=request,
        csrf=app.state.csrf,
        read_only=app.state.wb.read_only,
        path=request.url.path,
        store_name=app.state.wb.store.path.name,
        **context,
    )
    return HTMLResponse(html, status_code=status)


async def form_of(request: Request) -> dict[str, str]:
    """The url-encoded form of a POST, CSRF-checked (no multipart: the workbench posts no files)."""
    body = (await request.body()).decode("utf-8", "replace")
    form: dict[str, str] = {}
    for k, v in parse_qsl(body, keep_blank_values=True):
        form[k] = f"{form[k]},{v}" if k in form and k == "code" else v
    await check_csrf(request, form)
    return form


async def _input_error(request: Request, exc: InputError):
    return render(request, "error.html.j2", status=400, message=str(exc))


async def _http_error(request: Request, exc: HTTPException):
    if exc.status_code in (403, 404, 405):
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}", status_code=exc.status_code)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code)


def create_app(
    db: str | Path, *, read_only: bool = False, token: str | None = None, sheets: list[str | Path] | None = None
) -> Starlette:
    """The workbench over the store at ``db``; ``token``: required on every request when set;
    ``sheets``: label sheets (`devquarry sample --out`) a rater can open as queues, by file name."""
    from devquarry.serve import agree_routes, browse_routes, code_routes
    from devquarry.serve.queue import read_sheets

    wb = Workbench(db, read_only=read_only, sheets=read_sheets(sheets or []))
    routes = [
        *browse_routes.ROUTES,
        *code_routes.ROUTES,
        *agree_routes.ROUTES,
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        wb.close()

    app = Starlette(
        routes=routes,
        exception_handlers={InputError: _input_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.wb = wb
    app.state.env = _env()
    app.state.csrf = secrets.token_urlsafe(24)
    app.state.token = token
    app.add_middleware(Guard, token=token, csrf=app.state.csrf, read_only=read_only)
    return app
