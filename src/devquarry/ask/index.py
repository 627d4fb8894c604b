"""A persisted hybrid index over threads: BM25 (bm25s, English stop words, Snowball stems) and
dense vectors from one of our embeddings, fused by a convex combination of the two scores
(default; it beat reciprocal rank fusion on both tasks of bench/ask.py) or by reciprocal rank.

The index lives in a folder beside the store (``STORE.index/NAME``): the documents' keys and
content hashes, their BM25 tokens, their vectors, and (for LSA) the fitted model. ``update``
tokenizes and embeds only the documents that are new or changed since the last update; the BM25
statistics are recomputed from the kept tokens, which takes well under a second for 10,000
threads. Nothing is rebuilt per query.

A reopened index needs the embedder again to encode queries: LSA's is fitted on the corpus, so it
is persisted with the index; any other (MiniLM, static, an endpoint) depends on its name alone and
is made again from it when first needed, once per process (loading MiniLM takes seconds).

A save is whole or nothing: the files go into a new generation folder (``.STORE.index.gen/NAME.gen-*``,
beside the index folder, which keeps one entry per index) and the index's own path, a symbolic link,
is then swapped to it in one ``os.replace``. A process killed mid-save leaves the previous index in place. An index is checked when opened (every file
there and loadable, as many documents as vectors as BM25 documents) and rebuilt when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from devquarry.embeddings import get_embedder
from devquarry.embeddings.base import normalise

RRF_K = 60
CANDIDATES = 100
LSA_REFIT_GROWTH = 0.5  # refit LSA when the corpus grew by half since it was fitted
FILES = ("docs.parquet", "tokens.parquet", "vectors.npy", "embedder.joblib", "index.json")
SAVE_STEPS = (*FILES, "swap")
# Tests only: the save step after which the process kills itself, to prove no kill breaks the index.
KILL_AT_ENV = "DEVQUARRY_TEST_KILL_INDEX_SAVE_AT"


def _step(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync(path: Path) -> None:
    """Flush a file (or folder) to disk, so a generation is whole before it becomes the index."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(path: Path):
    """One saver at a time per index (the lock goes with the process, however it ends)."""
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def fitted_backend(embedding: str) -> bool:
    """Whether the embedding is fitted on the corpus it embeds (so it is persisted, and refitted as it grows)."""
    return embedding.split(":")[0].split("@")[0] == "lsa"


@lru_cache(maxsize=4)
def named_embedder(embedding: str):
    return get_embedder(embedding)


