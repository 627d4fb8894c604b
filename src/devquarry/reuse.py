"""What a run was fitted on, as a short fingerprint recorded in its params, so that a second run on
unchanged data (a second `devquarry demo`) can take the earlier result instead of fitting again."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from devquarry.store import Store


def threads_fingerprint(threads: pd.DataFrame) -> str:
    """The threads' keys and the text the models read, in order (order matters to topic runs)."""
    digest = hashlib.sha256()
    for key in zip(threads.source, threads.source_id, threads.title, threads.body_text):
        digest.update("\x1f".join(map(str, key)).encode() + b"\x1e")
    return f"{len(threads)}:{digest.hexdigest()[:16]}"


def labels_fingerprint(store: Store, codebook: str) -> str:
    rows = store.query(
        """SELECT source, source_id, rater, code, rank, level, status, uncertain FROM label
           WHERE codebook = ? ORDER BY source, source_id, rater, code""",
        [codebook],
    )
    digest = hashlib.sha256(rows.to_csv(index=False).encode())
    return f"{len(rows)}:{digest.hexdigest()[:16]}"


def reusable_run(store: Store, command: str, params: dict) -> tuple[int, dict] | None:
    """The latest run of ``command`` if its params hold every item of ``params`` (the inputs
    fingerprint among them), with its counts; else None. Only the latest counts: reports and
    metrics read the latest run, so an older match would not be what they show."""
    latest = store.query("SELECT run_id, params, counts FROM run WHERE command = ? ORDER BY run_id DESC LIMIT 1", [command])
    if latest.empty:
        return None
    recorded = json.loads(latest.params.iloc[0] or "{}")
    if any(recorded.get(k) != v for k, v in params.items()):
        return None
    return int(latest.run_id.iloc[0]), json.loads(latest.counts.iloc[0] or "{}")
