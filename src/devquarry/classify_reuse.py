"""Coding only what is new since the last run.

A thread's codes depend on the training labels (and their threads' texts), the coder and its own
text only (see ``classify.code_threads``), so a run with the same codebook, coder, settings,
training labels and library versions as an earlier one, no labelled thread written since, gives
every thread that was not written since that run the codes it had. ``classify`` keeps those rows and codes the rest: adding 1% of new threads to a
million costs about 1% of the coding (plus refitting the coder on the labels, which does not grow
with the store). ``classify(..., reuse=False)`` (``--recode-all``) codes every thread again.
"""

from __future__ import annotations

import json

import pandas as pd

from devquarry.store import Store, library_versions

# The parameters of a classify run that decide its codes (besides the labels and the versions).
SETTINGS = (
    "method",
    "coder",
    "train_raters",
    "train_sources",
    "level",
    "embedding",
    "threshold",
    "sources",
    "relevance_asked",
)


def reusable_run(store: Store, codebook: str, params: dict, labels_fp: str) -> int | None:
    """The latest classify run of ``codebook`` made with these settings, labels and versions."""
    versions = library_versions()
    rows = store.con.execute(
        "SELECT run_id, params, versions FROM run WHERE command = 'classify' ORDER BY run_id DESC"
    ).fetchall()
    for run_id, raw, vers in rows:
        p = json.loads(raw)
        if p.get("codebook") != codebook:
            continue
        same = all(p.get(k) == params.get(k) for k in SETTINGS)
        if same and str(p.get("inputs", "")).rsplit("/", 1)[-1] == labels_fp and json.loads(vers) == versions:
            return int(run_id) if _training_unchanged(store, codebook, int(run_id)) else None
        return None  # only the latest run of the codebook: an older one may predate relabelled threads
    return None


def _training_unchanged(store: Store, codebook: str, run_id: int) -> bool:
    """No labelled thread was written since ``run_id``: an edited training text changes the coder."""
    (last,) = store.con.execute(
        """SELECT coalesce(max(t.run_id), 0) FROM thread t
           JOIN (SELECT DISTINCT source, source_id FROM label WHERE codebook = ?) l USING (source, source_id)""",
        [codebook],
    ).fetchall()[0]
    return int(last) < run_id


def kept_rows(store: Store, run_id: int, threads: pd.DataFrame) -> pd.DataFrame:
    """Run ``run_id``'s rows for those of ``threads`` that no ingest has written since it ran."""
    keys = threads[["source", "source_id"]]
    rows = store.query(
        """SELECT c.source, c.source_id, c.code, c.score, c.rank FROM classification c
           JOIN thread t USING (source, source_id)
           WHERE c.run_id = ? AND coalesce(t.run_id, 0) < ?""",
        [run_id, run_id],
    )
    return rows.merge(keys, on=["source", "source_id"])
