"""How many processes the local engine's per-thread work may use on this machine."""

from __future__ import annotations

import os

WORKERS_ENV = "DEVQUARRY_WORKERS"


def workers() -> int:
    """``$DEVQUARRY_WORKERS`` if set (1: everything in this process), else the cores this process
    may run on (its CPU affinity, which a container or ``taskset`` narrows)."""
    asked = os.environ.get(WORKERS_ENV, "").strip()
    if asked:
        try:
            return max(1, int(asked))
        except ValueError:
            from devquarry.errors import InputError

            raise InputError(None, f"{WORKERS_ENV} must be a whole number, not {asked!r}", field=WORKERS_ENV) from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
