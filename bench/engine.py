"""Embedding through the local engine against the Ray engine, on real Stack Overflow questions.

For each embedding: texts per second of ``devquarry.engine.encode`` over the first N labelled
questions (title + body, nothing cached) in this process, then through a local Ray cluster of
this machine's CPUs (its start is timed apart; each run's actors load their model once, and that
load is part of the run, as it is for a command). Prints the ratio ray / local and how far the
vectors differ.

Usage: python bench/engine.py [--n 2000] [--embeddings static,minilm] [--cpus N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from common import labelled_questions

from devquarry.embeddings import get_embedder
from devquarry.engine import encode, get_engine
from devquarry.text import thread_text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--embeddings", default="static,minilm")
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    df = labelled_questions().head(args.n)
    texts = [thread_text(t, b) for t, b in zip(df.title, df.body)]
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False)
    ray_start = time.perf_counter() - started
    engine = get_engine("ray")
    rows = []
    for spec in args.embeddings.split(","):
        get_embedder(spec).encode(texts[:2])  # builds a missing static model once, outside the timings
        t = time.perf_counter()
        local = encode("local", get_embedder(spec), texts)
        local_s = time.perf_counter() - t
        t = time.perf_counter()
        remote = encode(engine, get_embedder(spec), texts, spec=spec)
        ray_s = time.perf_counter() - t
        row = {
            "embedding": spec,
            "texts": len(texts),
            "cpus": args.cpus,
            "local_texts_per_s": round(len(texts) / local_s, 1),
            "ray_texts_per_s": round(len(texts) / ray_s, 1),
            "ray_over_local": round(local_s / ray_s, 3),
            "max_abs_difference": float(np.abs(local - remote).max()),
            "ray_start_s": round(ray_start, 1),
        }
        rows.append(row)
        print(json.dumps(row))
    ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
