"""Machine coding against the human labels in ../shared/data: the README's taxonomy table.

- chen2024-forum on the OpenAI forum sample (titles only, 1,038 coded), category and subcategory;
- chen2025-so-api on the 2,299 labelled Stack Overflow questions (title + body);
- relevance: "not about the OpenAI API" (code 0) against the rest, on all 4,081 questions.
Supervised is 5-fold cross-validated on the same labels; zero-shot uses only the codebook's text.

Usage: python bench/taxonomy.py [--zero-shot-embedding minilm] [--skip-zero-shot]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
from common import SHARED

from devquarry import Store, ingest_table
from devquarry.evaluate import cross_validated, evaluate, scores
from devquarry.labeling import import_labels_from_threads
from devquarry.text import thread_text

FORUM = "source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"
SO = "created_at=created_time,accepted_at=accepted_time,is_resolved=has_accepted_answer,score=votes,label=type"


def row(task: str, method: str, r: dict, human: float | None, secs: float) -> dict:
    out = {
        "task": task,
        "method": method,
        "n": r["n"],
        "accuracy": r["accuracy"],
        "macro_f1": r["macro_f1"],
        "kappa": r["kappa"],
        "human_kappa": human,
        "seconds": secs,
    }
    print(
        f"{task:38s} {method:11s} n={r['n']:5d} acc={r['accuracy']:.3f} macroF1={r['macro_f1']:.3f} kappa={r['kappa']:.3f} ({secs:.0f} s)",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zero-shot-embedding", default="minilm")
    ap.add_argument("--skip-zero-shot", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        ingest_table(store, [SHARED / "openai-forum-labelled" / "annotated_questions.csv.gz"], source="forum", mapping=FORUM)
        import_labels_from_threads(store, "chen2024-forum", "forum", "paper")
        ingest_table(
            store,
            [SHARED / "stackoverflow-openai-api" / "questions_with_irrelevant.csv.gz"],
            source="so",
            mapping=SO,
            encoding="latin-1",
        )
        import_labels_from_threads(store, "chen2025-so-api", "so", "study")
        tasks = [
            ("chen2024-forum category (forum titles)", "chen2024-forum", 0, 0.812),
            ("chen2024-forum subcategory (forum titles)", "chen2024-forum", 1, 0.812),
            ("chen2025-so-api (SO title + body)", "chen2025-so-api", 0, 0.822),
        ]
        for task, cb, level, human in tasks:
            methods = ["supervised"] + ([] if args.skip_zero_shot else ["zero-shot"])
            for method in methods:
                t0 = time.perf_counter()
                r = evaluate(store, cb, method=method, level=level, embedding=args.zero_shot_embedding)
                rows.append(row(task, method, r, human, time.perf_counter() - t0))
        so = store.threads("so")
        texts = [thread_text(t, b) for t, b in zip(so.title, so.body_text)]
        gold = ["irrelevant" if lab == "0" else "relevant" for lab in so.label]
        t0 = time.perf_counter()
        rows.append(
            row(
                "relevance (SO, code 0 vs rest)",
                "supervised",
                scores(gold, cross_validated(texts, gold)),
                None,
                time.perf_counter() - t0,
            )
        )
        store.close()
    print()
    print(
        pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")
        if _has_tabulate()
        else pd.DataFrame(rows).round(3).to_string(index=False)
    )


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
