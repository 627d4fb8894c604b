"""The command line: parses arguments, shows progress, prints. The work is in the library."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from devquarry.errors import InputError
from devquarry.store import Store, default_db

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Mine developer discussions for the challenges of building on LLMs.")
ingest_app = typer.Typer(no_args_is_help=True, help="Import threads from files into the store.")
app.add_typer(ingest_app, name="ingest")
codebooks_app = typer.Typer(no_args_is_help=True, help="Challenge taxonomies (codebooks).")
app.add_typer(codebooks_app, name="codebooks")
labels_app = typer.Typer(no_args_is_help=True, help="Hand labels.")
app.add_typer(labels_app, name="labels")
embeddings_app = typer.Typer(no_args_is_help=True, help="Embedding models.")
app.add_typer(embeddings_app, name="embeddings")

# Piped output gets a wide table rather than Rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

DbOpt = Annotated[Optional[Path], typer.Option("--db", help="DuckDB store (default devquarry.duckdb, or $DEVQUARRY_DB).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print rows as JSON.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print rows as CSV.")]
Files = Annotated[list[Path], typer.Argument(help="Input files.", show_default=False)]


def main() -> None:
    """Entry point: bad input exits 2 with one line on stderr; other failures exit 1."""
    try:
        app(standalone_mode=False)
    except InputError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click's usage errors are ClickException
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        if os.environ.get("DEVQUARRY_DEBUG"):
            raise
        err.print(f"[red]error:[/red] {exc.__class__.__name__}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _store(db: Path | None, read_only: bool = False) -> Store:
    return Store(db or default_db(), read_only=read_only)


@contextmanager
def _byte_progress(total: int, label: str):
    show = err.is_terminal or os.environ.get("DEVQUARRY_PROGRESS") == "1"
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=err, disable=not show, transient=False,
    ) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda n: bar.advance(task, n)


@contextmanager
def _count_progress(total: int, label: str):
    show = err.is_terminal or os.environ.get("DEVQUARRY_PROGRESS") == "1"
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=err, disable=not show) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda n: bar.advance(task, n)


def emit(df: pd.DataFrame, *, as_json: bool = False, as_csv: bool = False, title: str | None = None) -> None:
    """Print rows as a Rich table, JSON or CSV (the same flags on every command that prints rows)."""
    if as_json:
        sys.stdout.write(df.to_json(orient="records", date_format="iso", indent=2) + "\n")
        return
    if as_csv:
        sys.stdout.write(df.to_csv(index=False))
        return
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[_cell(v) for v in row])
    out.print(table)


def _cell(v) -> str:
    if v is None or (not isinstance(v, (list, dict, str)) and pd.isna(v)):
        return ""
    if isinstance(v, (list, tuple)) or hasattr(v, "tolist") and not isinstance(v, (str, float, int)):
        items = v.tolist() if hasattr(v, "tolist") else v
        return ", ".join(str(i.get("title", i)) if isinstance(i, dict) else str(i) for i in items)
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    return str(v)


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


@app.command()
def info(db: DbOpt = None, as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """Per source: threads, replies, date range, share resolved, median hours to first reply."""
    from devquarry.info import info as info_frame

    with _store(db, read_only=True) as store:
        df = info_frame(store)
    emit(df, as_json=as_json, as_csv=as_csv, title=f"{store.path}")


@app.command()
def runs(db: DbOpt = None, as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """Every run recorded in the store: command, parameters, versions, counts, times."""
    with _store(db, read_only=True) as store:
        df = store.runs()
    if not as_json and not as_csv:
        df = df[["run_id", "command", "counts", "started_at", "ended_at"]]
    emit(df, as_json=as_json, as_csv=as_csv)


@app.command()
def topics(
    embedding: Annotated[Optional[str], typer.Option(help="Embedding backend: static (default), minilm, lsa, openai[:model]; or name:FOLDER for a local model.")] = None,
    min_topic_size: Annotated[int, typer.Option(help="Smallest topic; smaller clusters are folded into the nearest topic.")] = 10,
    nr_topics: Annotated[Optional[int], typer.Option(help="Number of topics (default: about sqrt(threads / 2.5)).")] = None,
    themes: Annotated[Optional[int], typer.Option(help="Cut the topic hierarchy into this many themes.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same input and seed give the same topics.")] = 42,
    clustering: Annotated[str, typer.Option(help="kmeans (fast default, no outliers) or hdbscan (BERTopic's UMAP + HDBSCAN, outliers reduced).")] = "kmeans",
    source: Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")] = None,
    list_runs: Annotated[bool, typer.Option("--list", help="List saved topic runs instead of fitting.")] = False,
    show: Annotated[Optional[int], typer.Option(help="Show the topics of a saved run instead of fitting.")] = None,
    over_time: Annotated[Optional[str], typer.Option(help="With --show (or after fitting): threads per topic per month, quarter, year or week instead of the topic table.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Fit a topic model (BERTopic) on the store's threads and save it as a run; or list and show runs."""
    from devquarry import topics as tp

    if list_runs or show is not None:
        with _store(db, read_only=True) as store:
            if list_runs:
                df = tp.topic_runs(store)
            elif over_time:
                df = tp.topics_over_time(store, show, period=over_time)
            else:
                df = tp.topic_table(store, show)
        emit(df, as_json=as_json, as_csv=as_csv)
        return
    with _store(db) as store:
        n = len(store.threads()) if not source else int(store.threads().source.isin(source).sum())
        with _count_progress(n, "embedding") as advance:
            result = tp.fit_topics(store, embedding=embedding, min_topic_size=min_topic_size, nr_topics=nr_topics, themes=themes,
                                   seed=seed, clustering=clustering, sources=source, progress=advance)
        df = tp.topics_over_time(store, result.run_id, period=over_time) if over_time else tp.topic_table(store, result.run_id)
    if as_json or as_csv or over_time:
        emit(df, as_json=as_json, as_csv=as_csv)
        return
    emit(df[["topic_id", "label", "size", "share", "theme"]], title=f"topic run {result.run_id}: {result.quality}")


