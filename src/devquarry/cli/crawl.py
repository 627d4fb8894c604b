"""crawl discourse | stackexchange | github."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from devquarry.cli.common import PLAIN, CsvOpt, DbOpt, JsonOpt, TableOpt, _count_progress, _store, app, emit, output_format
from devquarry.errors import InputError

crawl_app = typer.Typer(
    no_args_is_help=True, help="Fetch threads from live sources into the store (incremental, resumable).", **PLAIN
)
app.add_typer(crawl_app, name="crawl")

SinceOpt = Annotated[
    Optional[str], typer.Option(help="Only what changed after this date (default: since the last finished crawl).")
]
RateOpt = Annotated[float, typer.Option(help="At most this many requests a minute.")]
ArchiveOpt = Annotated[Optional[Path], typer.Option(help="Folder that keeps every raw response (default: next to the store).")]
ReplayOpt = Annotated[bool, typer.Option(help="Replay the archive offline instead of fetching.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds one request may take, the whole answer read (then it is retried).")]
MaxPagesOpt = Annotated[
    int, typer.Option(help="At most this many pages of one list per run (a server that pages forever stops here).", min=1)
]
MaxResponseOpt = Annotated[
    Optional[float],
    typer.Option(help="Largest answer kept, in MB once decoded (default 64, or DEVQUARRY_MAX_RESPONSE_MB).", min=0.001),
]


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise InputError(None, f"cannot read {value!r} as a date", field="since") from None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).to_pydatetime()


def _client(db, rate, archive, replay, timeout, base, max_mb=None, headers=None, params=None):
    """``base``: the origin credentials may go to; DEVQUARRY_TRUSTED_ORIGINS (space or comma
    between them) adds more."""
    from devquarry.crawl import Archive, HttpClient
    from devquarry.crawl.http import DEFAULT_MAX_BYTES
    from devquarry.store import default_db

    folder = archive or Path(f"{db or default_db()}.archive")
    if replay and not folder.is_dir():
        raise InputError(folder, "no archive to replay")
    trusted = {base, *os.environ.get("DEVQUARRY_TRUSTED_ORIGINS", "").replace(",", " ").split()}
    return HttpClient(
        rate=rate,
        timeout=timeout,
        archive=Archive(folder),
        replay=replay,
        headers=headers or {},
        params=params or {},
        trusted=trusted,
        max_bytes=int(max_mb * 2**20) if max_mb else DEFAULT_MAX_BYTES,
    )


def _run(crawler, label: str) -> dict:
    from devquarry.crawl import CrawlError
    from devquarry.crawl.http import Unreachable

    with _count_progress(0, label) as advance:
        crawler.progress = advance
        try:
            counts = crawler.run()
        except Unreachable as exc:
            raise InputError(None, f"crawl not started: {exc}") from None
        except InputError:
            raise
        except CrawlError as exc:
            again = "" if crawler.client.replay else "; run the same command again to resume"
            raise InputError(None, f"crawl stopped: {exc}{again}") from None
    return {"crawl": label, **counts}


def _emit(rows: list[dict], as_json: bool, as_csv: bool, as_table: bool) -> None:
    import pandas as pd

    emit(pd.DataFrame(rows), as_json=as_json, as_csv=as_csv, as_table=as_table)


@crawl_app.command("discourse")
def crawl_discourse(
    base_url: Annotated[str, typer.Argument(help="The forum, e.g. https://community.openai.com")],
    category: Annotated[
        Optional[list[str]], typer.Option(help="A category as SLUG/ID or ID (repeatable); default /latest.")
    ] = None,
    since: SinceOpt = None,
    max_topics: Annotated[Optional[int], typer.Option(help="Stop after this many topics.")] = None,
    rate: RateOpt = 120.0,
    api_key_env: Annotated[
        Optional[str], typer.Option(help="Environment variable holding a Discourse API key (optional).")
    ] = None,
    archive: ArchiveOpt = None,
    replay: ReplayOpt = False,
    timeout: TimeoutOpt = 30.0,
    max_pages: MaxPagesOpt = 10_000,
    max_response_mb: MaxResponseOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Topic lists page by page, each topic with all its posts and accepted answers."""
    from devquarry.crawl import DiscourseCrawler

    output_format(as_json, as_csv, as_table)

    headers = {}
    if api_key_env:
        if not os.environ.get(api_key_env):
            raise InputError(None, f"environment variable {api_key_env} is empty", field="api-key-env")
        headers = {"Api-Key": os.environ[api_key_env], "Api-Username": os.environ.get("DISCOURSE_API_USERNAME", "system")}
    with (
        _store(db, create=True) as store,
        _client(db, rate, archive, replay, timeout, base_url, max_response_mb, headers) as client,
    ):
        rows = [
            _run(
                DiscourseCrawler(
                    store, client, base_url, category=cat, since=_since(since), max_topics=max_topics, max_pages=max_pages
                ),
                f"{base_url} {cat or 'latest'}",
            )
            for cat in category or [None]
        ]
    _emit(rows, as_json, as_csv, as_table)


