"""Another 1% on a store that bench/scale.py built: what a user pays to bring ``ask`` up to date.

On ``--workdir``'s store of ``--size`` threads, each round writes the next 1% of threads (ids after
the highest one stored; bench/scale_corpus.py), ingests them and runs ``devquarry ask`` twice as a
user does: the first ask brings the index up to date (a new segment), the second finds nothing to
do. Each as its own process, wall time and peak memory as in bench/scale.py; the update's share of
the full index build is against that build's time in the same store's scale run. Results go to
bench/results/scale_increment.json. Usage:

  python bench/scale_increment.py --workdir DIR --size 1000000 [--rounds 1] [--embedding lsa]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import DEVQUARRY, ROOT, held_out_queries, measured  # noqa: E402
from scale_corpus import build  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scale_increment.json"


def last_thread(db: Path) -> int:
    """The highest question id stored: thread i of the corpus is post i + 1."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute("SELECT max(CAST(source_id AS BIGINT)) FROM thread").fetchone()[0])
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--embedding", default="lsa")
    args = ap.parse_args()
    db = args.workdir / f"scale-{args.size}.duckdb"
    partial = args.workdir / f"scale-{args.size}.partial.json"
    if not db.exists() or not partial.exists():
        sys.exit(f"{db} or {partial} is missing: run bench/scale.py --sizes {args.size} --workdir {args.workdir} first")
    full = {r["step"]: r["seconds"] for r in json.loads(partial.read_text())}["ask-index"]
    log = args.workdir / f"scale-{args.size}-increment.log"
    q0 = held_out_queries(1)[0]
    ask = [*DEVQUARRY, "ask", q0, "--embedding", args.embedding, "--db", str(db), "--json"]
    rounds = []
    for r in range(args.rounds):
        first = last_thread(db)
        chunk = args.workdir / f"corpus-{args.size}-after-{first}"
        build(chunk, args.size // 100, first=first, scale=args.size, labels=False)
        rows = [
            measured("+1% ingest", [*DEVQUARRY, "ingest", "stackexchange", str(chunk), "--db", str(db), "--json"], log),
            measured("+1% ask-index", ask, log),
            measured("ask, nothing new", ask, log),
        ]
        if any(row["rc"] for row in rows):
            sys.exit(f"a step failed: see {log}")
        share = round(rows[1]["seconds"] / full, 3)
        rounds.append({"first": first, "threads": args.size // 100, "steps": rows, "ask_index_share": share})
        print(f"  round {r + 1}: ask index update {rows[1]['seconds']:.1f} s = {share:.1%} of the full build ({full:.1f} s)")
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved[f"{args.size}:{args.embedding}"] = {"full_ask_index_seconds": full, "rounds": rounds}
    RESULTS.write_text(json.dumps(saved, indent=1))
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