@embeddings_app.command("build-static")
def build_static_cmd(
    out_: Annotated[Optional[Path], typer.Option("--out", help="Folder to write (default: devquarry's model folder, $DEVQUARRY_HOME).")] = None,
    dims: Annotated[int, typer.Option(help="PCA dimensions of the static vectors.")] = 256,
    source_model: Annotated[Optional[Path], typer.Option("--from", help="A sentence-transformers folder to distil (default: the packaged MiniLM).")] = None,
) -> None:
    """Distil the static (model2vec) model from the packaged all-MiniLM-L6-v2, offline."""
    from devquarry.embeddings.static import build_static

    err.print("distilling a static model (about 15 s)...")
    path = build_static(out_, pca_dims=dims, source=source_model)
    out.print(f"static model written to {path}")


@codebooks_app.command("list")
def codebooks_list(as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """The codebooks shipped with devquarry."""
    from devquarry.codebooks import list_codebooks

    emit(list_codebooks(), as_json=as_json, as_csv=as_csv)


@codebooks_app.command("show")
def codebooks_show(name: Annotated[str, typer.Argument(help="A shipped codebook's id, or a YAML file.")],
                   as_json: JsonOpt = False, as_csv: CsvOpt = False) -> None:
    """The codes of a codebook, with their published shares."""
    from devquarry.codebooks import load_codebook

    cb = load_codebook(name)
    df = cb.frame()
    if not as_json and not as_csv:
        df = df[["code", "name", "parent", "level", "share"]]
    emit(df, as_json=as_json, as_csv=as_csv, title=f"{cb.id}: {cb.name}")


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
    population: Annotated[Optional[int], typer.Option(help="Only compute the size for a population of this many threads (no sheet).")] = None,
    seed: int = 42,
    db: DbOpt = None,
) -> None:
    """Compute the sample size (Cochran, finite-population correction) and write a stratified label sheet."""
    from devquarry.codebooks import load_codebook
    from devquarry.labeling import sample_size, stratified_sample, write_sheet

    cb = load_codebook(codebook)
    if population is not None:
        calc = sample_size(population, confidence, margin)
        out.print(f"population N = {population:,}; confidence {confidence:.0%} (z = {calc['z']}), margin ±{margin:.1%}, p = 0.5")
        out.print(f"{calc['formula']}  ->  n0 = {calc['n0']:,}, n = {calc['n']:,}")
        return
    with _store(db, read_only=True) as store:
        threads = store.threads()
    if source:
        threads = threads[threads.source.isin(source)]
    if threads.empty:
        raise InputError(db or default_db(), "no threads to sample")
    calc = sample_size(len(threads), confidence, margin)
    n = size or calc["n"]
    out.print(f"population N = {calc['population']:,}; confidence {confidence:.0%} (z = {calc['z']}), margin ±{margin:.1%}, p = 0.5")
    out.print(f"{calc['formula']}  ->  n0 = {calc['n0']:,}, n = {calc['n']:,}")
    if out_ is None:
        raise InputError(None, "name the sheet to write with --out SHEET.csv|.xlsx", field="out")
    picked = stratified_sample(threads, n, strata=strata, seed=seed)
    path = write_sheet(picked, out_, [r.strip() for r in raters.split(",") if r.strip()], cb)
    out.print(f"{len(picked):,} threads, stratified by {strata}, written to {path}")


