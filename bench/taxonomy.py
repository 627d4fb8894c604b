"""Machine coders against held-out human labels in ../shared/data: the README's taxonomy table.

Every coder is trained on the earlier part of a labelled set and scored on the later part, which it
never saw (the way a study labels a sample and codes what comes after):
- chen2025-so-api categories: the 2,299 labelled Stack Overflow questions (title + body), split by
  created_time: earliest 80% train, latest 20% test;
- relevance: "not about the OpenAI API" (code 0) against the rest, on all 4,081 questions, by time;
- chen2024-forum categories and subcategories from titles only (1,183 forum questions; the primary
  code is a label's first code), split by topic ID (IDs grow with time): lowest 80% train.
5-fold cross-validation on each whole set is printed beside, for comparison only.
Labels are read by devquarry's own parser (``import_labels_from_threads`` + ``labels_frame``).
GitHub issues hand-coded with the forum codebook are not in ../shared/data: that row cannot be measured.

Per coder and task: kappa, accuracy, macro-F1, per-code F1, top-label ECE, fit + predict seconds.
Vectors (MiniLM, static) are cached in the bench store (``--db``), so ``seconds`` leaves out
embedding; ``cold`` adds the cost of embedding every text of the task from cold (timed on a sample).

Usage: python bench/taxonomy.py [--coders lexical,stacked,stacked-static,setfit,zero-shot] [--tasks ...] [--no-cv]
       [--setfit-everywhere]
       [--db bench/out/taxonomy.duckdb] [--json bench/results/taxonomy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from common import ROOT, SHARED
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from devquarry import Store, ingest_table
from devquarry.coders.calibration import expected_calibration_error
from devquarry.coders.registry import CODERS, EMBEDDING, available, make_coder
from devquarry.coders.stacked import store_embed
from devquarry.embeddings import Embedder, embed_texts, get_embedder
from devquarry.evaluate import scores
from devquarry.labeling import import_labels_from_threads, labels_frame
from devquarry.text import thread_text

FORUM = "source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"
SO = "created_at=created_time,accepted_at=accepted_time,is_resolved=has_accepted_answer,score=votes,label=type"
MIN_EXAMPLES = 3  # as classify: rarer codes in the training part cannot be learnt (they stay in the test part)
GITHUB_NOTE = (
    "GitHub issues hand-coded with the forum codebook: not in ../shared/data (its GitHub issues carry "
    "no hand labels of chen2024-forum), so not measured here"
)


@dataclass
class Task:
    name: str
    codebook: str
    level: int | None
    frame: pd.DataFrame  # text, y, order key; sorted oldest first
    split_by: str
    human_kappa: float | None


def load_tasks(store: Store) -> list[Task]:
    ingest_table(store, [SHARED / "openai-forum-labelled" / "annotated_questions.csv.gz"], source="forum", mapping=FORUM)
    ingest_table(
        store,
        [SHARED / "stackoverflow-openai-api" / "questions_with_irrelevant.csv.gz"],
        source="so",
        mapping=SO,
        encoding="latin-1",
    )
    import_labels_from_threads(store, "chen2024-forum", "forum", "paper")
    import_labels_from_threads(store, "chen2025-so-api", "so", "study")
    keys = ["source", "source_id", "status", "primary"]

    so = store.threads("so")
    so["text"] = [thread_text(t, b) for t, b in zip(so.title, so.body_text)]
    so = so.merge(labels_frame(store, "chen2025-so-api", level=0)[keys], on=["source", "source_id"])
    so = so.sort_values(["created_at", "source_id"], kind="stable").reset_index(drop=True)
    relevance = so.assign(y=np.where(so.status == "irrelevant", "irrelevant", "relevant"))
    api = so[so.status == "coded"].assign(y=lambda d: d.primary)
    tasks = [
        Task("SO API categories (title + body)", "chen2025-so-api", 0, api, "created_time", 0.822),
        Task("SO relevance (code 0 vs rest)", "chen2025-so-api", None, relevance, "created_time", None),
    ]
    forum = store.threads("forum")
    forum["text"] = [thread_text(t, None) for t in forum.title]
    for level, what in [(0, "categories"), (1, "subcategories")]:
        f = forum.merge(labels_frame(store, "chen2024-forum", level=level)[keys], on=["source", "source_id"])
        f = f[(f.status == "coded") & f.primary.notna()].assign(y=lambda d: d.primary, order=lambda d: d.source_id.astype(int))
        f = f.sort_values("order").reset_index(drop=True)
        tasks.append(Task(f"forum {what} (titles)", "chen2024-forum", level, f, "topic ID", 0.812))
    return tasks


def held_out(frame: pd.DataFrame, train_share: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = int(round(len(frame) * train_share))
    return frame.iloc[:n].reset_index(drop=True), frame.iloc[n:].reset_index(drop=True)


def learnable(train: pd.DataFrame) -> pd.DataFrame:
    counts = train.y.value_counts()
    return train[train.y.isin(counts[counts >= MIN_EXAMPLES].index)].reset_index(drop=True)


class CachedMiniLM(Embedder):
    """MiniLM through the bench store's vector cache, for the zero-shot coder."""

    backend = "minilm"

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def model_id(self) -> str:
        return get_embedder("minilm").model_id

    def encode(self, texts, progress=None) -> np.ndarray:
        return embed_texts(self.store, "minilm", list(texts))


