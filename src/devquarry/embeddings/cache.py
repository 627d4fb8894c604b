"""Vectors cached in the store by (backend, model, text hash): a second run embeds nothing new."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from devquarry.embeddings.base import Embedder, get_embedder
from devquarry.store import Store

CHUNK = 4096  # texts encoded per commit here: MiniLM on 2 cores encodes that many in about two minutes
REMOTE_CHUNK = 65536  # per commit on a cluster, where each chunk pays for starting a job
# Tests only: the chunk size, and the number of chunks committed after which the process kills itself.
CHUNK_ENV, KILL_AFTER_ENV = "DEVQUARRY_TEST_EMBED_CHUNK", "DEVQUARRY_TEST_KILL_EMBED_AFTER"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def uncached(store: Store, embedder: Embedder | str | None, texts: list[str]) -> int:
    """How many distinct texts the store holds no vector for (what a first run would embed)."""
    embedder = get_embedder(embedder)
    wanted = pa.table({"text_hash": sorted({text_hash(t) for t in texts})})  # noqa: F841 (read by DuckDB)
    held = store.con.execute(
        "SELECT count(*) FROM embedding e JOIN wanted w USING (text_hash) WHERE e.backend = ? AND e.model = ?",
        [embedder.backend, embedder.model_id],
    ).fetchone()[0]
    return len(wanted) - int(held)


def embed_texts(
    store: Store | None,
    embedder: Embedder | str | None,
    texts: list[str],
    progress: Callable[[int], None] | None = None,
    engine=None,
) -> np.ndarray:
    """Embed texts, reading cached vectors from the store and writing the new ones to it.

    ``engine`` (``devquarry.engine``; default local): where the missing texts are encoded. Ray
    workers build a named embedder themselves and are sent a fitted one (LSA, fitted here first);
    the vectors come back here and are written a chunk per transaction."""
    from devquarry.engine import encode, is_local

    # Workers are sent the name when one was given (each builds its own embedder), else the object.
    spec = embedder if isinstance(embedder, str) else None
    embedder = get_embedder(embedder)
    texts = list(texts)
    if store is None or not embedder.cacheable:
        return encode(engine, embedder, texts, progress)
    hashes = [text_hash(t) for t in texts]
    wanted = pa.table({"text_hash": sorted(set(hashes))})  # noqa: F841 (read by DuckDB)
    rows = store.con.execute(
        "SELECT e.text_hash, e.vector FROM embedding e JOIN wanted w USING (text_hash) WHERE e.backend = ? AND e.model = ?",
        [embedder.backend, embedder.model_id],
    ).fetchall()
    found = {h: np.frombuffer(v, dtype=np.float32) for h, v in rows}
    missing = list(dict.fromkeys(h for h in hashes if h not in found))
    if progress and found:
        progress(sum(1 for h in hashes if h in found))
    if missing:
        first = {h: i for i, h in reversed(list(enumerate(hashes)))}
        # Committed chunk by chunk: a run killed after hours of encoding keeps what it encoded, and
        # the next run starts where it stopped (a chunk is whole or absent, never half written).
        step = int(os.environ.get(CHUNK_ENV, 0)) or (CHUNK if is_local(engine) else REMOTE_CHUNK)
        for n, start in enumerate(range(0, len(missing), step), 1):
            part = missing[start : start + step]
            new = encode(engine, embedder, [texts[first[h]] for h in part], progress, spec=spec)
            batch = pa.table(  # noqa: F841 (read by DuckDB)
                {
                    "backend": [embedder.backend] * len(part),
                    "model": [embedder.model_id] * len(part),
                    "text_hash": part,
                    "dim": [new.shape[1]] * len(part),
                    "vector": [row.astype(np.float32).tobytes() for row in new],
                }
            )
            with store.transaction() as con:
                con.execute("INSERT INTO embedding SELECT * FROM batch ON CONFLICT DO NOTHING")
            found.update(zip(part, new))
            if os.environ.get(KILL_AFTER_ENV) == str(n):
                os.kill(os.getpid(), signal.SIGKILL)
    embedder.last_encoded_ = len(missing)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([found[h] for h in hashes]).astype(np.float32)


def embed_threads(store: Store, embedder: Embedder | str | None, threads: pd.DataFrame, progress=None, engine=None) -> np.ndarray:
    """Embed threads (title, then body) in the order of the frame."""
    from devquarry.text import thread_text

    texts = [thread_text(t, b) for t, b in zip(threads["title"], threads["body_text"])]
    return embed_texts(store, embedder, texts, progress, engine=engine)
