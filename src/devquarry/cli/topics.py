"""devquarry topics and devquarry embeddings."""

from __future__ import annotations

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
    _count_progress,
    _store,
    app,
    embeddings_app,
    emit,
    engine_of,
    err,
    output_format,
    say,
)


@app.command()
def topics(
    embedding: Annotated[
        Optional[str],
        typer.Option(help="Embedding backend: lsa (default), static, minilm, openai[:model]; or name:FOLDER for a local model."),
    ] = None,
    min_topic_size: Annotated[int, typer.Option(help="Smallest topic; smaller clusters are folded into the nearest topic.")] = 10,
    nr_topics: Annotated[Optional[int], typer.Option(help="Number of topics (default: about sqrt(threads / 2.5)).")] = None,
    themes: Annotated[Optional[int], typer.Option(help="Cut the topic hierarchy into this many themes.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same input and seed give the same topics.")] = 42,
    clustering: Annotated[
        str, typer.Option(help="kmeans (fast default, no outliers) or hdbscan (BERTopic's UMAP + HDBSCAN, outliers reduced).")
    ] = "kmeans",
    source: Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")] = None,
    fit_sample: Annotated[
        Optional[int],
        typer.Option(
            help="Above this many threads (default 50,000), fit on a seeded sample of this size and give the others the nearest topic (0: fit on all)."
        ),
    ] = None,
    bertopic_model: Annotated[
        Optional[bool],
        typer.Option(
            "--bertopic-model/--no-bertopic-model",
            help="Also save a BERTopic model of the run beside the store, and KeyBERT-like keywords (default: when the [bertopic] extra is installed).",
        ),
    ] = None,
    list_runs: Annotated[bool, typer.Option("--list", help="List saved topic runs instead of fitting.")] = False,
    show: Annotated[Optional[int], typer.Option(help="Show the topics of a saved run instead of fitting.")] = None,
    over_time: Annotated[
        Optional[str],
        typer.Option(
            help="With --show (or after fitting): threads per topic per month, quarter, year or week instead of the topic table."
        ),
    ] = None,
    assign_new: Annotated[
        bool,
        typer.Option(
            "--assign-new",
            help="Instead of fitting: give the threads a topic run has not seen the topic of their nearest centroid (the run of --show, else the latest).",
        ),
    ] = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Fit a topic model on the store's threads and save it as a run; or list and show runs."""
    from devquarry import topics as tp

    fmt = output_format(as_json, as_csv, as_table)
    runner = engine_of(engine, ray_address)
    if assign_new:
        from devquarry.topics.assign import assign_new as assign

        with _store(db) as store:
            with _count_progress(None, "embedding") as advance:
                df = assign(store, show, progress=advance, engine=runner)
        if fmt == "table":
            say(f"{len(df):,} new threads given a topic of run {show or 'latest'}")
            emit(df.groupby("topic_id").size().rename("threads").reset_index(), title="new threads per topic")
        else:
            emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table)
        return
    if list_runs or show is not None:
        with _store(db, read_only=True) as store:
            if list_runs:
                df = tp.topic_runs(store)
            elif over_time:
                df = tp.topics_over_time(store, show, period=over_time)
            else:
                df = tp.topic_table(store, show)
        emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table)
        return
    with _store(db) as store:
        n = store.con.execute(
            "SELECT count(*) FROM thread" + (f" WHERE source IN ({', '.join('?' for _ in source)})" if source else ""),
            list(source or []),
        ).fetchall()[0][0]
        with _count_progress(n, "embedding") as advance:
            result = tp.fit_topics(
                store,
                embedding=embedding,
                min_topic_size=min_topic_size,
                nr_topics=nr_topics,
                themes=themes,
                seed=seed,
                clustering=clustering,
                sources=source,
                bertopic_model=bertopic_model,
                **({} if fit_sample is None else {"fit_sample": fit_sample}),
                progress=advance,
                engine=runner,
            )
        df = tp.topics_over_time(store, result.run_id, period=over_time) if over_time else tp.topic_table(store, result.run_id)
    if fmt != "table" or over_time:
        emit(df, as_json=as_json, as_csv=as_csv, as_table=as_table)
        return
    emit(df[["topic_id", "label", "size", "share", "theme"]], title=f"topic run {result.run_id}: {result.quality}")


@embeddings_app.command("build-static")
def build_static_cmd(
    out_: Annotated[
        Optional[Path], typer.Option("--out", help="Folder to write (default: devquarry's model folder, $DEVQUARRY_HOME).")
    ] = None,
    dims: Annotated[int, typer.Option(help="PCA dimensions of the static vectors.")] = 256,
    source_model: Annotated[
        Optional[Path], typer.Option("--from", help="A sentence-transformers folder to distil (default: the packaged MiniLM).")
    ] = None,
) -> None:
    """Distil the static (model2vec) model from the packaged all-MiniLM-L6-v2, offline."""
    from devquarry.embeddings.static import build_static

    with err.status("distilling a static model from MiniLM (about 20 s on 2 cores)..."):
        path = build_static(out_, pca_dims=dims, source=source_model)
    say(f"static model written to {path}")
