"""reproduce: a published study's figures beside the same measures on this store."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from devquarry.cli.analysis import SourceOpt
from devquarry.cli.common import CsvOpt, DbOpt, JsonOpt, TableOpt, _store, app, emit, output_format, say

LabelsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--labels",
        metavar="RATER",
        help="Code shares from this rater's hand labels (default: the latest classify run, else the hand labels).",
    ),
]
RunOpt = Annotated[Optional[int], typer.Option("--run", metavar="ID", help="Code shares from this classify run.")]
CountOpt = Annotated[
    Optional[str],
    typer.Option("--count", metavar="primary|any", help="Count each thread under its primary code or under every code it has."),
]


@app.command()
def reproduce(
    study: Annotated[str, typer.Argument(help="A shipped study (chen2024-forum, chen2025-so-api) or a study YAML file.")],
    source: SourceOpt = None,
    labels: LabelsOpt = None,
    run: RunOpt = None,
    count: CountOpt = None,
    keep_duplicates: Annotated[
        bool, typer.Option(help="Count copies of a question (same source, title and time) apart.")
    ] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """A study's published figures beside ours: each value and its n on both sides, the difference, and what the store lacks where it cannot compute one."""
    from devquarry.reproduce import display_rows
    from devquarry.reproduce import reproduce as run_reproduce

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        df = run_reproduce(store, study, source=source, labels=labels, run=run, count=count, dedupe=not keep_duplicates)
    a = df.attrs
    head = f"{a['study']}: {a['title']} ({a['source']}), beside {a['threads']:,} threads of {store.path}"
    lines = []
    if a.get("codes_from"):
        lines.append(f"{a['codebook']} codes from {a['codes_from']}")
    notes = df.dropna(subset=["note"]).drop_duplicates(["figure", "note"])
    lines += [f"{r.figure}: {r.note}" for r in notes.itertuples() if r.measure != "unresolved_rank"]
    if fmt != "table":
        for line in [head, *lines]:
            say(line, to_err=True)
        emit(df, as_json=as_json, as_csv=as_csv)
        return
    emit(display_rows(df), as_table=True, title=head)
    for line in lines:
        say(line)
    say(
        "published: the paper's value (origin paper) or the study's own data (origin study-data); difference: ours minus published"
    )
