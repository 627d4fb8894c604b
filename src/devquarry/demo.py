"""The demo: the bundled Stack Overflow corpus through every step that exists, ending in a report."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

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


def run_demo(store: Store, out: str | Path = "report.html", progress=None, embedding: str | None = None) -> tuple[pd.DataFrame, Path]:
    """Ingest the bundled corpus, fit topics with themes, import the study's hand labels, code
    every question into the API categories, and write the report; return the ingest counts and
    the report path."""
    from devquarry.classify import classify
    from devquarry.labeling import import_labels_from_threads
    from devquarry.topics import fit_topics

    counts = ingest(store, demo_source(), command="demo", progress=progress)
    fit_topics(store, embedding=embedding, themes=DEMO_THEMES, sources=[DEMO_SOURCE])
    # The study's hand labels ride along in the corpus: they train the coder for the rest.
    import_labels_from_threads(store, DEMO_CODEBOOK, DEMO_SOURCE, rater="study")
    classify(store, DEMO_CODEBOOK, method="supervised", sources=[DEMO_SOURCE])
    return counts, build_report(store, out, title="devquarry demo: Stack Overflow questions on the OpenAI API")
