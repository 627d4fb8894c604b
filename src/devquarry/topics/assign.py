"""New threads into an existing topic run, without refitting it.

A refit at a million threads re-embeds and re-clusters everything and renumbers the topics; a
study that adds a week of threads wants them in the topics it has. Each run keeps what that needs
beside the store (``<store>.topics/run-<id>/assign.joblib``): its embedder (an LSA model fitted on
the run's corpus is kept fitted; a named model by its name) and each topic's centroid, the mean of
its members' unit vectors. A new thread goes to the topic of the nearest centroid by cosine, the
rule BERTopic's ``reduce_outliers(strategy="embeddings")`` uses. The run's own assignments stay as
fitted; the new ones are added to the run in one transaction, and a run ``topics-assign`` records
how many and their mean similarity.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa

from devquarry.embeddings import embed_threads, get_embedder
from devquarry.embeddings.base import normalise
from devquarry.errors import InputError
from devquarry.store import TEXT_COLUMNS, Store

ASSIGNER = "assign.joblib"


def assigner_path(store_path: str | Path, run_id: int) -> Path:
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".topics") / f"run-{run_id}" / ASSIGNER


def topic_centroids(vectors: np.ndarray, labels) -> tuple[list[int], np.ndarray]:
    """The topic ids (outliers left out) and each one's centroid: the unit mean of its members' unit vectors."""
    labels = np.asarray(labels)
    ids = sorted(int(t) for t in set(labels.tolist()) if t >= 0)
    unit = normalise(np.asarray(vectors, dtype=np.float32))
    centroids = normalise(np.vstack([unit[labels == t].mean(axis=0) for t in ids])) if ids else np.zeros((0, unit.shape[1]))
    return ids, centroids.astype(np.float32)


def nearest_topic(vectors: np.ndarray, ids: list[int], centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's nearest centroid by cosine: (topic ids, similarities)."""
    sims = normalise(np.asarray(vectors, dtype=np.float32)) @ centroids.T
    best = sims.argmax(axis=1)
    return np.asarray(ids)[best], sims[np.arange(len(best)), best]


def save_assigner(store: Store, run_id: int, embedder, spec: str | None, vectors: np.ndarray, labels: np.ndarray) -> Path:
    """Keep what assigning new threads to run ``run_id`` needs; written whole or not at all."""
    ids, centroids = topic_centroids(vectors, labels)
    fitted = not getattr(embedder, "cacheable", True)  # a model fitted on this corpus: kept as fitted
    path = assigner_path(store.path, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{ASSIGNER}.{os.getpid()}.tmp")
    joblib.dump(
        {"embedder": embedder if fitted else None, "spec": spec, "topic_ids": ids, "centroids": centroids.astype(np.float32)},
        tmp,
    )
    os.replace(tmp, path)
    return path


def assign_new(
    store: Store, run_id: int | None = None, progress: Callable[[int], None] | None = None, engine=None
) -> pd.DataFrame:
    """Give the threads that topic run ``run_id`` (default: the latest) has not seen the topic of
    their nearest centroid; return them (source, source_id, topic_id, similarity)."""
    from devquarry.topics import latest_topic_run

    run_id = run_id or latest_topic_run(store)
    row = store.con.execute("SELECT params FROM run WHERE run_id = ? AND command = 'topics'", [run_id]).fetchone()
    if row is None:
        raise InputError(store.path, f"no topic run {run_id}", field="run")
    path = assigner_path(store.path, run_id)
    if not path.exists():
        raise InputError(
            path, f"topic run {run_id} kept no centroids (fitted by an older version): fit topics again", field="run"
        )
    saved = joblib.load(path)
    import json

    sources = json.loads(row[0]).get("sources")
    threads = store.threads(columns=TEXT_COLUMNS)
    if sources:
        threads = threads[threads.source.isin(sources)]
    seen = store.query("SELECT source, source_id FROM topic_assignment WHERE run_id = ?", [run_id])
    new = threads.merge(seen, on=["source", "source_id"], how="left", indicator=True)
    new = new[new._merge == "left_only"].drop(columns="_merge").reset_index(drop=True)
    started = datetime.now(UTC)
    out = pd.DataFrame({"source": new.source, "source_id": new.source_id})
    if new.empty or not saved["topic_ids"]:
        return out.assign(topic_id=pd.Series(dtype=int), similarity=pd.Series(dtype=float))
    embedder = saved["embedder"] or get_embedder(saved["spec"])
    out["topic_id"], out["similarity"] = nearest_topic(
        embed_threads(store, embedder, new, progress, engine=engine), saved["topic_ids"], saved["centroids"]
    )
    with store.transaction() as con:
        batch = pa.table(  # noqa: F841 (read by DuckDB)
            {
                "run_id": [run_id] * len(out),
                "source": out.source.tolist(),
                "source_id": out.source_id.tolist(),
                "topic_id": out.topic_id.astype(int).tolist(),
            }
        )
        con.execute("INSERT INTO topic_assignment SELECT * FROM batch")
        store.record_run(
            store.next_run_id(),
            "topics-assign",
            {"run": run_id},
            {"threads": len(out), "mean_similarity": round(float(out.similarity.mean()), 4)},
            started,
        )
    return out
