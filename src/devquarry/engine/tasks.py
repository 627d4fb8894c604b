"""The heavy steps as batch functions for an engine: encoding texts, and a fitted coder's
``predict_proba``. With the local engine each is the direct call it always was."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from devquarry.engine.base import Engine, get_engine, is_local

# Backends whose model runs on a GPU when a worker has one (the others are numpy or HTTP).
GPU_BACKENDS = {"minilm"}


def _matrix(out: pd.DataFrame, dtype) -> np.ndarray:
    return out.to_numpy(dtype=dtype)


def _columns(matrix: np.ndarray) -> pd.DataFrame:
    # String names: Parquet and Arrow want them.
    return pd.DataFrame(matrix, columns=[str(i) for i in range(matrix.shape[1])])


class Encode:
    """On a worker: an embedder made once (from its spec, or the fitted one shipped), then batches."""

    def __init__(self, embedder) -> None:
        from devquarry.embeddings.base import get_embedder

        self.embedder = get_embedder(embedder)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return _columns(np.asarray(self.embedder.encode(batch.text.tolist()), dtype=np.float32))


def encode(
    engine: Engine | str | None,
    embedder,
    texts: list[str],
    progress: Callable[[int], None] | None = None,
    *,
    spec: str | None = None,
) -> np.ndarray:
    """``embedder.encode(texts)`` through ``engine`` (``embedder``: an Embedder or a spec). Workers are
    sent ``spec`` when given (each makes its own embedder from the name) and else the embedder
    itself; one fitted on the corpus (LSA) is fitted here first, on these texts, as its own
    ``encode`` would, and sent fitted."""
    from devquarry.embeddings.base import get_embedder

    embedder = get_embedder(embedder)
    texts = list(texts)
    if is_local(engine) or not texts:
        return embedder.encode(texts, progress)
    engine = get_engine(engine)
    if spec is None and getattr(embedder, "pipeline_", False) is None:  # an unfitted LSA: fit once, here
        embedder.fit(texts)
    out = engine.map_batches(
        pd.DataFrame({"text": texts}),
        Encode,
        args=(spec or embedder,),
        gpus=embedder.backend in GPU_BACKENDS,
        progress=progress,
    )
    return _matrix(out, np.float32)


class _Given:
    """A coder's ``embed`` on a worker: the batch's vectors, embedded (and cached) by the caller."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def __call__(self, texts: list[str]) -> np.ndarray:
        if len(texts) != len(self.vectors):
            raise RuntimeError(f"{len(texts)} texts for {len(self.vectors)} vectors")
        return self.vectors


class Predict:
    """On a worker: a fitted coder (shipped once per worker) giving probabilities for batches of
    texts, or of sparse feature rows (``n_features`` wide)."""

    def __init__(self, model, n_features: int | None) -> None:
        self.model, self.n_features = model, n_features

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.n_features is not None:
            lengths = [len(r) for r in batch.indices]
            indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            indices = (
                np.concatenate([np.asarray(r, dtype=np.int32) for r in batch.indices]) if indptr[-1] else np.zeros(0, np.int32)
            )
            data = np.concatenate([np.asarray(r, dtype=np.float64) for r in batch.data]) if indptr[-1] else np.zeros(0)
            X = sp.csr_matrix((data, indices, indptr), shape=(len(batch), self.n_features))
        else:
            X = batch.text.tolist()
        if "vector" in batch:
            self.model.embed = _Given(np.vstack(batch.vector.to_numpy()).astype(np.float32))
        try:
            return _columns(np.asarray(self.model.predict_proba(X), dtype=np.float64))
        finally:
            if "vector" in batch:
                self.model.embed = None


def predict_proba(engine: Engine | str | None, model, X, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """``model.predict_proba(X)`` through ``engine``, the fitted model shipped to the workers. ``X``:
    texts, or a sparse matrix of feature rows. A coder that embeds through a function of this process
    (``embed``, e.g. the store's cache) embeds here first (through the same engine, if that function
    uses it) and its workers are given the vectors."""
    if is_local(engine) or (X.shape[0] if sp.issparse(X) else len(X)) == 0:
        return model.predict_proba(X)
    engine = get_engine(engine)
    if sp.issparse(X):
        X = sp.csr_matrix(X)  # rows as they are: the order of a row's entries is the order of its sums
        rows = [slice(X.indptr[i], X.indptr[i + 1]) for i in range(X.shape[0])]
        frame = pd.DataFrame({"indices": [X.indices[r] for r in rows], "data": [X.data[r] for r in rows]})
        n_features = X.shape[1]
    else:
        frame = pd.DataFrame({"text": list(X)})
        n_features = None
    shipped = model
    if getattr(model, "embed", None) is not None:
        if n_features is not None:
            raise ValueError("a coder that embeds texts needs texts, not feature rows")
        frame["vector"] = list(np.asarray(model.embed(frame.text.tolist()), dtype=np.float32))
        shipped = copy.copy(model)  # the embed function holds the store's connection: it stays here
        shipped.embed = None
    out = engine.map_batches(frame, Predict, args=(shipped, n_features), progress=progress)
    return _matrix(out, np.float64)


def _html_batch(batch: pd.DataFrame) -> pd.DataFrame:
    from devquarry.text import html_texts

    text, code = html_texts(batch.html.tolist())
    return pd.DataFrame({"text": text, "code": code})


def html_to_texts(engine: Engine | str | None, html: list[str], progress: Callable[[int], None] | None = None):
    """``html_to_text`` of each body through ``engine``: (prose, code) as two lists, in input order."""
    from devquarry.text import html_texts

    if is_local(engine) or not html:
        return html_texts(html)
    out = get_engine(engine).map_batches(pd.DataFrame({"html": html}), _html_batch, progress=progress)
    return out.text.tolist(), out.code.tolist()
