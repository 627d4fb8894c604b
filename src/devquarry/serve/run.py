"""Start the workbench under uvicorn: the bind checked first, the store opened once for the server's life."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from devquarry.errors import InputError
from devquarry.serve.security import check_bind, is_loopback


def serve(
    db: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    read_only: bool = False,
    token: str | None = None,
    sheets: list[str | Path] | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the store at ``db`` until interrupted. A non-loopback ``host`` needs a token (``"auto"``
    generates one); with a token every request must carry it. ``sheets``: label sheets a rater can
    open as queues. ``announce`` hears the address."""
    import uvicorn

    from devquarry.serve.app import create_app

    db = Path(db)
    if not db.exists():
        raise InputError(db, "no such store; ingest something first (or pass --db)")
    if not 0 < port < 65536:
        raise InputError(None, f"port {port} is out of range", field="port")
    if token == "auto" and is_loopback(host):
        from devquarry.serve.security import new_token

        token = new_token()
    token = check_bind(host, token)
    app = create_app(db, read_only=read_only, token=token, sheets=sheets)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    announce(f"devquarry workbench on {url} (store {db}{', read-only' if read_only else ''}); Ctrl-C stops it")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    server.run()