@crawl_app.command("stackexchange")
def crawl_stackexchange(
    site: Annotated[str, typer.Option(help="The API's site name: stackoverflow, ai, datascience, ...")] = "stackoverflow",
    tagged: Annotated[Optional[str], typer.Option(help="Tags, ';' between them (questions with any of them).")] = None,
    since: SinceOpt = None,
    key: Annotated[
        Optional[str], typer.Option(help="A Stack Apps key (raises the daily quota); never stored.", envvar="STACKEXCHANGE_KEY")
    ] = None,
    api_url: Annotated[str, typer.Option(help="The API's base URL.")] = "https://api.stackexchange.com/2.3",
    rate: RateOpt = 60.0,
    archive: ArchiveOpt = None,
    replay: ReplayOpt = False,
    timeout: TimeoutOpt = 30.0,
    max_pages: MaxPagesOpt = 10_000,
    max_response_mb: MaxResponseOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Questions by tag with answers and comments, into the same tables as a dump."""
    from devquarry.crawl import StackExchangeCrawler

    output_format(as_json, as_csv, as_table)

    with (
        _store(db, create=True) as store,
        _client(db, rate, archive, replay, timeout, api_url, max_response_mb, params={"key": key} if key else {}) as client,
    ):
        crawler = StackExchangeCrawler(store, client, site, tagged, api_url=api_url, since=_since(since), max_pages=max_pages)
        rows = [_run(crawler, f"{site} {tagged or ''}")]
    _emit(rows, as_json, as_csv, as_table)


@crawl_app.command("github")
def crawl_github(
    repo: Annotated[str, typer.Argument(help="OWNER/REPO")],
    since: SinceOpt = None,
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding a token (optional; raises the rate limit).")
    ] = "GITHUB_TOKEN",
    api_url: Annotated[str, typer.Option(help="The API's base URL.")] = "https://api.github.com",
    rate: RateOpt = 60.0,
    archive: ArchiveOpt = None,
    replay: ReplayOpt = False,
    timeout: TimeoutOpt = 30.0,
    max_pages: MaxPagesOpt = 10_000,
    max_response_mb: MaxResponseOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Issues (not pull requests) with comments, state_reason and closed_at."""
    from devquarry.crawl import GitHubCrawler

    output_format(as_json, as_csv, as_table)

    if "/" not in repo.strip("/"):
        raise InputError(None, f"expected OWNER/REPO, got {repo!r}", field="repo")
    token = os.environ.get(token_env)
    headers = {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28"} if token else {}
    with (
        _store(db, create=True) as store,
        _client(db, rate, archive, replay, timeout, api_url, max_response_mb, headers) as client,
    ):
        rows = [_run(GitHubCrawler(store, client, repo, api_url=api_url, since=_since(since), max_pages=max_pages), repo)]
    _emit(rows, as_json, as_csv, as_table)