@labels_app.command("import")
def labels_import(
    codebook: Annotated[str, typer.Option(help="Codebook of the labels.")],
    sheet: Annotated[Optional[Path], typer.Argument(help="Label sheet (.csv or .xlsx); leave out with --from-threads.")] = None,
    rater: Annotated[Optional[str], typer.Option(help="Rater name (with --label-column, or to pick one label_<rater> column).")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Column holding the labels (default: every label_<rater> column).")] = None,
    source: Annotated[Optional[str], typer.Option(help="Source of the threads, when the sheet has no source column.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Column with the threads' ids, when the sheet has no source_id column.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV sheet.")] = "utf-8",
    from_threads: Annotated[bool, typer.Option("--from-threads", help="Take the labels that came with the threads of --source (ingest table --map label=...).")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read hand labels (messy strings included: A.1--C.2, C--, ///, trailing *) into the store."""
    from devquarry.labeling import import_labels, import_labels_from_threads

    with _store(db) as store:
        if from_threads:
            if not source:
                raise InputError(None, "--from-threads needs --source", field="source")
            df = import_labels_from_threads(store, codebook, source, rater or "source")
        elif sheet is None:
            raise InputError(None, "give a label sheet, or --from-threads --source NAME", field="sheet")
        else:
            df = import_labels(store, sheet, codebook, rater=rater, label_column=label_column, source=source, id_column=id_column, encoding=encoding)
    emit(df, as_json=as_json)


@app.command()
def agreement(
    codebook: Annotated[str, typer.Option(help="Codebook of the labels.")],
    level: Annotated[Optional[int], typer.Option(help="Level (0 = category); default every level.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Agreement between raters: Cohen's kappa (Fleiss' for more raters), confusion matrix, disagreements."""
    from devquarry.codebooks import load_codebook
    from devquarry.labeling import agreement as agree

    cb = load_codebook(codebook)
    levels = [level] if level is not None else list(range(len(cb.levels)))
    with _store(db, read_only=True) as store:
        results = [agree(store, codebook, lv) for lv in levels]
    if as_json:
        sys.stdout.write(json.dumps([{k: (v.reset_index().to_dict("records") if isinstance(v, pd.DataFrame) else v)
                                      for k, v in r.items() if k != "confusion"} for r in results], indent=2, default=str) + "\n")
        return
    for r in results:
        out.print(f"[bold]{r['level']}[/bold]: {r['method']} kappa {r['kappa']:.3f} over {r['threads']:,} threads "
                  f"(raters {', '.join(r['raters'])}; agreement {r['percent_agreement']:.1%}; published human kappa {r['human_kappa_published']})")
        if "confusion" in r:
            emit(r["confusion"].reset_index(), title="confusion (rows: first rater)")
        emit(r["disagreements"].head(20), title=f"{len(r['disagreements'])} disagreements (first 20)")


@app.command()
def classify(
    codebook: Annotated[str, typer.Option(help="Codebook to code into (a shipped id or a YAML file).")],
    method: Annotated[str, typer.Option(help="supervised (learns from hand labels), zero-shot (from the codebook's text), or topic (a topic's dominant label).")] = "supervised",
    rater: Annotated[Optional[str], typer.Option(help="Learn from this rater's labels only.")] = None,
    level: Annotated[Optional[int], typer.Option(help="Code at this level (0 = category); default the deepest labelled.")] = None,
    embedding: Annotated[Optional[str], typer.Option(help="Embedding for zero-shot (default minilm).")] = None,
    threshold: Annotated[float, typer.Option(help="Zero-shot: below this similarity a thread stays unclassified.")] = 0.15,
    source: Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Code every thread into a codebook and save the codes (with method and score) as a run."""
    from devquarry.classify import classify as run_classify

    with _store(db) as store:
        df = run_classify(store, codebook, method=method, rater=rater, level=level, embedding=embedding, threshold=threshold, sources=source)
    if as_json or as_csv:
        emit(df, as_json=as_json, as_csv=as_csv)
        return
    summary = df.groupby("code").agg(threads=("source_id", "size"), mean_score=("score", "mean")).sort_values("threads", ascending=False).reset_index()
    summary["share"] = summary.threads / summary.threads.sum()
    emit(summary, title=f"{len(df):,} threads coded into {codebook} ({method})")


@app.command()
def evaluate(
    codebook: Annotated[str, typer.Option(help="Codebook of the hand labels.")],
    gold: Annotated[Optional[Path], typer.Option(help="A label sheet to evaluate against (imported first, as rater 'gold' unless --rater).")] = None,
    method: Annotated[str, typer.Option(help="supervised (cross-validated on the same labels) or zero-shot.")] = "supervised",
    rater: Annotated[Optional[str], typer.Option(help="Whose labels are the gold standard.")] = None,
    level: Annotated[int, typer.Option(help="Level (0 = category).")] = 0,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    embedding: Annotated[str, typer.Option(help="Embedding for zero-shot.")] = "minilm",
    label_column: Annotated[Optional[str], typer.Option(help="With --gold: the label column.")] = None,
    source: Annotated[Optional[str], typer.Option(help="With --gold: the threads' source, when the sheet has none.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="With --gold: the threads' id column, when the sheet has none.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy, macro-F1 and Cohen's kappa of machine codes against human labels, overall and per code."""
    from devquarry.evaluate import evaluate as run_evaluate
    from devquarry.labeling import import_labels

    with _store(db) as store:
        if gold is not None:
            rater = rater or "gold"
            import_labels(store, gold, codebook, rater=rater, label_column=label_column, source=source, id_column=id_column)
        result = run_evaluate(store, codebook, method=method, rater=rater, level=level, folds=folds, embedding=embedding)
    per = result.pop("per_code")
    if as_json:
        sys.stdout.write(json.dumps({**result, "per_code": per.to_dict("records")}, indent=2, default=str) + "\n")
        return
    out.print(f"{result['codebook']} at {result['level']} level, {result['method']} ({result['cross_validated'] or 'no training'}): "
              f"n = {result['n']:,}, accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}, kappa {result['kappa']:.3f} "
              f"(human coders: {result['human_kappa']})" + (f"; left out (too few labels): {', '.join(result['left_out'])}" if result["left_out"] else ""))
    emit(per)


@labels_app.command("shares")
def labels_shares(
    codebook: Annotated[str, typer.Option(help="Codebook of the labels.")],
    level: Annotated[int, typer.Option(help="Level (0 = category).")] = 0,
    rater: Annotated[Optional[str], typer.Option(help="Only this rater's labels.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Share of hand-labelled threads per code, beside the share the codebook publishes."""
    from devquarry.labeling import label_shares

    with _store(db, read_only=True) as store:
        df = label_shares(store, codebook, level, rater)
    emit(df, as_json=as_json, as_csv=as_csv, title=f"{df.attrs['coded']:,} coded threads; {df.attrs['irrelevant']:,} marked irrelevant")


@app.command()
def report(
    out_: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    db: DbOpt = None,
) -> None:
    """Write a self-contained HTML report of the store."""
    from devquarry.report import build_report

    with _store(db, read_only=True) as store:
        path = build_report(store, out_)
    out.print(f"report written to {path}")


@app.command()
def demo(
    out_: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    db: DbOpt = None,
) -> None:
    """Run the bundled Stack Overflow corpus through every step and write the report."""
    from devquarry.demo import demo_source, run_demo

    with _store(db) as store, _byte_progress(demo_source().total_bytes, "demo corpus") as advance:
        counts, path = run_demo(store, out_, progress=advance)
    emit(counts, title=f"demo corpus ingested into {store.path}")
    out.print(f"report written to {path}")


if __name__ == "__main__":
    main()
