"""How devquarry grows: the whole pipeline on 10k, 100k and 1M threads, each step run as a user runs it.

For each size a corpus is built from real posts (bench/scale_corpus.py says how), then each step
runs as its own ``devquarry`` process on one store, timed, with the peak resident memory of its
process tree sampled every 0.1 s:

  ingest     devquarry ingest stackexchange DIR            (Posts.xml: questions and answers)
  topics     devquarry topics --themes 8                  (default embedding and clustering)
  labels     devquarry labels import labels.csv           (the study's 4,081 hand labels)
  classify   devquarry classify --codebook chen2025-so-api (the default coder, or --coder)
  metrics    devquarry metrics --by category
  trends     devquarry trends --by category
  hotspots   devquarry hotspots --by category
  ask-index  devquarry ask Q                              (first ask: builds the index)
  report     devquarry report                             (and the file's size)
  ask-query  ask() in one process, the index open: p50 / p95 over held-out forum titles
  +1% ...    a new Posts.xml of 1% more threads: ingest, ask (index update), classify again

Every step's wall time and peak memory go to bench/results/scale.json (merged by size, so sizes
may be run one at a time), and a growth exponent per step is fitted across the sizes present
(log time against log threads). Usage:

  python bench/scale.py --sizes 10000,100000,1000000 [--coder C] [--embedding E] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_corpus import SHARED, build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scale.json"
CODEBOOK = "chen2025-so-api"
DEVQUARRY = [sys.executable, "-m", "devquarry"]


def measured(name: str, argv: list[str], log: Path, env: dict | None = None) -> dict:
    """Run one step; its wall seconds and the peak summed RSS of its process tree."""
    started = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)])
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)
    wall = time.perf_counter() - started
    row = {"step": name, "seconds": round(wall, 2), "peak_mb": round(peak / 2**20), "rc": proc.returncode}
    print(
        f"  {name:<18} {wall:8.1f} s  {peak / 2**20:7.0f} MB"
        + ("" if proc.returncode == 0 else f"  FAILED rc={proc.returncode} (see {log})")
    )
    return row


QUERY_SCRIPT = r"""
import json, sys, time
import numpy as np
from devquarry import Store
from devquarry.ask import ask
queries = json.load(open(sys.argv[2]))
with Store(sys.argv[1], read_only=True) as store:
    ask(store, queries[0], **({"embedding": sys.argv[3]} if sys.argv[3] else {}))  # open the index once
    times = []
    for q in queries:
        t = time.perf_counter()
        ask(store, q, **({"embedding": sys.argv[3]} if sys.argv[3] else {}))
        times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)), "queries": len(times)}))
"""


def held_out_queries(k: int = 100) -> list[str]:
    """Forum titles: questions none of the corpus's copies hold verbatim."""
    import pandas as pd

    df = pd.read_csv(SHARED / "openai-forum-labelled" / "annotated_questions.csv.gz")
    titles = [t for t in df["Title"].astype(str) if len(t.split()) >= 4]
    return titles[:k]


