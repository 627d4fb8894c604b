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
    EngineOpt,
    JsonOpt,
    RayAddressOpt,
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
    strategy: Annotated[
        str,
        typer.Option(
            help="stratified (proportional by --strata), uncertainty (the threads a coder trained on the hand labels "
            "so far is least sure of, least sure first) or random. uncertainty and random skip labelled threads."
        ),
    ] = "stratified",
    train_rater: Annotated[
        Optional[list[str]],
        typer.Option(
            "--train-rater", help="uncertainty: learn from this rater's labels (repeatable or comma-separated; default all)."
        ),
    ] = None,
    seed: int = 42,
    db: DbOpt = None,
) -> None:
    """Compute the sample size (Cochran, finite-population correction) and write a label sheet: a
    stratified sample, or (--strategy uncertainty) the threads the coder is least sure of."""
    from devquarry.codebooks import load_codebook
    from devquarry.labeling import sample_size, stratified_sample, write_sheet
    from devquarry.store import default_db

    cb = load_codebook(codebook)
    if strategy not in ("stratified", "uncertainty", "random"):
        raise InputError(None, f"unknown strategy {strategy!r}; use stratified, uncertainty or random", field="strategy")
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
    if strategy == "stratified":
        picked = stratified_sample(threads, n, strata=strata, seed=seed)
        how = f"stratified by {strata}"
    else:
        from devquarry.active import MEASURE_TEXT, pick

        trainers = [r.strip() for v in train_rater or [] for r in v.split(",") if r.strip()] or None
        with _store(db, read_only=True) as store:
            picked = pick(store, codebook, n, strategy=strategy, train_raters=trainers, sources=source, strata=strata, seed=seed)
        a = picked.attrs
        if a["note"]:
            say(a["note"], wrap=True)
        how = {
            "uncertainty": f"by uncertainty ({MEASURE_TEXT.get(a.get('measure'))}; coder trained on "
            f"{a['labels']:,} hand labels of {len(a['codes'])} codes), least sure first",
            "random": "at random",
            "stratified": f"stratified by {strata}",
        }[a["strategy"]]
        how += ", none labelled before"
    path = write_sheet(picked, out_, [r.strip() for r in raters.split(",") if r.strip()], cb)
    say(f"{len(picked):,} threads, {how}, written to {path}")


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


