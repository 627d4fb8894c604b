"""Codebooks, samples, labels, agreement, classification and evaluation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from devquarry.cli.common import (
    CsvOpt,
    DbOpt,
    JsonOpt,
    TableOpt,
    _store,
    app,
    codebooks_app,
    emit,
    labels_app,
    output_format,
    say,
)
from devquarry.errors import InputError


@codebooks_app.command("list")
def codebooks_list(as_json: JsonOpt = False, as_csv: CsvOpt = False, as_table: TableOpt = False) -> None:
    """The codebooks shipped with devquarry."""
    from devquarry.codebooks import list_codebooks

    emit(list_codebooks(), as_json=as_json, as_csv=as_csv, as_table=as_table)


@codebooks_app.command("show")
def codebooks_show(
    name: Annotated[str, typer.Argument(help="A shipped codebook's id, or a YAML file.")],
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """The codes of a codebook, with their published shares."""
    from devquarry.codebooks import load_codebook

    fmt = output_format(as_json, as_csv, as_table)
    cb = load_codebook(name)
    df = cb.frame()
    if fmt == "table":
        df = df[["code", "name", "parent", "level", "share"]]
    emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table, title=f"{cb.id}: {cb.name}")


@app.command()
def sample(
    codebook: Annotated[str, typer.Option(help="Codebook the sheet is for.")],
    out_: Annotated[Optional[Path], typer.Option("--out", help="Label sheet to write (.csv or .xlsx).")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence level.")] = 0.95,
    margin: Annotated[float, typer.Option(help="Margin of error.")] = 0.05,
    size: Annotated[Optional[int], typer.Option(help="Sample this many instead of computing the size.")] = None,
    strata: Annotated[str, typer.Option(help="Column to stratify by (source, category).")] = "source",
    raters: Annotated[str, typer.Option(help="Rater names, comma-separated: one label column each.")] = "rater1,rater2",
    source: Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")] = None,
    population: Annotated[
        Optional[int], typer.Option(help="Only compute the size for a population of this many threads (no sheet).")
    ] = None,
    seed: int = 42,
    db: DbOpt = None,
) -> None:
    """Compute the sample size (Cochran, finite-population correction) and write a stratified label sheet."""
    from devquarry.codebooks import load_codebook
    from devquarry.labeling import sample_size, stratified_sample, write_sheet
    from devquarry.store import default_db

    cb = load_codebook(codebook)
    if population is not None:
        calc = sample_size(population, confidence, margin)
        say(f"population N = {population:,}; confidence {confidence:.0%} (z = {calc['z']}), margin ±{margin:.1%}, p = 0.5")
        say(f"{calc['formula']}  ->  n0 = {calc['n0']:,}, n = {calc['n']:,}")
        return
    with _store(db, read_only=True) as store:
        threads = store.threads()
    if source:
        threads = threads[threads.source.isin(source)]
    if threads.empty:
        raise InputError(db or default_db(), "no threads to sample")
    calc = sample_size(len(threads), confidence, margin)
    n = size or calc["n"]
    say(f"population N = {calc['population']:,}; confidence {confidence:.0%} (z = {calc['z']}), margin ±{margin:.1%}, p = 0.5")
    say(f"{calc['formula']}  ->  n0 = {calc['n0']:,}, n = {calc['n']:,}")
    if out_ is None:
        raise InputError(None, "name the sheet to write with --out SHEET.csv|.xlsx", field="out")
    picked = stratified_sample(threads, n, strata=strata, seed=seed)
    path = write_sheet(picked, out_, [r.strip() for r in raters.split(",") if r.strip()], cb)
    say(f"{len(picked):,} threads, stratified by {strata}, written to {path}")


@labels_app.command("import")
def labels_import(
    codebook: Annotated[str, typer.Option(help="Codebook of the labels.")],
    sheet: Annotated[Optional[Path], typer.Argument(help="Label sheet (.csv or .xlsx); leave out with --from-threads.")] = None,
    rater: Annotated[
        Optional[str], typer.Option(help="Rater name (with --label-column, or to pick one label_<rater> column).")
    ] = None,
    label_column: Annotated[
        Optional[str], typer.Option(help="Column holding the labels (default: every label_<rater> column).")
    ] = None,
    source: Annotated[Optional[str], typer.Option(help="Source of the threads, when the sheet has no source column.")] = None,
    id_column: Annotated[
        Optional[str], typer.Option(help="Column with the threads' ids, when the sheet has no source_id column.")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV sheet.")] = "utf-8",
    no_header: Annotated[
        bool, typer.Option("--no-header", help="The sheet has no header row: name columns by number (--id-column 1).")
    ] = False,
    from_threads: Annotated[
        bool,
        typer.Option(
            "--from-threads", help="Take the labels that came with the threads of --source (ingest table --map label=...)."
        ),
    ] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Read hand labels (messy strings included: A.1--C.2, C--, ///, trailing *) into the store."""
    from devquarry.labeling import import_labels, import_labels_from_threads

    output_format(as_json, as_csv, as_table)
    with _store(db) as store:
        if from_threads:
            if not source:
                raise InputError(None, "--from-threads needs --source", field="source")
            df = import_labels_from_threads(store, codebook, source, rater or "source")
        elif sheet is None:
            raise InputError(None, "give a label sheet, or --from-threads --source NAME", field="sheet")
        else:
            df = import_labels(
                store,
                sheet,
                codebook,
                rater=rater,
                label_column=label_column,
                source=source,
                id_column=id_column,
                encoding=encoding,
                header=not no_header,
            )
    emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table)


