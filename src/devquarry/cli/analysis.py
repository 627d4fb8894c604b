"""metrics, trends, compare, hotspots and tables: the figures of the studies, on any store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from devquarry.cli.common import CsvOpt, DbOpt, JsonOpt, TableOpt, _store, app, emit, output_format, say

ByOpt = Annotated[str, typer.Option(help="Group by source, category (forum category), code (a codebook's), topic or period.")]
CodebookOpt = Annotated[
    Optional[str], typer.Option(help="With --by code: the codebook (latest machine codes, else hand labels).")
]
LabelsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--labels", metavar="RATER", help="With --by code: this rater's hand labels (primary code) instead of machine codes."
    ),
]
RunOpt = Annotated[
    Optional[int],
    typer.Option("--run", metavar="ID", help="With --by code: the codes of this classify run (see `devquarry runs`)."),
]
CountOpt = Annotated[
    Optional[str],
    typer.Option(
        "--count",
        metavar="primary|any",
        help="With --by code: count each thread under its primary code, or under every code it has "
        "(default: primary, but for a multi-label codebook without primary codes).",
    ),
]
PeriodOpt = Annotated[str, typer.Option(help="month, quarter or year.")]
SourceOpt = Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")]


def _say(line: str, *, as_table: bool) -> str | None:
    """A line about what the rows are: the table's title, or on stderr when the rows are JSON or CSV."""
    if as_table:
        return line
    say(line, to_err=True)
    return None


def _codes_line(attrs: dict) -> str:
    return f"{attrs['codebook']} codes from {attrs['codes_from']}; {attrs.get('rows', '')}".rstrip("; ")


