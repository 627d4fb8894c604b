"""ask: the resolved threads that answer a question, the likely category and fix, and a draft."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
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
    emit,
    engine_of,
    output_format,
    say,
)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The new question.")],
    k: Annotated[int, typer.Option("--k", help="How many threads.")] = 5,
    source: Annotated[Optional[list[str]], typer.Option(help="Only threads of this source (repeatable).")] = None,
    codebook: Annotated[
        Optional[str], typer.Option(help="Codebook for the predicted category (default: the store's latest).")
    ] = None,
    embedding: Annotated[
        Optional[str],
        typer.Option(
            help="Embedding of the dense half of the index (lsa: fast, minilm: semantic; default: minilm when the [minilm] extra is installed, else lsa)."
        ),
    ] = None,
    fusion: Annotated[str, typer.Option(help="convex (scores, the default) or rrf (reciprocal rank).")] = "convex",
    draft: Annotated[
        bool, typer.Option("--draft", help="Draft an answer from the threads with an OpenAI-compatible model.")
    ] = False,
    context_tokens: Annotated[int, typer.Option(help="The model's context window, in tokens.")] = 8192,
    answer_tokens: Annotated[int, typer.Option(help="Tokens kept for the answer.")] = 512,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    as_table: TableOpt = False,
) -> None:
    """Find the resolved threads that answer QUESTION (BM25 + embeddings fused), with the likely category and fix."""
    from devquarry.ask import ask as run_ask
    from devquarry.ask.answer import default_embedding, hit_bodies, index_backlog
    from devquarry.ask.draft import draft as run_draft
    from devquarry.report.data import report_codebook

    fmt = output_format(as_json, as_csv, as_table)
    runner = engine_of(engine, ray_address)
    with _store(db) as store:
        codebook = codebook or report_codebook(store)
        embedding = embedding or default_embedding()
        backlog = index_backlog(store, embedding)
        bar = _count_progress(backlog, f"indexing resolved threads ({embedding})") if backlog else nullcontext(None)
        with bar as advance:
            hits = run_ask(
                store,
                question,
                k=k,
                sources=source,
                codebook=codebook,
                embedding=embedding,
                fusion=fusion,
                progress=advance,
                engine=runner,
            )
        bodies = hit_bodies(store, hits) if draft else {}
    meta = {key: hits.attrs[key] for key in ("category", "category_share", "codebook", "fix", "confident", "category_vote")}
    answer = (
        run_draft(question, hits, bodies, confident=meta["confident"], context_tokens=context_tokens, answer_tokens=answer_tokens)
        if draft
        else None
    )
    if fmt == "csv":  # the hits alone; the category and the draft are not rows
        emit(hits, as_csv=True)
        return
    if fmt == "json":
        payload = {"question": question, **meta, "hits": json.loads(hits.to_json(orient="records"))}
        if answer is not None:
            payload["draft"] = {
                "text": answer.text,
                "citations": answer.citations,
                "abstained": answer.abstained,
                "prompt_tokens": answer.prompt_tokens,
                "model": answer.model,
            }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    # Urls go on lines of their own, never wrapped or cut, numbered like the table's rows (and the draft's citations).
    rows = hits[["title", "score", "overlap", "answer"]].copy()
    rows.insert(0, "#", range(1, len(rows) + 1))
    emit(rows, title=f"resolved threads for: {question}")
    # The urls, category, fix and draft are the threads' (and a model's) text: printed literally, escapes removed.
    for n, url in enumerate(hits.url, 1):
        say(f"[{n}] {url if isinstance(url, str) else '(no url)'}")
    if meta["category"]:
        say(
            f"likely category: {meta['category']} ({meta['category_share']:.0%} of the vote, {meta['codebook']}); "
            f"fix: {meta['fix'] or 'none mapped'}",
            wrap=True,
        )
    if not meta["confident"]:
        say("retrieval is not confident: the closest threads share little with the question", wrap=True)
    if answer is not None:
        say("\n" + answer.text, wrap=True)