@app.command()
def agreement(
    codebook: Annotated[str, typer.Option(help="Codebook of the labels.")],
    level: Annotated[Optional[int], typer.Option(help="Level (0 = category); default every level.")] = None,
    raters: Annotated[
        Optional[str], typer.Option(help="Comma-separated raters to compare (default: every rater in the store).")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Agreement between raters: Cohen's kappa (Fleiss' for more raters), confusion matrix, disagreements."""
    from devquarry.codebooks import load_codebook
    from devquarry.labeling import agreement as agree

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db, read_only=True) as store:
        cb = load_codebook(codebook)
        levels = [level] if level is not None else list(range(len(cb.levels)))
        picked = [r.strip() for r in raters.split(",") if r.strip()] if raters else None
        results = [agree(store, codebook, lv, raters=picked) for lv in levels]
    import pandas as pd

    if fmt == "csv":  # one row per level; the confusion matrices and disagreements are tables of their own
        emit(
            pd.DataFrame(
                [
                    {k: (", ".join(v) if k == "raters" else v) for k, v in r.items() if not isinstance(v, pd.DataFrame)}
                    for r in results
                ]
            ),
            as_csv=True,
        )
        return
    if fmt == "json":
        sys.stdout.write(
            json.dumps(
                [
                    {
                        k: (v.reset_index().to_dict("records") if isinstance(v, pd.DataFrame) else v)
                        for k, v in r.items()
                        if k != "confusion"
                    }
                    for r in results
                ],
                indent=2,
                default=str,
            )
            + "\n"
        )
        return
    for r in results:
        say(
            f"{r['level']}: {r['method']} kappa {r['kappa']:.3f} over {r['threads']:,} threads "
            f"(raters {', '.join(r['raters'])}; agreement {r['percent_agreement']:.1%}; published human kappa {r['human_kappa_published']})",
            wrap=True,
        )
        if "confusion" in r:
            emit(r["confusion"].reset_index(), title="confusion (rows: first rater)")
        emit(r["disagreements"].head(20), title=f"{len(r['disagreements'])} disagreements (first 20)")


@app.command()
def classify(
    codebook: Annotated[str, typer.Option(help="Codebook to code into (a shipped id or a YAML file).")],
    method: Annotated[
        str,
        typer.Option(
            help="supervised (learns from hand labels), zero-shot (from the codebook's text), or topic (a topic's dominant label)."
        ),
    ] = "supervised",
    rater: Annotated[Optional[str], typer.Option(help="Learn from this rater's labels only.")] = None,
    level: Annotated[Optional[int], typer.Option(help="Code at this level (0 = category); default the deepest labelled.")] = None,
    embedding: Annotated[Optional[str], typer.Option(help="Embedding for zero-shot (default minilm).")] = None,
    threshold: Annotated[float, typer.Option(help="Zero-shot: below this similarity a thread stays unclassified.")] = 0.15,
    source: Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Code every thread into a codebook and save the codes (with method and score) as a run."""
    from devquarry.classify import classify as run_classify

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db) as store:
        df = run_classify(
            store, codebook, method=method, rater=rater, level=level, embedding=embedding, threshold=threshold, sources=source
        )
    if fmt != "table":
        emit(df, as_json=as_json, as_csv=as_csv)
        return
    # A multi-label coder gives a thread several codes: a code's row counts the threads with it,
    # the title each thread once.
    threads = len(df[["source", "source_id"]].drop_duplicates())
    summary = (
        df.groupby("code")
        .agg(threads=("source_id", "size"), mean_score=("score", "mean"))
        .sort_values("threads", ascending=False)
        .reset_index()
    )
    summary["share"] = summary.threads / threads
    extra = f"; {len(df):,} codes, a thread may have several" if len(df) != threads else ""
    emit(summary, title=f"{threads:,} threads coded into {codebook} ({method}){extra}")


