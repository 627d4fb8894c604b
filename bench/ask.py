"""Retrieval for `devquarry ask`: hybrid (BM25 + embeddings, fused by reciprocal rank or by a convex
combination of the scores) against
BM25 alone and embeddings alone, in one process, on two tasks with known answers:

(a) the duplicate pairs of the cstheory-meta dump (PostLinks LinkTypeId 3): the duplicate's title
    is the query, its original the answer, among all the site's questions (the duplicate itself
    left out);
(b) known-item search over the labelled Stack Overflow questions: each title is a query, its own
    body (title removed) the answer, among all the bodies.

Prints recall@1, @5, @10 and MRR per mode, then p50 and p95 latency per query of the hybrid
search over an index of at least 10,000 threads (the GitHub issues and the Stack Overflow
questions of ../shared/data), with the time to build it and to update it with 100 new threads.

Usage: python bench/ask.py [--embedding lsa] [--queries 300]
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import SHARED, labelled_questions

from devquarry import Store, ingest_github, ingest_stackexchange, ingest_table
from devquarry.ask.answer import thread_docs
from devquarry.ask.index import HybridIndex
from devquarry.text import thread_text

MODES = ("hybrid-rrf", "hybrid-convex", "bm25", "dense")


def evaluate(index: HybridIndex, queries: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    """queries: (text, answer key, key to leave out)."""
    rows = []
    for mode in MODES:
        ranks = []
        for text, answer, skip in queries:
            hits = index.search(
                text,
                k=100,
                mode=mode.split("-")[0],
                exclude={skip} if skip else None,
                fusion=mode.split("-")[1] if "-" in mode else "convex",
            )
            found = hits.index[hits.key == answer]
            ranks.append(int(found[0]) + 1 if len(found) else None)
        r = pd.Series(ranks, dtype=float)
        rows.append(
            {
                "mode": mode,
                "queries": len(r),
                "recall@1": (r <= 1).mean(),
                "recall@5": (r <= 5).mean(),
                "recall@10": (r <= 10).mean(),
                "MRR": (1 / r).fillna(0).mean(),
            }
        )
    return pd.DataFrame(rows)


def duplicates_task(folder: Path, embedding: str) -> tuple[HybridIndex, list]:
    with Store(folder / "se.duckdb") as s:
        ingest_stackexchange(s, SHARED / "stackexchange-dump-cstheory-meta")
        docs = thread_docs(s, resolved_only=False)
        pairs = s.query("SELECT from_id, to_id FROM link WHERE link_type = 'duplicate'")
        source = docs.source.iloc[0]
    index = HybridIndex(folder / "dup-index", embedding)
    index.update(docs)
    title = dict(zip(docs.source_id, docs.title))
    keys = set(docs.key)
    queries = [
        (title[f], f"{source}|{t}", f"{source}|{f}")
        for f, t in zip(pairs.from_id, pairs.to_id)
        if f in title and f"{source}|{t}" in keys
    ]
    return index, queries


def known_item_task(folder: Path, embedding: str) -> tuple[HybridIndex, list]:
    q = labelled_questions()
    docs = pd.DataFrame({"key": q.url, "hash": q.url, "text": [thread_text("", b) for b in q.body]})
    index = HybridIndex(folder / "so-index", embedding)
    index.update(docs)
    return index, list(zip(q.title, q.url, [None] * len(q)))


def latency(folder: Path, embedding: str, n_queries: int) -> dict:
    with Store(folder / "big.duckdb") as s:
        ingest_github(s, sorted(glob.glob(str(SHARED / "github-issues-llm-apps" / "*.json.gz"))))
        ingest_github(s, sorted(glob.glob(str(SHARED / "github-issues-llm-vendors" / "*.csv"))), encoding="utf-8,gb18030")
        ingest_table(
            s,
            [SHARED / "stackoverflow-openai-api" / "questions_with_irrelevant.csv.gz"],
            source="stackoverflow",
            encoding="utf-8,latin-1",
        )
        docs = thread_docs(s, resolved_only=False)
    _held_out, base = docs.iloc[:100], docs.iloc[100:]
    index = HybridIndex(folder / "big-index", embedding)
    t = time.perf_counter()
    index.update(base)
    build = time.perf_counter() - t
    t = time.perf_counter()
    reopened = HybridIndex(folder / "big-index", embedding)
    load = time.perf_counter() - t
    t = time.perf_counter()
    change = reopened.update(docs)
    update = time.perf_counter() - t
    rng = np.random.default_rng(0)
    queries = docs.title.iloc[rng.choice(len(docs), size=n_queries, replace=False)].tolist()
    times = []
    for text in queries:
        t = time.perf_counter()
        reopened.search(text, k=10)
        times.append(time.perf_counter() - t)
    return {
        "documents": len(docs),
        "build_s": build,
        "load_s": load,
        "update_100_s": update,
        "update": change,
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedding", default="lsa")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--latency-embedding", default=None, help="embedding of the 10,000-thread index (default: --embedding)")
    ap.add_argument("--only", choices=["tasks", "latency"], default=None, help="run only the two tasks or only the latency part")
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tasks = (
            []
            if args.only == "latency"
            else [("(a) cstheory-meta duplicates", duplicates_task), ("(b) Stack Overflow title -> own body", known_item_task)]
        )
        for name, task in tasks:
            index, queries = task(folder, args.embedding)
            table = evaluate(index, queries)
            print(f"\n{name}: {len(queries)} queries over {len(index.docs):,} documents, embedding {args.embedding}")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            best = table.set_index("mode")
            for h in ("hybrid-rrf", "hybrid-convex"):
                print(f"{h} MRR minus the better single retriever: {best.MRR[h] - max(best.MRR['bm25'], best.MRR['dense']):+.3f}")
        if args.only == "tasks":
            return
        lat = latency(folder, args.latency_embedding or args.embedding, args.queries)
        print(
            f"\nlatency over {lat['documents']:,} threads ({args.queries} queries, hybrid, k=10, "
            f"embedding {args.latency_embedding or args.embedding}): "
            f"p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms; build {lat['build_s']:.1f} s, "
            f"load {lat['load_s']:.2f} s, update with 100 new threads {lat['update_100_s']:.2f} s {lat['update']}"
        )


if __name__ == "__main__":
    main()