@lru_cache(maxsize=1)
def _function_words() -> frozenset[str]:
    """English function words, stemmed as the tokens are: bm25s's list of 33 keeps "what", "how",
    "should", "I", "do", which made an off-subject question share half its "content" with a thread."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(_stemmer().stemWords(sorted(ENGLISH_STOP_WORDS)))


def content_words(text: str) -> set[str]:
    """The stemmed content words of ``text``: its tokens less the function words."""
    return set(tokenize([text])[0]) - _function_words()


def tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


class HybridIndex:
    """Build with ``update(docs)`` where ``docs`` has ``key``, ``hash`` and ``text`` columns."""

    def __init__(self, folder: str | Path, embedding: str = "lsa") -> None:
        self.folder = Path(folder)
        self.embedding = embedding
        self.docs = pd.DataFrame(columns=["key", "hash"])
        self.tokens: list[list[str]] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.embedder = None
        self.fitted_on = 0
        self.bm25 = None
        self._last_query = self._last_vector = None
        self._load()

    # -- persistence -------------------------------------------------------------------------
    @property
    def generations(self) -> Path:
        """Where the saved generations of the indexes in ``folder.parent`` live."""
        return self.folder.parent.with_name(f".{self.folder.parent.name}.gen")

    def _load(self) -> None:
        """Open the saved index, or start empty (to be rebuilt) when there is none or it does not hold
        together: any failure to read it (a truncated file, a missing one, counts that differ) means
        rebuild, never an error for the user nor an index that silently leaves threads out."""
        self.discarded = None
        if not (self.folder / "index.json").exists() and not self.folder.exists():
            return
        try:
            loaded = self._read()
        except Exception as exc:  # noqa: BLE001 - parquet, numpy, joblib and json each fail their own way
            self.discarded = f"{type(exc).__name__}: {exc}"
            return
        if loaded is not None:
            self.docs, self.tokens, self.vectors, self.embedder, self.fitted_on, self.bm25 = loaded

    def _read(self):
        info = json.loads((self.folder / "index.json").read_text())
        if info.get("embedding") != self.embedding:
            return None
        n = int(info["documents"])
        docs = pd.read_parquet(self.folder / "docs.parquet")
        tokens = [list(t) for t in pd.read_parquet(self.folder / "tokens.parquet")["tokens"]]
        vectors = np.load(self.folder / "vectors.npy", allow_pickle=False)
        if list(docs.columns) != ["key", "hash"] or vectors.ndim != 2:
            raise ValueError("unexpected columns or vector shape")
        if not len(docs) == len(tokens) == len(vectors) == n:
            raise ValueError(f"{len(docs)} documents, {len(tokens)} token lists, {len(vectors)} vectors; index.json says {n}")
        embedder = None
        if fitted_backend(self.embedding) and n:
            embedder = joblib.load(self.folder / "embedder.joblib")
            if np.asarray(embedder.encode(["check"])).shape[-1] != vectors.shape[1]:
                raise ValueError("the fitted embedder does not match the vectors")
        bm25 = self._bm25(tokens)
        if tokens and bm25.scores["num_docs"] != n:
            raise ValueError("the BM25 index does not cover every document")
        return docs, tokens, vectors, embedder, info.get("fitted_on", 0), bm25

    def _save(self) -> None:
        """Write a whole new generation, then make it the index in one step (see the module's doc)."""
        parent, name = self.folder.parent, self.folder.name
        gens = self.generations
        parent.mkdir(parents=True, exist_ok=True)
        gens.mkdir(exist_ok=True)
        prefix = f"{name}.gen-"
        with _locked(gens / f"{name}.lock"):
            gen = Path(tempfile.mkdtemp(prefix=prefix, dir=gens))
            self.docs.to_parquet(gen / "docs.parquet", index=False)
            _step("docs.parquet")
            pd.DataFrame({"tokens": self.tokens}).to_parquet(gen / "tokens.parquet", index=False)
            _step("tokens.parquet")
            np.save(gen / "vectors.npy", self.vectors)
            _step("vectors.npy")
            if self.embedder is not None and fitted_backend(self.embedding):
                joblib.dump(self.embedder, gen / "embedder.joblib")
            _step("embedder.joblib")
            info = {"embedding": self.embedding, "documents": len(self.docs), "fitted_on": self.fitted_on}
            (gen / "index.json").write_text(json.dumps(info))
            _step("index.json")
            for f in gen.iterdir():
                _fsync(f)
            _fsync(gen)
            link = gens / f"{gen.name}.link"  # its target is read from the index folder, where it goes
            os.symlink(Path("..", gens.name, gen.name), link)  # relative: both folders may move with the store
            if self.folder.is_dir() and not self.folder.is_symlink():  # an index saved in place by an older version
                self.folder.rename(gen.with_name(gen.name + ".old"))
            os.replace(link, self.folder)
            _fsync(parent)
            _step("swap")
            # Generations of earlier saves, and any that a killed save left half-written.
            for p in gens.iterdir():
                if p.name.startswith(prefix) and p != gen:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    # -- building ----------------------------------------------------------------------------
    def _index_bm25(self) -> None:
        self.bm25 = self._bm25(self.tokens)

    @staticmethod
    def _bm25(tokens: list[list[str]]):
        import bm25s

        bm25 = bm25s.BM25()
        if tokens:
            bm25.index(tokens, show_progress=False)
        return bm25

    def _embedder(self):
        """The embedder of the index's vectors; a fitted one (LSA) only after ``update`` fitted or loaded it."""
        if self.embedder is None and not fitted_backend(self.embedding):
            self.embedder = named_embedder(self.embedding)
        if self.embedder is None:
            raise RuntimeError(f"the {self.embedding} index in {self.folder} has no fitted embedder; call update() first")
        return self.embedder

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if self.embedder is None and fitted_backend(self.embedding):
            self.embedder = get_embedder(self.embedding).fit(texts)
            self.fitted_on = len(texts)
        return np.asarray(self._embedder().encode(texts, progress=progress), dtype=np.float32)

    def plan(self, docs: pd.DataFrame) -> dict:
        """What ``update(docs)`` would do: the documents it would embed (``to_embed``), add and remove."""
        docs = docs.drop_duplicates("key").reset_index(drop=True)
        old = dict(zip(self.docs.key, self.docs.hash)) if len(self.docs) else {}
        same = docs.key.map(old).eq(docs.hash)
        removed = len(set(old) - set(docs.key))
        growth = len(docs) / max(self.fitted_on, 1) - 1
        refit = fitted_backend(self.embedding) and len(docs) > 0 and (self.embedder is None or growth > LSA_REFIT_GROWTH)
        fresh = docs[~same]
        return {
            "docs": docs,
            "same": same,
            "fresh": fresh,
            "removed": removed,
            "refit": refit,
            "to_embed": len(docs) if refit else len(fresh),
        }

    def update(self, docs: pd.DataFrame, progress: Callable[[int], None] | None = None) -> dict:
        """Bring the index in line with ``docs`` (key, hash, text); return what changed.
        ``progress`` is called with the number of documents embedded since its last call."""
        plan = self.plan(docs)
        docs, fresh, removed, refit = plan["docs"], plan["fresh"], plan["removed"], plan["refit"]
        if fresh.empty and not removed and not refit and len(self.docs):
            return {"documents": len(self.docs), "added": 0, "removed": 0, "refit": False}
        if docs.empty:  # nothing to index: no embedder is made or fitted (LSA cannot fit on nothing)
            self.docs, self.tokens = pd.DataFrame(columns=["key", "hash"]), []
            self.vectors = np.zeros((0, 0), dtype=np.float32)
            self._index_bm25()
            self._save()
            return {"documents": 0, "added": 0, "removed": removed, "refit": False}
        keep = docs[plan["same"]]
        position = {k: i for i, k in enumerate(self.docs.key)} if len(self.docs) else {}
        kept_tokens = [self.tokens[position[k]] for k in keep.key]
        new_tokens = tokenize(fresh.text.tolist()) if len(fresh) else []
        if refit:
            self.embedder = None
            vectors = self._encode(docs.text.tolist(), progress)
            order = pd.concat([keep, fresh], ignore_index=True)
            vectors = vectors[pd.Index(docs.key).get_indexer(order.key)]
        else:
            kept_vectors = (
                self.vectors[[position[k] for k in keep.key]]
                if len(keep)
                else np.zeros((0, self.vectors.shape[1] if self.vectors.size else 0), np.float32)
            )
            new_vectors = self._encode(fresh.text.tolist(), progress) if len(fresh) else kept_vectors[:0]
            vectors = np.vstack([kept_vectors, new_vectors]) if len(kept_vectors) else new_vectors
            order = pd.concat([keep, fresh], ignore_index=True)
        self.docs = order[["key", "hash"]].reset_index(drop=True)
        self.tokens = kept_tokens + [list(t) for t in new_tokens]
        self.vectors = normalise(vectors).astype(np.float32)
        self._last_query = None  # a refit embedder encodes the query anew
        self._index_bm25()
        self._save()
        return {"documents": len(self.docs), "added": len(fresh), "removed": removed, "refit": refit}

    # -- searching ---------------------------------------------------------------------------
    def bm25_ranking(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``mask``: the documents that may be returned (booleans in index order); None for all."""
        if not self.tokens:  # bm25s builds no vocabulary over no documents
            return np.zeros(0, int), np.zeros(0)
        vocab = self.bm25.vocab_dict
        q = [t for t in tokenize([query])[0] if t in vocab]
        if not q:
            return np.zeros(0, int), np.zeros(0)
        weights = mask.astype(np.float32) if mask is not None else None
        idx, scores = self.bm25.retrieve([q], k=min(k, len(self.docs)), show_progress=False, weight_mask=weights)
        keep = scores[0] > 0
        return idx[0][keep], scores[0][keep]

    def dense_ranking(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if not len(self.docs):
            return np.zeros(0, int), np.zeros(0)
        sims = self.vectors @ self._query_vector(query)
        candidates = np.flatnonzero(mask) if mask is not None else np.arange(len(sims))
        top = candidates[np.argsort(-sims[candidates], kind="stable")[:k]]
        return top, sims[top]

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        candidates: int = CANDIDATES,
        exclude: set | None = None,
        fusion: str = "convex",
        alpha: float = 0.5,
        only: set | None = None,
    ) -> pd.DataFrame:
        """Top ``k`` documents: key, score, bm25_rank, dense_rank, cosine, overlap (the share of the
        query's stemmed content words the document holds); mode: hybrid, bm25 or dense; ``only``: the
        keys that may be returned (None: all), so one index serves every choice of sources.

        ``fusion="rrf"``: reciprocal rank fusion, sum of 1 / (60 + rank); ``"convex"``: ``alpha`` times
        the BM25 score over the best one plus (1 - ``alpha``) times the cosine min-max scaled over
        the candidates of both retrievers."""
        mask = self.docs.key.isin(only).to_numpy() if only is not None else None
        b_idx, b_score = self.bm25_ranking(query, candidates, mask) if mode in ("hybrid", "bm25") else (np.zeros(0, int), None)
        d_idx, d_sim = (
            self.dense_ranking(query, max(candidates, k), mask) if mode in ("hybrid", "dense") else (np.zeros(0, int), None)
        )
        rows: dict[int, dict] = {}
        for rank, i in enumerate(b_idx, 1):
            rows.setdefault(int(i), {"bm25_rank": None, "dense_rank": None})["bm25_rank"] = rank
        for rank, i in enumerate(d_idx, 1):
            rows.setdefault(int(i), {"bm25_rank": None, "dense_rank": None})["dense_rank"] = rank
        out = []
        if fusion == "convex" and mode == "hybrid" and rows:
            union = np.fromiter(rows, dtype=int)
            cos = self.vectors[union] @ self._query_vector(query)
            cos = (cos - cos.min()) / (cos.max() - cos.min() + 1e-9)
            bm = dict(zip(b_idx.tolist(), (b_score / b_score.max()).tolist())) if len(b_idx) else {}
            convex = {int(i): alpha * bm.get(int(i), 0.0) + (1 - alpha) * float(c) for i, c in zip(union, cos)}
        for i, r in rows.items():
            key = self.docs.key.iloc[i]
            if exclude and key in exclude:
                continue
            if fusion == "convex" and mode == "hybrid":
                score = convex[i]
            else:
                score = sum(1.0 / (RRF_K + r[x]) for x in ("bm25_rank", "dense_rank") if r[x] is not None)
            out.append({"key": key, "position": i, "score": score, **r})
        df = pd.DataFrame(out, columns=["key", "position", "score", "bm25_rank", "dense_rank"])
        if df.empty:
            return df.assign(cosine=pd.Series(dtype=float), overlap=pd.Series(dtype=float))
        df = df.sort_values(["score", "position"], ascending=[False, True]).head(k).reset_index(drop=True)
        df["cosine"] = self.vectors[df.position.to_numpy()] @ self._query_vector(query)
        q = content_words(query)
        df["overlap"] = [len(q & set(self.tokens[i])) / len(q) if q else 0.0 for i in df.position]
        return df

    def _query_vector(self, query: str) -> np.ndarray:
        if self._last_query != query:  # one encoding per query, however many uses
            self._last_query, self._last_vector = query, np.asarray(self._embedder().encode([query]), dtype=np.float32)[0]
        return self._last_vector