@app.command()
def evaluate(
    codebook: Annotated[str, typer.Option(help="Codebook of the hand labels.")],
    gold: Annotated[
        Optional[Path], typer.Option(help="A label sheet to evaluate against (imported first, as rater 'gold' unless --rater).")
    ] = None,
    method: Annotated[str, typer.Option(help="supervised (cross-validated on the same labels) or zero-shot.")] = "supervised",
    rater: Annotated[Optional[str], typer.Option(help="Whose labels are the gold standard.")] = None,
    level: Annotated[int, typer.Option(help="Level (0 = category).")] = 0,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    embedding: Annotated[str, typer.Option(help="Embedding for zero-shot.")] = "minilm",
    label_column: Annotated[Optional[str], typer.Option(help="With --gold: the label column.")] = None,
    source: Annotated[Optional[str], typer.Option(help="With --gold: the threads' source, when the sheet has none.")] = None,
    id_column: Annotated[
        Optional[str], typer.Option(help="With --gold: the threads' id column, when the sheet has none.")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Accuracy, macro-F1 and Cohen's kappa of machine codes against human labels, overall and per code."""
    from devquarry.evaluate import evaluate as run_evaluate
    from devquarry.labeling import import_labels

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db) as store:
        if gold is not None:
            rater = rater or "gold"
            import_labels(store, gold, codebook, rater=rater, label_column=label_column, source=source, id_column=id_column)
        result = run_evaluate(store, codebook, method=method, rater=rater, level=level, folds=folds, embedding=embedding)
    per = result.pop("per_code")
    if fmt == "csv":  # the per-code rows; the overall figures are on the JSON and the table's line
        emit(per, as_csv=True)
        return
    if fmt == "json":
        sys.stdout.write(json.dumps({**result, "per_code": per.to_dict("records")}, indent=2, default=str) + "\n")
        return
    say(
        f"{result['codebook']} at {result['level']} level, {result['method']} ({result['cross_validated'] or 'no training'}): "
        f"n = {result['n']:,}, accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}, kappa {result['kappa']:.3f} "
        f"(human coders: {result['human_kappa']})"
        + (f"; left out (too few labels): {', '.join(result['left_out'])}" if result["left_out"] else ""),
        wrap=True,
    )
    emit(per)


@labels_app.command("shares")
def labels_shares(
    codebook: Annotated[str, typer.Option(help="Codebook of the labels.")],
    level: Annotated[int, typer.Option(help="Level (0 = category).")] = 0,
    rater: Annotated[Optional[str], typer.Option(help="Only this rater's labels.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Share of hand-labelled threads per code, beside the share the codebook publishes."""
    from devquarry.labeling import label_shares

    with _store(db, read_only=True) as store:
        df = label_shares(store, codebook, level, rater)
    emit(
        df,
        as_json=as_json,
        as_csv=as_csv,
        as_table=as_table,
        title=f"{df.attrs['coded']:,} coded threads; {df.attrs['irrelevant']:,} marked irrelevant",
    )
