"""Stream a >= 1 GB Stack Exchange Posts.xml and show that memory stays flat.

Builds the file by repeating the real rows of ../shared/data/stackexchange-dump-cstheory-meta
with new ids (answers keep pointing at their own copy of the question), then, in one process:

  baseline   lxml.iterparse over the file, clearing rows, doing nothing else (the floor)
  parse      devquarry's StackExchangeDump.records() (HTML to text, typed records)
  ingest     the full ingest into a fresh DuckDB store in one transaction

and prints MB/s, the ratio to the baseline, and resident memory at 10%, 50% and 100% of
the input, plus the peak. Usage: python bench/ingest.py [--size-mb 1024] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from lxml import etree

from devquarry import Store, ingest
from devquarry.sources import StackExchangeDump

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(os.environ.get("DEVQUARRY_SHARED_DATA", ROOT.parent / "shared" / "data")) / "stackexchange-dump-cstheory-meta"
_IDS = re.compile(rb'( (?:Id|ParentId|AcceptedAnswerId)=")(\d+)(")')


def build(target: Path, size_mb: int) -> int:
    lines = [ln for ln in (SRC / "Posts.xml").read_bytes().splitlines() if ln.lstrip().startswith(b"<row ")]
    max_id = max(int(m.group(1)) for ln in lines for m in [re.search(rb' Id="(\d+)"', ln)] if m)
    step = 10 ** len(str(max_id))
    want = size_mb * 1024 * 1024
    copies = 0
    with open(target, "wb") as out:
        out.write(b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        while out.tell() < want:
            off = copies * step
            chunk = b"\n".join(
                _IDS.sub(lambda m, off=off: m.group(1) + str(int(m.group(2)) + off).encode() + m.group(3), ln) for ln in lines
            )
            out.write(chunk + b"\n")
            copies += 1
        out.write(b"</posts>\n")
    return copies


class Sampler:
    """Samples resident memory against bytes consumed."""

    def __init__(self, total: int) -> None:
        self.proc = psutil.Process()
        self.total = total
        self.done = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def advance(self, n: int) -> None:
        self.done += n

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((self.done / self.total, self.proc.memory_info().rss))
            time.sleep(0.2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.samples.append((1.0, self.proc.memory_info().rss))

    def at(self, frac: float) -> float:
        rss = [r for f, r in self.samples if f >= frac]
        return (rss[0] if rss else self.samples[-1][1]) / 2**20

    @property
    def peak(self) -> float:
        return max(r for _, r in self.samples) / 2**20


def run(label: str, size: int, fn) -> tuple[float, float]:
    """MB/s by the clock and by CPU time (all threads of this process): on a shared machine the
    clock counts what other processes took; CPU time counts only this work."""
    with Sampler(size) as s:
        t0, c0 = time.perf_counter(), time.process_time()
        extra = fn(s.advance)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    mbps, cpu_mbps = size / 2**20 / secs, size / 2**20 / cpu
    print(
        f"{label:9s} {secs:8.1f} s {mbps:8.1f} MB/s  (CPU {cpu:7.1f} s {cpu_mbps:8.1f} MB/s)   RSS MiB at 10% {s.at(0.1):7.0f}  "
        f"50% {s.at(0.5):7.0f}  100% {s.at(1.0):7.0f}  peak {s.peak:7.0f}   {extra or ''}",
        flush=True,
    )
    return mbps, cpu_mbps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    if not (SRC / "Posts.xml").exists():
        sys.exit(f"needs {SRC}/Posts.xml")
    work = Path(tempfile.mkdtemp(dir=args.workdir, prefix="dq-bench-"))
    try:
        posts = work / "Posts.xml"
        t0 = time.perf_counter()
        copies = build(posts, args.size_mb)
        size = posts.stat().st_size
        print(
            f"built {posts} : {size / 2**20:,.0f} MiB, {copies} copies of the excerpt ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

        def baseline(advance):
            n = 0
            with open(posts, "rb") as fh:

                class R:
                    def read(self, k):
                        b = fh.read(k)
                        advance(len(b))
                        return b

                for _, el in etree.iterparse(R(), tag="row"):
                    n += 1
                    el.clear()
                    while el.getprevious() is not None:
                        del el.getparent()[0]
            return f"{n:,} rows"

        def parse(advance):
            src = StackExchangeDump(work, site="cstheory.meta.stackexchange.com")
            src.progress = advance
            n = sum(1 for _ in src.records())
            return f"{n:,} records"

        def full(advance):
            with Store(work / "bench.duckdb") as store:
                counts = ingest(store, StackExchangeDump(work, site="cstheory.meta.stackexchange.com"), progress=advance)
                c = counts.attrs["counts"]
            db_mb = (work / "bench.duckdb").stat().st_size / 2**20
            return f"{c['threads_new']:,} threads, {c['replies_new']:,} replies, store {db_mb:,.0f} MiB"

        base = run("baseline", size, baseline)
        p = run("parse", size, parse)
        print(f"parse / baseline throughput ratio: {p[0] / base[0]:.2f} (by CPU time {p[1] / base[1]:.2f})", flush=True)
        if not args.skip_ingest:
            i = run("ingest", size, full)
            print(f"ingest / baseline throughput ratio: {i[0] / base[0]:.2f} (by CPU time {i[1] / base[1]:.2f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
