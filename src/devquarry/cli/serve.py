"""serve: the study workbench in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from devquarry.cli.common import DbOpt, app, say


@app.command()
def serve(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    read_only: Annotated[bool, typer.Option("--read-only", help="Browse only: no coding, no label is written.")] = False,
    token: Annotated[
        Optional[str], typer.Option(help="Require this token on every request ('auto' generates one and prints it).")
    ] = None,
    sheet: Annotated[
        Optional[list[Path]],
        typer.Option("--sheet", help="A label sheet (`devquarry sample --out`) to offer as a coding queue; repeatable."),
    ] = None,
) -> None:
    """Start the workbench: browse threads, code them by keyboard, see agreement live (http://127.0.0.1:8765)."""
    from devquarry.extras import ensure

    ensure("starlette", "serve", "the workbench")
    ensure("uvicorn", "serve", "the workbench")
    from devquarry.serve.run import serve as run
    from devquarry.store import default_db

    run(Path(db or default_db()), host=host, port=port, read_only=read_only, token=token, sheets=sheet, announce=say)