def _names(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also take comma-separated names."""
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    return names or None


TrainRaterOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--train-rater", help="Learn from this rater's hand labels (repeatable or comma-separated; default every rater)."
    ),
]
TrainSourceOpt = Annotated[
    Optional[list[str]],
    typer.Option("--train-source", help="Learn from the labels of threads of this source only (repeatable)."),
]
CoderOpt = Annotated[
    Optional[str],
    typer.Option(help="Trained coder: lexical, stacked, ... (default: the codebook's best measured one, see the README)."),
]


@app.command()
def classify(
    codebook: Annotated[str, typer.Option(help="Codebook to code into (a shipped id or a YAML file).")],
    method: Annotated[
        str,
        typer.Option(
            help="supervised (learns from hand labels), zero-shot (from the codebook's text), topic (a topic's dominant "
            "label) or llm (an OpenAI-compatible chat model, prompted with the codebook and labelled examples)."
        ),
    ] = "supervised",
    train_rater: TrainRaterOpt = None,
    train_source: TrainSourceOpt = None,
    coder: CoderOpt = None,
    rater: Annotated[Optional[str], typer.Option(help="Older name of --train-rater.", hidden=True)] = None,
    level: Annotated[Optional[int], typer.Option(help="Code at this level (0 = category); default the deepest labelled.")] = None,
    embedding: Annotated[Optional[str], typer.Option(help="Embedding for zero-shot (default minilm).")] = None,
    threshold: Annotated[float, typer.Option(help="Zero-shot: below this similarity a thread stays unclassified.")] = 0.15,
    source: Annotated[Optional[list[str]], typer.Option(help="Code only threads of this source (repeatable).")] = None,
    samples: Annotated[int, typer.Option(help="LLM: answers per thread; they vote, the share of votes is the score.")] = 3,
    examples: Annotated[int, typer.Option(help="LLM: the most similar labelled threads shown as examples.")] = 5,
    max_threads: Annotated[Optional[int], typer.Option(help="LLM: code at most this many threads.")] = None,
    workers: Annotated[int, typer.Option(help="LLM: calls in flight at once.")] = 1,
    timeout: Annotated[Optional[float], typer.Option(help="LLM: seconds to wait for one answer.")] = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    recode_all: Annotated[
        bool,
        typer.Option(
            "--recode-all",
            help="Code every thread again; by default, after a run with the same coder, settings and labels, only threads ingested or changed since are coded.",
        ),
    ] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Code threads into a codebook and save the codes (with method, score and rank: 0 is the primary code) as a run."""
    from devquarry.classify import classify as run_classify
    from devquarry.cli.common import _progress, engine_of

    fmt = output_format(as_json, as_csv, as_table)
    runner = engine_of(engine, ray_address)
    llm = None
    if method == "llm":
        from devquarry.coders.llm import LLMSettings

        llm = LLMSettings.from_env(samples=samples, examples=examples, workers=workers, timeout=timeout)
    with _store(db) as store, _progress(0, "coding") as advance:
        seen = [0]

        def moved(done: int, total: int | None) -> None:
            # The LLM coder reports each thread coded (with a total), a dense coder the texts embedded so far.
            step = 1 if total else max(done - seen[0], 0)
            seen[0] = max(seen[0], done) if not total else seen[0]
            advance(step)

        df = run_classify(
            store,
            codebook,
            method=method,
            coder=coder,
            train_raters=_names(train_rater) or ([rater] if rater else None),
            train_sources=_names(train_source),
            level=level,
            embedding=embedding,
            threshold=threshold,
            sources=source,
            llm=llm,
            max_threads=max_threads,
            notify=lambda line: say(line, to_err=True),
            progress=moved,
            engine=runner,
            reuse=not recode_all,
        )
    if fmt != "table":
        emit(df, as_json=as_json, as_csv=as_csv)
        return
    # Counted as the codebook is: each thread under its primary code, or under every code it has.
    threads = len(df[["source", "source_id"]].drop_duplicates())
    counted = df[df["rank"] == 0] if df.attrs.get("counting") == "primary" else df
    summary = (
        counted.groupby("code")
        .agg(threads=("source_id", "size"), mean_score=("score", "mean"))
        .sort_values("threads", ascending=False)
        .reset_index()
    )
    summary["share"] = summary.threads / threads
    if df.attrs.get("counting") == "primary" and len(df) != threads:
        secondary = df[df["rank"] > 0].groupby("code").size()
        summary["secondary"] = [int(secondary.get(c, 0)) for c in summary.code]
        how = f"; each thread under its primary code, {len(df) - threads:,} secondary codes beside"
    else:
        how = f"; {len(df):,} codes, a thread may have several" if len(df) != threads else ""
    who = f", coder {df.attrs['coder']}" if df.attrs.get("coder") else ""
    trained = df.attrs.get("trained_raters")
    learnt = f", trained on {', '.join(trained)}'s labels" if trained else ""
    emit(
        summary,
        title=f"{threads:,} threads coded into {codebook} ({method}{who}{learnt}; run {df.attrs.get('run_id')}){how}",
    )


@app.command()
def evaluate(
    codebook: Annotated[str, typer.Option(help="Codebook of the hand labels.")],
    gold: Annotated[
        Optional[Path],
        typer.Option(help="A label sheet to score against (imported first, as rater 'gold' unless --gold-rater)."),
    ] = None,
    gold_rater: Annotated[
        Optional[str], typer.Option("--gold-rater", "--rater", help="Whose labels are the gold standard.")
    ] = None,
    run: Annotated[
        Optional[int], typer.Option("--run", metavar="ID", help="Score this stored classify run (see `devquarry runs`).")
    ] = None,
    train_rater: TrainRaterOpt = None,
    train_source: TrainSourceOpt = None,
    coder: CoderOpt = None,
    cross_validate: Annotated[
        bool,
        typer.Option("--cross-validate", help="Cross-validate on the gold labels themselves (not a held-out score)."),
    ] = False,
    method: Annotated[str, typer.Option(help="supervised (trained on other labels) or zero-shot.")] = "supervised",
    level: Annotated[int, typer.Option(help="Level (0 = category).")] = 0,
    folds: Annotated[int, typer.Option(help="With --cross-validate: the folds.")] = 5,
    embedding: Annotated[str, typer.Option(help="Embedding for zero-shot.")] = "minilm",
    label_column: Annotated[Optional[str], typer.Option(help="With --gold: the label column.")] = None,
    source: Annotated[Optional[str], typer.Option(help="With --gold: the threads' source, when the sheet has none.")] = None,
    id_column: Annotated[
        Optional[str], typer.Option(help="With --gold: the threads' id column, when the sheet has none.")
    ] = None,
    no_header: Annotated[bool, typer.Option("--no-header", help="With --gold: the sheet has no header row.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Accuracy, macro-F1, Cohen's kappa and calibration of machine codes against gold labels they did not learn from:
    a stored run (--run), a coder trained on other labels (default), zero-shot, or --cross-validate."""
    from devquarry.evaluate import evaluate as run_evaluate
    from devquarry.labeling import import_labels

    fmt = output_format(as_json, as_csv, as_table)
    with _store(db) as store:
        if gold is not None:
            gold_rater = gold_rater or "gold"
            import_labels(
                store,
                gold,
                codebook,
                rater=gold_rater,
                label_column=label_column,
                source=source,
                id_column=id_column,
                header=not no_header,
            )
        result = run_evaluate(
            store,
            codebook,
            gold=gold_rater,
            run=run,
            method=method,
            coder=coder,
            train_raters=_names(train_rater),
            train_sources=_names(train_source),
            cross_validate=cross_validate,
            level=level,
            folds=folds,
            embedding=embedding,
        )
    per = result.pop("per_code")
    if fmt == "csv":  # the per-code rows; the overall figures are on the JSON and the table's line
        emit(per, as_csv=True)
        return
    if fmt == "json":
        sys.stdout.write(json.dumps({**result, "per_code": per.to_dict("records")}, indent=2, default=str) + "\n")
        return
    say(f"{result['codebook']} at {result['level']} level, {_how(result)}", wrap=True)
    ece = f", calibration error {result['ece']:.3f}" if result.get("ece") is not None else ""
    say(
        f"n = {result['n']:,}, accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}, kappa {result['kappa']:.3f}"
        f"{ece} (human coders: {result['human_kappa']})"
        + (f"; left out (too few labels): {', '.join(result['left_out'])}" if result["left_out"] else ""),
        wrap=True,
    )
    emit(per)


def _how(r: dict) -> str:
    """What was scored against what, in words."""
    gold = f"gold labels of {r['gold']}"
    if r["mode"] == "run":
        left = r.get("left_out_training_threads") or 0
        return (
            f"classify run {r['run']} ({r.get('method')}{', ' + r['coder'] if r.get('coder') else ''}) against the {gold}"
            + (f"; {left:,} gold threads it trained on left out" if left else "")
            + (f"; {r['not_coded_by_run']:,} gold threads it did not code" if r.get("not_coded_by_run") else "")
        )
    if r["mode"] == "held-out":
        t = r["trained_on"]
        return (
            f"{r['coder']} coder trained on {t['threads']:,} labels of {', '.join(t['raters'])} "
            f"({', '.join(t['sources'])}), scored on the {gold}"
            + (
                f"; {t['left_out_gold_threads']:,} of its labels were on gold threads and left out"
                if t["left_out_gold_threads"]
                else ""
            )
        )
    if r["mode"] == "cross-validated":
        return f"{r['cross_validated']} cross-validated on the {gold} themselves (not a held-out score)"
    return f"zero-shot (no training) against the {gold}"


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
