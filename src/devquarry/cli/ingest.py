"""devquarry ingest ...: files into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer

from devquarry.cli.common import (ingest_app, DbOpt, Files, JsonOpt, _byte_progress, _store, emit)


def _run_ingest(db: Path | None, source, label: str, as_json: bool) -> None:
    from devquarry.ingest import ingest

    with _store(db) as store, _byte_progress(source.total_bytes, label) as advance:
        counts = ingest(store, source, progress=advance)
    emit(counts, as_json=as_json, title=f"ingested into {store.path} (run {counts.attrs['run_id']})")


@ingest_app.command("stackexchange")
def ingest_stackexchange(
    path: Annotated[Path, typer.Argument(help="Dump folder with Posts.xml (PostLinks.xml and Comments.xml are read when present), or Posts.xml itself.")],
    tags: Annotated[Optional[str], typer.Option(help="Keep only questions with one of these tags, comma-separated.")] = None,
    site: Annotated[Optional[str], typer.Option(help="Site host for links and the source name (default: from the folder name, else stackoverflow.com).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stream a Stack Exchange data dump into the store."""
    from devquarry.sources import StackExchangeDump

    tag_list = [t for t in (tags or "").split(",") if t.strip()]
    _run_ingest(db, StackExchangeDump(path, tags=tag_list, site=site), "Posts", as_json)


@ingest_app.command("discourse")
def ingest_discourse(
    files: Files,
    host: Annotated[Optional[str], typer.Option(help="Forum host, e.g. community.openai.com (default: read from avatar paths in the file).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import Discourse topic JSON (/t/{id}.json or crawls with posts) and topic lists (/latest.json)."""
    from devquarry.sources import DiscourseSource

    _run_ingest(db, DiscourseSource(files, host=host), "Discourse", as_json)


@ingest_app.command("github")
def ingest_github(
    files: Files,
    repo: Annotated[Optional[str], typer.Option(help="owner/name, when the files do not say.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding; a comma list is tried in order (utf-8,gb18030).")] = "utf-8",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import GitHub issues from JSON exports or headerless CSV exports."""
    from devquarry.sources import GitHubSource

    _run_ingest(db, GitHubSource(files, repo=repo, encoding=encoding), "GitHub", as_json)


@ingest_app.command("table")
def ingest_table(
    files: Files,
    source: Annotated[str, typer.Option(help="Source name for these threads, e.g. stackoverflow.")],
    map_: Annotated[Optional[str], typer.Option("--map", help="field=column,... (fields: see `devquarry ingest fields`). Columns named like a field map themselves.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding; a comma list is tried in order.")] = "utf-8",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import CSV, TSV, JSONL or XLSX rows as threads."""
    from devquarry.sources import TableSource

    _run_ingest(db, TableSource(files, source=source, mapping=map_, encoding=encoding), "Table", as_json)


@ingest_app.command("transcripts")
def ingest_transcripts(
    files: Files,
    max_tokens: Annotated[int, typer.Option(help="Largest paragraph, in tokens (words and punctuation).")] = 300,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import talk transcripts (WebVTT, SRT, plain text) as paragraphs, one thread each."""
    from devquarry.sources import TranscriptSource

    _run_ingest(db, TranscriptSource(files, max_tokens=max_tokens), "Transcripts", as_json)


@ingest_app.command("fields")
def ingest_fields(as_json: JsonOpt = False) -> None:
    """List the fields that `ingest table --map` accepts."""
    from devquarry.sources.tabular import FIELDS

    emit(pd.DataFrame({"field": list(FIELDS), "meaning": list(FIELDS.values())}), as_json=as_json)