@app.command()
def metrics(
    by: ByOpt = "source",
    codebook: CodebookOpt = None,
    labels: LabelsOpt = None,
    run: RunOpt = None,
    count: CountOpt = None,
    period: PeriodOpt = "quarter",
    source: SourceOpt = None,
    keep_duplicates: Annotated[
        bool, typer.Option(help="Count copies of a question (same source, title and time) apart.")
    ] = False,
    bins: Annotated[
        Optional[list[str]],
        typer.Option(
            "--bins",
            metavar="MEASURE=BINS",
            help="Instead of the figures, the distribution of a measure per group: threads, share and 95% interval "
            "per bin, e.g. 'replies=0,1-2,3-5,6-10,>10' or 'views=<=200,201-500,>500' (also score, hours_to_first_reply, "
            "hours_to_accepted, days_to_close; a measure alone takes its default bins). Repeatable.",
        ),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Popularity and difficulty per group: threads, views, % no reply, % under 3 replies, % unresolved (95% interval), hours to first reply and to an accepted answer."""
    from devquarry.metrics import metrics as run_metrics

    fmt = output_format(as_json, as_csv, as_table)
    if bins:
        _distributions(bins, by, codebook, labels, run, count, period, source, keep_duplicates, db, fmt)
        return
    with _store(db, read_only=True) as store:
        df = run_metrics(
            store,
            by,
            codebook=codebook,
            period=period,
            sources=source,
            dedupe=not keep_duplicates,
            labels=labels,
            run=run,
            count=count,
        )
    title = _say(_codes_line(df.attrs), as_table=fmt == "table") if "codes_from" in df.attrs else None
    if fmt == "table":
        from devquarry.metrics import HEADLINE_COLUMNS

        df = df[[c for c in HEADLINE_COLUMNS if c in df.columns]]
    emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table, title=title)


def _distributions(specs, by, codebook, labels, run, count, period, source, keep_duplicates, db, fmt) -> None:
    import pandas as pd

    from devquarry.distributions import distribution, parse_bins_option, unknown_note

    parsed = [parse_bins_option(s) for s in specs]  # every spec checked before the store is read
    with _store(db, read_only=True) as store:
        frames = [
            distribution(
                store,
                m,
                b,
                by,
                codebook=codebook,
                period=period,
                sources=source,
                dedupe=not keep_duplicates,
                labels=labels,
                run=run,
                count=count,
            )
            for m, b in parsed
        ]
    df = pd.concat(frames, ignore_index=True)
    lines = ([_codes_line(frames[0].attrs)] if "codes_from" in frames[0].attrs else []) + [unknown_note(f) for f in frames]
    if fmt == "table":
        df = df[["measure", "group", "bin", "count", "share", "share_lo", "share_hi", "n", "unknown"]]
    emit(
        df,
        as_json=fmt == "json",
        as_csv=fmt == "csv",
        as_table=fmt == "table",
        title=_say("; ".join(lines), as_table=fmt == "table"),
    )


@app.command()
def trends(
    by: ByOpt = "source",
    codebook: CodebookOpt = None,
    period: PeriodOpt = "quarter",
    measure: Annotated[str, typer.Option(help="threads (new threads per period) or pct_unresolved.")] = "threads",
    source: SourceOpt = None,
    labels: LabelsOpt = None,
    run: RunOpt = None,
    count: CountOpt = None,
    keep_partial: Annotated[bool, typer.Option(help="Keep a source's last period even when its data end inside it.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Trend per group over periods (each group over its own span): Mann-Kendall test of its direction and Sen's slope with its 95% interval."""
    from devquarry.trends import trends as run_trends

    output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        df = run_trends(
            store,
            by,
            codebook=codebook,
            period=period,
            sources=source,
            measure=measure,
            complete_only=not keep_partial,
            labels=labels,
            run=run,
            count=count,
        )
    for line in trend_notes(df.attrs):
        say(line, to_err=True)
    emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table, title=f"{measure} per {period}")


def trend_notes(attrs: dict) -> list[str]:
    """What a trend table left out, and where its codes come from, in words."""
    lines = []
    if attrs.get("codes_from"):
        lines.append(f"{attrs['codebook']} codes from {attrs['codes_from']}")
    early = attrs.get("left_out_early")
    if early:
        lines.append(f"left out {early['threads']:,} stray early threads before {early['before']}")
    partial = attrs.get("dropped_partial")
    for p in (partial or {}).get("periods", []):
        srcs = p["sources"]
        whose = srcs[0] if len(srcs) == 1 else f"{len(srcs)} sources"
        lines.append(
            f"dropped partial {p['period']}: {p['threads']:,} threads ({whose}; data end {p['data_end']}; --keep-partial keeps them)"
        )
    return lines


@app.command()
def compare(
    codebook: Annotated[str, typer.Option(help="The codebook whose codes are compared.")],
    source: SourceOpt = None,
    labels: LabelsOpt = None,
    run: RunOpt = None,
    count: CountOpt = None,
    long: Annotated[bool, typer.Option("--long", help="One row per code and source, with intervals.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """One codebook's codes side by side across sources: threads with each code, share and % unresolved per source."""
    from devquarry.compare import compare as run_compare
    from devquarry.compare import side_by_side

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        df = run_compare(store, codebook, sources=source, labels=labels, run=run, count=count)
        table = df if long else side_by_side(df)  # the codebook's names may come from the store
    title = _say(_codes_line(df.attrs), as_table=fmt == "table")
    emit(table, as_json=as_json, as_csv=as_csv, as_table=as_table, title=title)


@app.command()
def hotspots(
    by: Annotated[
        str, typer.Option(help="code (default: the store's codebook, else category or source), topic, category or source.")
    ] = "code",
    codebook: Annotated[
        Optional[str],
        typer.Option(help="Codebook of the codes (default: the latest classify run's, else the most hand-labelled)."),
    ] = None,
    labels: LabelsOpt = None,
    run: RunOpt = None,
    count: CountOpt = None,
    source: SourceOpt = None,
    min_threads: Annotated[int, typer.Option(help="Leave out groups smaller than this.")] = 10,
    examples: Annotated[int, typer.Option(help="Example unresolved threads per group.")] = 3,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Groups ranked by hotspot score sqrt(popularity x difficulty), with the playbook's fix, the LLM limit, and example threads."""
    from devquarry.hotspots import hotspots as run_hotspots
    from devquarry.metrics import code_grouping, resolve_codes

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        by, codebook, note = code_grouping(store, by, codebook)
        if note:
            say(note, to_err=True)
        if by == "code":
            codes = resolve_codes(store, codebook, labels=labels, run=run, count=count)
            say(f"{codes.codebook} codes from {codes.description}", to_err=True)
        df = run_hotspots(
            store,
            by,
            codebook=codebook,
            sources=source,
            min_threads=min_threads,
            examples=examples,
            labels=labels,
            run=run,
            count=count,
        )
    if fmt == "table":
        df = df[
            ["group", "threads", "pct_unresolved", "popularity", "difficulty", "score", "is_hotspot", "fix", "limit", "examples"]
        ]
    emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table)


@app.command()
def tables(
    out_: Annotated[Path, typer.Option("--out", help="Folder to write the tables (and figures) into.")] = Path("tables"),
    format_: Annotated[str, typer.Option("--format", help="csv, markdown or latex.")] = "csv",
    figures: Annotated[Optional[str], typer.Option(help="Also write the report's figures as png or svg.")] = None,
    db: DbOpt = None,
) -> None:
    """Write the report's tables for papers (csv, markdown or LaTeX), and its figures as PNG or SVG."""
    from devquarry.report.data import report_data
    from devquarry.report.export import write_figures, write_tables

    with _store(db, read_only=True) as store:
        data = report_data(store)
        paths = write_tables(store, out_, format_, data=data)
        if figures:
            paths += write_figures(store, out_, figures, data=data)
    for p in paths:
        say(p)
