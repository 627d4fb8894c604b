"""Latency of the workbench (`devquarry serve`): p50 and p95 of the thread list, a filtered list, a
thread page and a label POST, measured over HTTP against the real server process, on the demo
store and on a synthetic store of 100,000 threads (the demo's questions copied with new ids, two
replies on half of them, the study's labels on a fifth), so that the growth shows.

Usage: python bench/serve.py [--demo-db demo.duckdb] [--sizes 100000] [--requests 200]
(without --demo-db the demo corpus is ingested with its labels, without topics or coding runs).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

from devquarry import Store

CODEBOOK = "chen2025-so-api"


def demo_like(path: Path) -> Path:
    from devquarry.demo import demo_source
    from devquarry.ingest import ingest
    from devquarry.labeling import import_labels_from_threads

    with Store(path) as s:
        ingest(s, demo_source())
        import_labels_from_threads(s, CODEBOOK, "stackoverflow", rater="study")
    return path


def synthetic(demo: Path, path: Path, n: int) -> Path:
    """``n`` threads made from the demo's by SQL: copies with new ids, titles and dates; replies; labels."""
    shutil.copy(demo, path)
    with Store(path) as s:
        base = s.con.execute("SELECT count(*) FROM thread WHERE source = 'stackoverflow'").fetchone()[0]
        copies = -(-n // base) - 1
        cols = [
            r[0]
            for r in s.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'thread' ORDER BY ordinal_position"
            ).fetchall()
        ]
        sel = ", ".join(
            {
                "source_id": "t.source_id || '-' || k AS source_id",
                "title": "t.title || ' #' || k AS title",
                "created_at": "t.created_at - to_days(k::INTEGER) AS created_at",
                "accepted_reply_id": "CASE WHEN hash(t.source_id, k) % 4 = 0 THEN t.source_id || '-' || k || '-a0' END AS accepted_reply_id",
            }.get(c, f"t.{c}")
            for c in cols
        )
        with s.transaction() as con:
            con.execute(
                f"INSERT INTO thread SELECT {sel} FROM thread t, range(1, {copies + 1}) r(k) WHERE t.source = 'stackoverflow'"
            )
            con.execute(
                f"DELETE FROM thread WHERE source = 'stackoverflow' AND source_id IN (SELECT source_id FROM thread WHERE source = 'stackoverflow' ORDER BY source_id OFFSET {n})"
            )
            con.execute("""INSERT INTO reply (source, reply_id, thread_id, kind, author, created_at, body_text, is_accepted, is_bot)
                           SELECT source, source_id || '-a' || j, source_id, 'answer', 'someone', created_at + to_hours(j::INTEGER + 1),
                                  'An answer to: ' || title, j = 0 AND accepted_reply_id IS NOT NULL, false
                           FROM thread, range(2) r(j) WHERE hash(source_id) % 2 = 0""")
            con.execute("""INSERT INTO label SELECT l.codebook, l.source, l.source_id || '-' || k, l.rater, l.code, l.rank, l.level,
                           l.status, l.uncertain, l.run_id FROM label l, range(1, 5) r(k)
                           WHERE EXISTS (SELECT 1 FROM thread t WHERE t.source = l.source AND t.source_id = l.source_id || '-' || k)""")
            if s.con.execute("SELECT count(*) FROM classification").fetchone()[0]:
                con.execute(f"""INSERT INTO classification (run_id, codebook, source, source_id, code, score, method, rank)
                               SELECT c.run_id, c.codebook, c.source, c.source_id || '-' || k, c.code, c.score, c.method, c.rank
                               FROM classification c, range(1, {copies + 1}) r(k)
                               WHERE EXISTS (SELECT 1 FROM thread t WHERE t.source = c.source AND t.source_id = c.source_id || '-' || k)""")
        s.con.execute("CHECKPOINT")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(db: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devquarry", "serve", "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start: " + proc.stderr.read().decode())


def timed(con: http.client.HTTPConnection, method: str, url: str, body: str | None = None) -> tuple[float, int, str]:
    headers = {"content-type": "application/x-www-form-urlencoded"} if body else {}
    t = time.perf_counter()
    con.request(method, url, body=body, headers=headers)
    r = con.getresponse()
    text = r.read().decode()
    return (time.perf_counter() - t) * 1000, r.status, text


def measure(db: Path, requests: int, seed: int = 42) -> dict[str, list[float]]:
    with Store(db, read_only=True) as s:
        keys = s.con.execute("SELECT source, source_id FROM thread USING SAMPLE 500 ROWS (reservoir, 42)").fetchall()
        n = s.con.execute("SELECT count(*) FROM thread").fetchone()[0]
    proc, port = start(db)
    rng = random.Random(seed)
    out: dict[str, list[float]] = {"threads": n}
    try:
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for url in ("/threads", "/threads?resolved=no&q=error", "/code?codebook=chen2025-so-api&rater=bench&n=5000"):
            timed(con, "GET", url)  # warm: first queries compile, the codebook loads
        words = ["error", "api", "stream", "token", "embedding", "python", "image", "assistant"]
        cases = {
            "thread list": lambda i: ("GET", f"/threads?offset={50 * (i % 20)}", None),
            "filtered list": lambda i: (
                "GET",
                "/threads?"
                + urllib.parse.urlencode(
                    {
                        "codebook": CODEBOOK,
                        "source": "stackoverflow",
                        "resolved": "no",
                        "hand": rng.choice(["chat", "image", "embeddings"]),
                        "q": rng.choice(words),
                    }
                ),
                None,
            ),
            "thread page": lambda i: (
                "GET",
                "/thread?" + urllib.parse.urlencode({"source": keys[i % len(keys)][0], "id": keys[i % len(keys)][1]}),
                None,
            ),
        }
        for name, make in cases.items():
            out[name] = []
            for i in range(requests):
                method, url, body = make(i)
                ms, status, _ = timed(con, method, url, body)
                assert status == 200, (url, status)
                out[name].append(ms)
        page = timed(con, "GET", "/code?codebook=chen2025-so-api&rater=bench&n=5000")[2]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        out["label POST"], out["next thread (GET after POST)"] = [], []
        for _ in range(requests):
            tid = re.search(r'name="thread_id" value="([^"]+)"', page).group(1)
            src = re.search(r'name="thread_source" value="([^"]+)"', page).group(1)
            body = urllib.parse.urlencode(
                {
                    "csrf": csrf,
                    "codebook": CODEBOOK,
                    "rater": "bench",
                    "n": "5000",
                    "thread_source": src,
                    "thread_id": tid,
                    "code": rng.choice(["chat", "image", "audio"]),
                }
            )
            ms, status, _ = timed(con, "POST", "/code/label", body)
            assert status == 303, status
            out["label POST"].append(ms)
            ms, status, page = timed(con, "GET", "/code?codebook=chen2025-so-api&rater=bench&n=5000")
            out["next thread (GET after POST)"].append(ms)
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-db", type=Path, help="a `devquarry demo` store (copied, never written)")
    ap.add_argument("--sizes", default="100000", help="comma-separated sizes of synthetic stores")
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        if args.demo_db:
            demo = work / "demo.duckdb"
            shutil.copy(args.demo_db, demo)
            label = "demo store"
        else:
            demo = demo_like(work / "demo.duckdb")
            label = "demo corpus + labels"
        stores = [(label, demo)]
        for size in [int(x) for x in args.sizes.split(",") if x]:
            t = time.time()
            stores.append((f"synthetic {size:,}", synthetic(demo, work / f"synthetic-{size}.duckdb", size)))
            print(f"built the synthetic store of {size:,} threads in {time.time() - t:.0f} s", file=sys.stderr)
        rows = []
        for name, db in stores:
            res = measure(db, args.requests)
            for case, ms in res.items():
                if case == "threads":
                    continue
                rows.append((name, res["threads"], case, np.percentile(ms, 50), np.percentile(ms, 95)))
        print(f"\n{args.requests} requests per case, one client, server and client on {os.cpu_count()} cores\n")
        print("| store | threads | request | p50 ms | p95 ms |")
        print("|---|---:|---|---:|---:|")
        for name, n, case, p50, p95 in rows:
            print(f"| {name} | {n:,} | {case} | {p50:.0f} | {p95:.0f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
