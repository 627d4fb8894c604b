"""devquarry ingest ...: files into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from devquarry.cli.common import (
    CsvOpt,
    DbOpt,
    EngineOpt,
    Files,
    JsonOpt,
    RayAddressOpt,
    TableOpt,
    _byte_progress,
    _store,
    emit,
    engine_of,
    ingest_app,
    output_format,
    say,
)


def _run_ingest(db: Path | None, source, label: str, as_json: bool, as_csv: bool, as_table: bool, engine=None) -> None:
    from devquarry.ingest import ingest

    output_format(as_json, as_csv, as_table)
    with _store(db, create=True) as store, _byte_progress(source.total_bytes, label) as advance:
        counts = ingest(store, source, progress=advance, engine=engine)
    emit(
        counts,
        as_json=as_json,
        as_csv=as_csv,
        as_table=as_table,
        title=f"ingested into {store.path} (run {counts.attrs['run_id']})",
    )


@ingest_app.command("stackexchange")
def ingest_stackexchange(
    path: Annotated[
        Path,
        typer.Argument(
            help="Dump folder with Posts.xml (PostLinks.xml and Comments.xml are read when present), or Posts.xml itself."
        ),
    ],
    tags: Annotated[Optional[str], typer.Option(help="Keep only questions with one of these tags, comma-separated.")] = None,
    site: Annotated[
        Optional[str],
        typer.Option(help="Site host for links and the source name (default: from the folder name, else stackoverflow.com)."),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Stream a Stack Exchange data dump into the store."""
    from devquarry.sources import StackExchangeDump

    tag_list = [t for t in (tags or "").split(",") if t.strip()]
    runner = engine_of(engine, ray_address)
    _run_ingest(db, StackExchangeDump(path, tags=tag_list, site=site), "Posts", as_json, as_csv, as_table, runner)


@ingest_app.command("discourse")
def ingest_discourse(
    files: Files,
    host: Annotated[
        Optional[str], typer.Option(help="Forum host, e.g. community.openai.com (default: read from avatar paths in the file).")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Import Discourse topic JSON (/t/{id}.json or crawls with posts) and topic lists (/latest.json)."""
    from devquarry.sources import DiscourseSource

    runner = engine_of(engine, ray_address)
    _run_ingest(db, DiscourseSource(files, host=host), "Discourse", as_json, as_csv, as_table, runner)


@ingest_app.command("github")
def ingest_github(
    files: Files,
    repo: Annotated[Optional[str], typer.Option(help="owner/name, when the files do not say.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding; a comma list is tried in order (utf-8,gb18030).")] = "utf-8",
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Import GitHub issues from JSON exports or headerless CSV exports."""
    from devquarry.sources import GitHubSource

    _run_ingest(db, GitHubSource(files, repo=repo, encoding=encoding), "GitHub", as_json, as_csv, as_table)


@ingest_app.command("table")
def ingest_table(
    files: Files,
    source: Annotated[str, typer.Option(help="Source name for these threads, e.g. stackoverflow.")],
    map_: Annotated[
        Optional[str],
        typer.Option(
            "--map",
            help="field=column,... (fields: see `devquarry ingest fields`); a value may be a DuckDB SQL expression over "
            "the columns: reply_count=post_count - 1, views=coalesce(views, 0). Columns named like a field map themselves.",
        ),
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding; a comma list is tried in order.")] = "utf-8",
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Import CSV, TSV, JSONL or XLSX rows as threads.

    Without --map, columns named like a field (or id, link, created, creation_date) are mapped,
    and the file must give an id or url, a title or body, and created_at. With --map only an id or
    url is needed: a file of per-thread statistics imports without titles, and without a resolved
    (or accepted_at) column its threads' resolution stays unknown."""
    from devquarry.sources import TableSource

    runner = engine_of(engine, ray_address)
    table = TableSource(files, source=source, mapping=map_, encoding=encoding, require_dates=not map_)
    _run_ingest(db, table, "Table", as_json, as_csv, as_table, runner)
    for path, mapping in table.mappings.items():
        used = ",".join(f"{field}={column}" for field, column in mapping.items())
        # On stderr, so that --json output stays JSON; column names are the file's, printed literally.
        say(f"{Path(path).name}: --map {used}", to_err=True)


@ingest_app.command("bots")
def ingest_bots(
    count: Annotated[
        Optional[bool],
        typer.Option(
            "--count/--exclude", help="Count bots' replies as replies, or leave them out (the default).", show_default=False
        ),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Bots' replies held per source, and whether reply counts and first-reply times include them."""
    from devquarry.bots import bot_replies, count_bots, set_count_bots

    output_format(as_json, as_csv, as_table)
    with _store(db) as store:
        if count is not None:
            set_count_bots(store, count)
        rows = bot_replies(store)
        on = count_bots(store)
    emit(
        rows,
        as_json=as_json,
        as_csv=as_csv,
        as_table=as_table,
        title="bots' replies: " + ("counted as replies" if on else "kept, but left out of reply counts and first-reply times"),
    )


@ingest_app.command("transcripts")
def ingest_transcripts(
    files: Files,
    max_tokens: Annotated[int, typer.Option(help="Largest paragraph, in tokens (words and punctuation).")] = 300,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Import talk transcripts (WebVTT, SRT, plain text) as paragraphs, one thread each."""
    from devquarry.sources import TranscriptSource

    _run_ingest(db, TranscriptSource(files, max_tokens=max_tokens), "Transcripts", as_json, as_csv, as_table)


@ingest_app.command("fields")
def ingest_fields(as_json: JsonOpt = False, as_csv: CsvOpt = False, as_table: TableOpt = False) -> None:
    """List the fields that `ingest table --map` accepts."""
    import pandas as pd

    from devquarry.sources.tabular import FIELDS

    emit(
        pd.DataFrame({"field": list(FIELDS), "meaning": list(FIELDS.values())}), as_json=as_json, as_csv=as_csv, as_table=as_table
    )
