"""Time `devquarry --help` against a bare interpreter start and against `import typer` (its floor).

    python bench/cli_help.py [--runs 20] [--command "metrics --help"]

Each is run --runs times in a fresh process, alternating, and the median is printed in
milliseconds with its ratio to `python -c pass`, measured in the same loop so that both see the
same load on the machine.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time


def _once(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--command", default="--help", help="devquarry arguments to time (default --help)")
    args = parser.parse_args()
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
        f"devquarry {args.command}": [sys.executable, "-m", "devquarry", *shlex.split(args.command)],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for cmd in cases.values():  # warm the file cache once
        _once(cmd)
    for _ in range(args.runs):
        for name, cmd in cases.items():
            times[name].append(_once(cmd))
    base = statistics.median(times["python -c pass"])
    for name, xs in times.items():
        med = statistics.median(xs)
        print(f"{name:<32} median {med * 1000:7.1f} ms  (min {min(xs) * 1000:6.1f})  {med / base:5.1f}x python -c pass")


if __name__ == "__main__":
    main()
