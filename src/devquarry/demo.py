"""The demo: the bundled Stack Overflow corpus through every step that exists, ending in a report."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

import pandas as pd

from devquarry.ingest import ingest
from devquarry.report import build_report
from devquarry.sources import TableSource
from devquarry.store import Store

DEMO_SOURCE = "stackoverflow"
DEMO_MAPPING = {
    "created_at": "created_time",
    "accepted_at": "accepted_time",
    "is_resolved": "has_accepted_answer",
    "score": "votes",
    "label": "type",
}


def demo_corpus() -> Path:
    """Path of the bundled corpus (CC BY-SA 4.0, see the README beside it)."""
    return Path(str(resources.files("devquarry") / "data" / "stackoverflow-openai-api" / "questions.csv.gz"))


def demo_source() -> TableSource:
    return TableSource([demo_corpus()], source=DEMO_SOURCE, mapping=DEMO_MAPPING)


DEMO_THEMES = 8
DEMO_CODEBOOK = "chen2025-so-api"


DEMO_STEPS = ("ingest", "topics", "labels", "coding", "metrics", "report")


class Steps(Protocol):
    """What the demo reports its steps to (the CLI draws a bar per step; a notebook may pass None)."""

    def start(self, name: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def stage(self, description: str, total: int | None = None) -> None: ...
    def done(self, summary: str) -> None: ...


class _Quiet:
    def start(self, name, total=None):
        pass

    def advance(self, n=1):
        pass

    def stage(self, description, total=None):
        pass

    def done(self, summary):
        pass


def run_demo(
    store: Store,
    out: str | Path = "report.html",
    steps: Steps | None = None,
    embedding: str | None = None,
    refit: bool = False,
) -> tuple[pd.DataFrame, Path]:
    """Ingest the bundled corpus, fit topics with themes, import the study's hand labels, code
    every question into the API categories, measure, and write the report; return the ingest
    counts and the report path. ``steps`` hears of each step as it starts, moves and ends.

    A second demo on a store whose threads and labels it left unchanged takes the topic and
    coding runs of the first (they are the latest runs, so the report is the same); ``refit``
    fits them again."""
    from devquarry.classify import classify
    from devquarry.labeling import import_labels_from_threads
    from devquarry.report.data import report_data
    from devquarry.topics import fit_topics

    steps = steps or _Quiet()
    source = demo_source()
    steps.start("ingest", source.total_bytes)
    counts = ingest(store, source, command="demo", progress=steps.advance)
    threads = counts.set_index("table").loc["thread"]
    steps.done(f"{int(threads.new):,} new threads, {int(threads.updated):,} updated, {int(threads.unchanged):,} unchanged")

    demo_threads = store.threads(DEMO_SOURCE)
    steps.start("topics", len(demo_threads))
    earlier = None if refit else _earlier_topics(store, demo_threads, embedding)
    if earlier:
        run_id, q = earlier
        n_themes = int(store.con.execute("SELECT count(*) FROM theme WHERE run_id = ?", [run_id]).fetchone()[0])
        steps.done(f"{q['n_topics']} topics in {n_themes} themes: unchanged data, run {run_id} kept (--refit fits again)")
    else:
        result = fit_topics(
            store, embedding=embedding, themes=DEMO_THEMES, sources=[DEMO_SOURCE], progress=steps.advance, stage=steps.stage
        )
        q = result.quality
        steps.done(f"{q['n_topics']} topics in {len(result.themes)} themes (NPMI {q.get('npmi', float('nan')):.3f})")

    # The study's hand labels ride along in the corpus: they train the coder for the rest.
    steps.start("labels")
    labels = import_labels_from_threads(store, DEMO_CODEBOOK, DEMO_SOURCE, rater="study")
    row = labels.iloc[0]
    steps.done(
        f"{int(row.coded):,} questions coded and {int(row.irrelevant):,} off-subject by the study's coders ({DEMO_CODEBOOK})"
    )

    steps.start("coding")
    earlier = None if refit else _earlier_coding(store)
    if earlier:
        run_id, counts = earlier
        aside = int(counts.get("codes", {}).get("irrelevant", 0))
        steps.done(
            f"{int(counts['threads']):,} threads coded into {DEMO_CODEBOOK}; {aside:,} set aside as off-subject: "
            f"unchanged data and labels, run {run_id} kept"
        )
    else:
        seen = [0]

        def moved(done: int, total: int | None) -> None:
            steps.advance(max(done - seen[0], 0))
            seen[0] = max(seen[0], done)

        coded = classify(store, DEMO_CODEBOOK, method="supervised", sources=[DEMO_SOURCE], progress=moved)
        per_thread = coded.drop_duplicates(["source", "source_id"])
        aside = int((per_thread.code == "irrelevant").sum())
        steps.done(f"{len(per_thread):,} threads coded into {DEMO_CODEBOOK}; {aside:,} set aside as off-subject")

    steps.start("metrics")
    data = report_data(store)
    groups = data.get("difficulty_by_group")
    hot = data.get("hotspots")
    steps.done(
        f"popularity and difficulty of {0 if groups is None else len(groups) - 1} codes; "
        f"{0 if hot is None else int(hot['is_hotspot'].sum())} hotspots"
    )

    steps.start("report")
    path = build_report(store, out, title="devquarry demo: Stack Overflow questions on the OpenAI API", data=data)
    steps.done(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    return counts, path


def _earlier_topics(store: Store, threads: pd.DataFrame, embedding: str | None) -> tuple[int, dict] | None:
    """The latest topic run, if the demo made it from these very threads."""
    from devquarry.embeddings import get_embedder
    from devquarry.reuse import reusable_run, threads_fingerprint

    embedder = get_embedder(embedding)
    wanted = {
        "embedding": f"{embedder.backend}:{embedder.model_id}",
        "clustering": "kmeans",
        "min_topic_size": 10,
        "nr_topics": None,
        "themes": DEMO_THEMES,
        "seed": 42,
        "sources": [DEMO_SOURCE],
        "inputs": threads_fingerprint(threads),
    }
    return reusable_run(store, "topics", wanted)


def _earlier_coding(store: Store) -> tuple[int, dict] | None:
    """The latest coding run, if the demo made it from these threads and these labels."""
    from devquarry.classify import coder_name
    from devquarry.codebooks import load_codebook
    from devquarry.reuse import labels_fingerprint, reusable_run, threads_fingerprint

    wanted = {
        "method": "supervised",
        "codebook": DEMO_CODEBOOK,
        "coder": coder_name(load_codebook(DEMO_CODEBOOK), None),
        "train_raters": None,
        "level": 0,
        "sources": [DEMO_SOURCE],
        "inputs": f"{threads_fingerprint(store.threads())}/{labels_fingerprint(store, DEMO_CODEBOOK)}",
    }
    return reusable_run(store, "classify", wanted)