def run_size(n: int, work: Path, args) -> dict:
    print(f"== {n:,} threads")
    folder = work / f"corpus-{n}"
    t = time.perf_counter()
    corpus = build(folder, n)
    extra = build(work / f"corpus-{n}-plus", max(n // 100, 1), first=n, scale=n, labels=False)
    print(
        f"  corpus: {corpus['bytes'] / 1e6:.0f} MB Posts.xml in {time.perf_counter() - t:.0f} s (+1%: {extra['threads']:,} threads)"
    )
    db = work / f"scale-{n}.duckdb"
    log = work / f"scale-{n}.log"
    partial = work / f"scale-{n}.partial.json"  # the steps done, for --start after a failure
    done = {r["step"]: r for r in json.loads(partial.read_text())} if args.start and partial.exists() else {}
    if not args.start:
        for p in work.glob(f"scale-{n}.duckdb*"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        partial.unlink(missing_ok=True)
    base = [*DEVQUARRY]
    dbo = ["--db", str(db)]
    coder = ["--coder", args.coder] if args.coder else []
    emb = ["--embedding", args.embedding] if args.embedding else []
    steps = []
    q0 = held_out_queries(1)[0]

    started = [not args.start]

    def step(name, *argv):
        started[0] = started[0] or name == args.start
        if not started[0]:  # done before this --start: its row as measured then
            if name not in done:
                sys.exit(f"--start {args.start}: no measurement of the earlier step {name} in {partial}")
            steps.append(done[name])
            return done[name]
        row = measured(name, [*base, *argv], log)
        steps.append(row)
        if row["rc"] != 0:
            sys.exit(f"{name} failed: see {log}; fix it and go on with --start {name!r}")
        partial.write_text(json.dumps(steps))
        return row

    step("ingest", "ingest", "stackexchange", str(folder), *dbo, "--json")
    step(
        "topics",
        "topics",
        "--themes",
        "8",
        *dbo,
        "--json",
        *(["--embedding", args.topic_embedding] if args.topic_embedding else []),
    )
    step("labels", "labels", "import", str(folder / "labels.csv"), "--codebook", CODEBOOK, "--rater", "study", *dbo, "--json")
    step("classify", "classify", "--codebook", CODEBOOK, *coder, *dbo, "--json")
    for what in ("metrics", "trends", "hotspots"):
        step(what, what, "--by", "category", "--codebook", CODEBOOK, *dbo, "--json")
    # ask's index first: the report's similar-thread links reuse (or build) the LSA index.
    step("ask-index", "ask", q0, *emb, *dbo, "--json")
    report = work / f"scale-{n}.html"
    step("report", "report", "--out", str(report), *dbo)
    queries = work / "queries.json"
    queries.write_text(json.dumps(held_out_queries(args.queries)))
    out = subprocess.run(
        [sys.executable, "-c", QUERY_SCRIPT, str(db), str(queries), args.embedding or ""], capture_output=True, text=True
    )
    latency = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-2000:]}
    print(
        f"  ask query          p50 {latency.get('p50_ms', float('nan')):.0f} ms  p95 {latency.get('p95_ms', float('nan')):.0f} ms"
    )
    step("+1% ingest", "ingest", "stackexchange", str(work / f"corpus-{n}-plus"), *dbo, "--json")
    step("+1% ask-index", "ask", q0, *emb, *dbo, "--json")
    step("+1% classify", "classify", "--codebook", CODEBOOK, *coder, *dbo, "--json")
    size = report.stat().st_size if report.exists() else None
    print(f"  report: {size / 1e6 if size else float('nan'):.1f} MB; store {db.stat().st_size / 1e6:.0f} MB")
    full = {s["step"]: s["seconds"] for s in steps}
    incremental = {
        k: round(full[f"+1% {k}"] / full[k], 3) for k in ("ingest", "ask-index", "classify") if full.get(k) and f"+1% {k}" in full
    }
    return {
        "threads": n,
        "corpus": corpus,
        "steps": steps,
        "pipeline_seconds": round(sum(s["seconds"] for s in steps if not s["step"].startswith("+1%")), 1),
        "peak_mb": max(s["peak_mb"] for s in steps),
        "report_mb": round(size / 1e6, 2) if size else None,
        "store_mb": round(db.stat().st_size / 1e6),
        "ask": latency,
        "incremental_share": incremental,
        "coder": args.coder or "default",
        "embedding": args.embedding or "default",
        "cores": os.cpu_count(),
    }


def growth(results: dict) -> dict:
    """Per step, the slope of log(seconds) against log(threads) over the sizes measured."""
    sizes = sorted(results, key=int)
    if len(sizes) < 2:
        return {}
    names = [s["step"] for s in results[sizes[0]]["steps"]]
    out = {}
    for name in names:
        pts = [(int(n), s["seconds"]) for n in sizes for s in results[n]["steps"] if s["step"] == name and s["seconds"] > 0]
        if len(pts) >= 2:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[name] = round(float(np.polyfit(x, y, 1)[0]), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--coder", default=None, help="classify's coder (default: the codebook's default)")
    ap.add_argument("--embedding", default=None, help="ask's embedding (default: ask's default)")
    ap.add_argument("--topic-embedding", default=None, help="topics' embedding (default: the topics' default)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--start", default=None, help="go on from this step on the stores and corpora of --workdir (after a failed step)"
    )
    ap.add_argument("--label", default=None, help="name of this configuration in the results (default: coder/embedding)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="devquarry-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    label = args.label or f"coder={args.coder or 'default'},embedding={args.embedding or 'default'}"
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = saved.setdefault(label, {"sizes": {}})
    for n in [int(s) for s in args.sizes.split(",")]:
        runs["sizes"][str(n)] = run_size(n, work, args)
        runs["growth_exponent"] = growth(runs["sizes"])
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(saved, indent=1))
    print(json.dumps(runs["growth_exponent"], indent=1))
    print(f"results: {RESULTS}; work files: {work}")


if __name__ == "__main__":
    main()
