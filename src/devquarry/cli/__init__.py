"""The command line: parses arguments, shows progress, prints. The work is in the library."""

from devquarry.cli import analysis, ask, crawl, ingest, report, reproduce, serve, taxonomy, topics  # noqa: F401  (they register their commands)
from devquarry.cli.common import app, main

__all__ = ["app", "main"]