def coder_for(name: str, task: Task, store: Store):
    if name == "zero-shot":
        from devquarry.coders.zeroshot import ZeroShotCoder

        return ZeroShotCoder(codebook=task.codebook, embedding=CachedMiniLM(store), level=task.level)
    params = {"embed": store_embed(store, EMBEDDING[name])} if EMBEDDING.get(name) else {}
    return make_coder(name, **params)


def measure(coder, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    coder.fit(list(train.text), train.y.tolist())
    proba = coder.predict_proba(list(test.text)) if hasattr(coder, "predict_proba") else None
    pred = coder.classes_[proba.argmax(axis=1)] if proba is not None else coder.predict(list(test.text))
    secs = time.perf_counter() - t0
    r = scores(test.y.tolist(), pred)
    r["ece"] = expected_calibration_error(test.y.tolist(), proba, coder.classes_) if proba is not None else None
    r["seconds"] = secs
    return r


def cross_validation(coder, frame: pd.DataFrame, folds: int = 5, seed: int = 42) -> dict:
    counts = frame.y.value_counts()
    frame = frame[frame.y.isin(counts[counts >= folds].index)].reset_index(drop=True)
    pred = np.empty(len(frame), dtype=object)
    proba = None
    t0 = time.perf_counter()
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(frame.text, frame.y):
        fitted = clone(coder).fit(list(frame.text.iloc[train]), frame.y.iloc[train].tolist())
        p = fitted.predict_proba(list(frame.text.iloc[test]))
        if proba is None:
            classes, proba = fitted.classes_, np.zeros((len(frame), len(fitted.classes_)))
        proba[test] = p
        pred[test] = fitted.classes_[p.argmax(axis=1)]
    r = scores(frame.y.tolist(), pred)
    r["ece"] = expected_calibration_error(frame.y.tolist(), proba, classes)
    r["seconds"] = time.perf_counter() - t0
    return r


def embedding_cost(task: Task, spec: str, sample: int = 64) -> float:
    """Seconds the ``spec`` embedding would take to embed every text of the task from cold, timed on
    a sample (at least 64 texts, all of them for the cheap static embedding)."""
    embedder = get_embedder(spec)
    embedder.encode(["warm up"])
    n = len(task.frame) if spec == "static" else min(sample, len(task.frame))
    texts = task.frame.text.sample(n, random_state=0).tolist()
    t0 = time.perf_counter()
    embedder.encode(texts)
    return (time.perf_counter() - t0) / len(texts) * len(task.frame)


def result_row(task: Task, coder: str, mode: str, r: dict, n_train: int | None) -> dict:
    return {
        "task": task.name,
        "codebook": task.codebook,
        "level": task.level,
        "coder": coder,
        "mode": mode,
        "n_train": n_train,
        "n_test": r["n"],
        "kappa": r["kappa"],
        "accuracy": r["accuracy"],
        "macro_f1": r["macro_f1"],
        "ece": r["ece"],
        "seconds": r["seconds"],
        "cold_seconds": r.get("cold_seconds"),
        "human_kappa": task.human_kappa,
        "per_code_f1": {str(c): round(float(f), 4) for c, f in zip(r["per_code"].code, r["per_code"].f1)},
        "per_code_support": {str(c): int(n) for c, n in zip(r["per_code"].code, r["per_code"].support)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coders", default=",".join([*CODERS, "zero-shot"]))
    ap.add_argument("--tasks", default="", help="substrings of task names to run (default: all)")
    ap.add_argument("--no-cv", action="store_true", help="skip the 5-fold cross-validation comparison")
    ap.add_argument("--setfit-everywhere", action="store_true", help="tune MiniLM on the Stack Overflow tasks too (slow)")
    ap.add_argument("--db", default=str(ROOT / "bench" / "out" / "taxonomy.duckdb"), help="bench store (MiniLM vector cache)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "taxonomy.json"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    coders = [c for c in args.coders.split(",") if c]
    skipped = [c for c in coders if c != "zero-shot" and not available(c)]
    coders = [c for c in coders if c not in skipped]
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    rows, splits, costs = [], {}, {}
    load = [os.getloadavg()[0]]
    with Store(Path(args.db)) as store:
        tasks = [t for t in load_tasks(store) if not args.tasks or any(s in t.name for s in args.tasks.split(","))]
        for task in tasks:
            train, test = held_out(task.frame)
            fit_on = learnable(train)
            key = "created_at" if task.split_by == "created_time" else "order"
            splits[task.name] = {
                "split_by": task.split_by,
                "train": [str(train[key].iloc[0]), str(train[key].iloc[-1])],
                "test": [str(test[key].iloc[0]), str(test[key].iloc[-1])],
                "n_train": len(train),
                "n_train_learnable": len(fit_on),
                "n_test": len(test),
                "codes_only_in_test": sorted(set(test.y) - set(fit_on.y)),
            }
            print(
                f"\n## {task.name}: train {len(fit_on)} (by {task.split_by} up to {splits[task.name]['train'][1]}), test {len(test)}"
            )
            specs = {"minilm" if c == "zero-shot" else EMBEDDING.get(c) for c in coders} - {None}
            for spec in sorted(specs):
                store_embed(store, spec)(task.frame.text.tolist())  # the cache, filled once
                costs[(task.name, spec)] = embedding_cost(task, spec)
            for name in coders:
                if name == "zero-shot" and task.level is None:
                    continue  # relevance has no codebook text to compare with
                if name == "setfit" and task.codebook != "chen2024-forum" and not args.setfit_everywhere:
                    continue  # tuning on long posts costs many CPU minutes a fit: titles only unless asked
                r = measure(coder_for(name, task, store), fit_on, test)
                spec = "minilm" if name == "zero-shot" else EMBEDDING.get(name)
                r["cold_seconds"] = r["seconds"] + (costs[(task.name, spec)] if spec else 0.0)
                rows.append(result_row(task, name, "held-out", r, len(fit_on)))
                print(
                    f"  {name:10s} held-out kappa={r['kappa']:.3f} acc={r['accuracy']:.3f} macroF1={r['macro_f1']:.3f} "
                    f"ECE={_fmt(r['ece'])} {r['seconds']:.0f} s",
                    flush=True,
                )
                if not args.no_cv and name not in ("zero-shot", "setfit"):
                    r = cross_validation(coder_for(name, task, store), task.frame)
                    rows.append(result_row(task, name, "5-fold CV", r, None))
                    print(f"  {name:10s} 5-fold CV kappa={r['kappa']:.3f} (comparison only) {r['seconds']:.0f} s", flush=True)
    load.append(os.getloadavg()[0])
    table = pd.DataFrame(rows)
    print_tables(table, costs)
    if skipped:
        print(f"\nnot run (extra not installed): {', '.join(skipped)}")
    print(f"\n{GITHUB_NOTE}.")
    out = {
        "rows": rows,
        "splits": splits,
        "embedding_seconds_cold": {f"{t} / {spec}": v for (t, spec), v in costs.items()},
        "github_issues_forum_codebook": GITHUB_NOTE,
        "load_average_start_end": load,
        "cpus": os.cpu_count(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {args.json}")


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def print_tables(table: pd.DataFrame, costs: dict) -> None:
    if table.empty:
        return
    shown = table.assign(
        ece=table.ece.map(_fmt),
        seconds=table.seconds.round(1),
        cold=table.cold_seconds.map(lambda c: "" if c is None or pd.isna(c) else f"{c:.0f}"),
        n=[f"{a}/{b}" if a else f"{b}" for a, b in zip(table.n_train.fillna(0).astype(int), table.n_test)],
        human=table.human_kappa.map(lambda h: "" if h is None or pd.isna(h) else f"{h:.3f}"),
    )[["task", "coder", "mode", "n", "kappa", "accuracy", "macro_f1", "ece", "seconds", "cold", "human"]]
    shown = shown.sort_values(["task", "mode"], ascending=[True, False], kind="stable")
    print(
        "\n### Held-out (and 5-fold CV for comparison); n = train/test; seconds = fit + predict with vectors cached;"
        " cold = seconds + embedding every text of the task from cold\n"
    )
    print(shown.to_markdown(index=False, floatfmt=".3f"))
    if costs:
        print(
            "\nEmbedding from cold (estimated from a timed sample), seconds per task: "
            + "; ".join(f"{t} / {spec}: {v:.0f}" for (t, spec), v in costs.items())
        )
    for task, grp in table[table["mode"] == "held-out"].groupby("task", sort=False):
        per = pd.DataFrame({r.coder: r.per_code_f1 for r in grp.itertuples()})
        per.insert(0, "support", pd.Series(grp.iloc[0].per_code_support))
        print(f"\n#### Per-code F1, held out: {task}\n")
        print(per.to_markdown(floatfmt=".2f"))


if __name__ == "__main__":
    main()
