"""Active learning on the shared labels: kappa against the number of hand labels when the labels
are picked by the coder's uncertainty (devquarry.active) or at random.

- Stack Overflow API categories (chen2025-so-api, title + body, 2,299 labelled questions): the
  latest 20% by creation time are the test split;
- forum categories (chen2024-forum primary code at category level, titles only, 1,038 coded):
  the 20% with the highest topic ID (the latest) are the test split.
The rest is the pool. Each run starts from the same 50 random pool labels (per seed), then adds
batches picked from the unlabelled pool by margin (smallest gap between the two most probable
codes), least confidence (smallest top probability) or uniformly at random, retraining the
lexical coder after each batch; the coder is scored on the test split at each size. The TF-IDF
features are computed once per dataset, vocabulary from the texts of pool and test together
(no labels), as ``devquarry.active.pick`` does with the threads to pick from.

Usage: python bench/active.py [--seeds 3] [--batch 50] [--sizes 50,100,200,400,800] [--datasets so,forum]
                              [--name active] [--no-png]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from common import ROOT, SHARED
from sklearn.metrics import cohen_kappa_score, f1_score

from devquarry import Store, ingest_table
from devquarry.active import fit_coder, most_uncertain, text_features
from devquarry.labeling import import_labels_from_threads, labels_frame

FORUM = "source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"
SO = "created_at=created_time,accepted_at=accepted_time,is_resolved=has_accepted_answer,score=votes,label=type"
STRATEGIES = ("random", "margin", "least_confidence")
OUT = ROOT / "bench" / "results"


def datasets(wanted: list[str]) -> dict[str, pd.DataFrame]:
    """Each dataset's coded threads (source, source_id, title, body_text, gold code), oldest first."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.duckdb") as store:
        ingest_table(store, [SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz"], source="so", mapping=SO)
        import_labels_from_threads(store, "chen2025-so-api", "so", "study")
        ingest_table(store, [SHARED / "openai-forum-labelled" / "annotated_questions.csv.gz"], source="forum", mapping=FORUM)
        import_labels_from_threads(store, "chen2024-forum", "forum", "paper")
        for name, source, codebook, key in (
            ("Stack Overflow API categories (chen2025-so-api)", "so", "chen2025-so-api", "created_at"),
            ("forum categories from titles (chen2024-forum)", "forum", "chen2024-forum", "id"),
        ):
            if source not in wanted:
                continue
            labels = labels_frame(store, codebook, 0)
            labels = labels[(labels.status == "coded") & labels.primary.notna()]
            threads = store.threads(source).merge(labels[["source", "source_id", "primary"]], on=["source", "source_id"])
            threads["id"] = pd.to_numeric(threads.source_id, errors="coerce")
            threads = threads.sort_values([key, "source_id"], kind="stable").reset_index(drop=True)
            out[name] = threads.rename(columns={"primary": "gold"})[["source", "source_id", "title", "body_text", "gold"]]
    return out


def score(coder, x, gold: np.ndarray) -> dict:
    pred = coder.predict(x) if coder is not None else np.full(len(gold), pd.Series(gold).mode()[0], dtype=object)
    codes = sorted(set(gold))
    return {
        "kappa": float(cohen_kappa_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=codes, average="macro", zero_division=0)),
    }


def simulate(x_pool, y_pool, x_test, y_test, strategy: str, start: np.ndarray, sizes: list[int], batch: int, seed: int):
    """Scores on the test split at each size in ``sizes``, picking by ``strategy`` from the pool."""
    rng = np.random.default_rng(seed + 1000)
    labelled = list(start)
    out = {}
    while True:
        # Random picks need no coder: it is trained only where it is scored.
        if strategy != "random" or len(labelled) in sizes:
            coder = fit_coder(x_pool[labelled], y_pool[labelled], seed)
        if len(labelled) in sizes:
            out[len(labelled)] = score(coder, x_test, y_test)
        if len(labelled) >= sizes[-1]:
            return out
        rest = np.setdiff1d(np.arange(len(y_pool)), labelled)
        take = min(batch, next(s for s in sizes if s > len(labelled)) - len(labelled), len(rest))
        if strategy == "random" or coder is None:  # as pick falls back when too few codes can be learnt
            chosen = rng.choice(rest, size=take, replace=False)
        else:
            chosen = rest[most_uncertain(coder.predict_proba(x_pool[rest]), take, strategy)]
        labelled.extend(int(i) for i in chosen)


def run(name: str, df: pd.DataFrame, seeds: int, sizes: list[int], batch: int) -> dict:
    t0 = time.perf_counter()
    n_test = int(round(len(df) * 0.2))
    pool, test = df.iloc[: len(df) - n_test], df.iloc[len(df) - n_test :]
    x_pool, x_test = text_features(pool, test)
    y_pool, y_test = pool.gold.to_numpy(dtype=object), test.gold.to_numpy(dtype=object)
    sizes = [s for s in sizes if s <= len(pool)]
    print(
        f"{name}: pool {len(pool):,}, test {len(test):,}, {x_pool.shape[1]:,} features ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    curves = {s: {n: {"kappa": [], "macro_f1": []} for n in sizes} for s in STRATEGIES}
    for seed in range(seeds):
        start = np.random.default_rng(seed).choice(len(pool), size=sizes[0], replace=False)
        for strategy in STRATEGIES:
            t1 = time.perf_counter()
            for n, r in simulate(x_pool, y_pool, x_test, y_test, strategy, start, sizes, batch, seed).items():
                for k, v in r.items():
                    curves[strategy][n][k].append(v)
            print(
                f"  seed {seed} {strategy:16s} kappa at {sizes[-1]}: {curves[strategy][sizes[-1]]['kappa'][-1]:.3f} "
                f"({time.perf_counter() - t1:.0f} s)",
                flush=True,
            )
    return {
        "pool": len(pool),
        "test": len(test),
        "test_codes": pd.Series(y_test).value_counts().to_dict(),
        "curves": curves,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summary(results: dict) -> pd.DataFrame:
    rows = []
    for name, r in results.items():
        for n in next(iter(r["curves"].values())):
            row = {"dataset": name, "hand labels": n}
            for metric in ("kappa", "macro_f1"):
                for s in STRATEGIES:
                    v = np.array(r["curves"][s][n][metric])
                    row[f"{metric} {s}"] = f"{v.mean():.3f} ({v.min():.3f}-{v.max():.3f})"
            rows.append(row)
    return pd.DataFrame(rows)


def figure(results: dict, seeds: int, name: str, png: bool) -> list[Path]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    colours = {"random": "#7f7f7f", "margin": "#d62728", "least_confidence": "#1f77b4"}
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=list(results), horizontal_spacing=0.08)
    for col, r in enumerate(results.values(), start=1):
        for s in STRATEGIES:
            sizes = list(r["curves"][s])
            vals = [np.array(r["curves"][s][n]["kappa"]) for n in sizes]
            mean = [v.mean() for v in vals]
            shift = 1 + 0.025 * (STRATEGIES.index(s) - 1)  # side by side, so that the bars do not hide each other
            fig.add_trace(
                go.Scatter(
                    x=[n * shift for n in sizes],
                    y=mean,
                    mode="lines+markers",
                    name=s.replace("_", " "),
                    legendgroup=s,
                    showlegend=col == 1,
                    line={"color": colours[s]},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [v.max() - m for v, m in zip(vals, mean)],
                        "arrayminus": [m - v.min() for v, m in zip(vals, mean)],
                    },
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="hand labels", type="log", tickvals=sizes, row=1, col=col)
        fig.update_yaxes(title_text="kappa on the held-out split" if col == 1 else None, row=1, col=col)
    fig.update_layout(
        title=f"Active learning: kappa against hand labels (mean of {seeds} seeds, bars min-max)",
        template="plotly_white",
        height=450,
        width=1100,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    # The figure as plotly JSON (no page that would fetch plotly.js from a CDN) and as a PNG.
    paths = [OUT / f"{name}.figure.json"]
    fig.write_json(paths[0])
    if png:
        try:
            fig.write_image(OUT / f"{name}.png", scale=2)  # kaleido, with the system's Chromium
            paths.append(OUT / f"{name}.png")
        except Exception as exc:  # a missing browser must not lose the table and JSON
            print(f"no PNG: {type(exc).__name__}: {exc}")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--sizes", default="50,100,200,400,800")
    ap.add_argument("--datasets", default="so,forum", help="so, forum or both")
    ap.add_argument("--name", default="active", help="bench/results/NAME.json, .figure.json, .png")
    ap.add_argument("--no-png", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {name: run(name, df, args.seeds, sizes, args.batch) for name, df in datasets(args.datasets.split(",")).items()}
    table = summary(results)
    print()
    print(table.to_markdown(index=False))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(
        json.dumps(
            {
                "settings": {**vars(args), "strategies": STRATEGIES, "test_split": "latest 20% (SO: created_at; forum: ID)"},
                "results": results,
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=1,
            default=str,
        )
    )
    paths = figure(results, args.seeds, args.name, not args.no_png)
    print(f"\nwritten: {OUT / (args.name + '.json')}, {', '.join(map(str, paths))} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
