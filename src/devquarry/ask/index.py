"""A persisted hybrid index over threads: BM25 (bm25s, English stop words, Snowball stems) and
dense vectors from one of our embeddings, fused by a convex combination of the two scores
(default; it beat reciprocal rank fusion on both tasks of bench/ask.py) or by reciprocal rank.

The index lives in a folder beside the store (``STORE.index/NAME``): the documents' keys and
content hashes, their BM25 tokens and index, their vectors, and (for LSA) the fitted model. ``update``
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
import pyarrow as pa
import pyarrow.parquet as pq

from devquarry.ask.tokens import META, Tokens, _meta, content_words, tokenize
from devquarry.embeddings import get_embedder
from devquarry.embeddings.base import normalise

RRF_K = 60
CANDIDATES = 100
LSA_REFIT_GROWTH = 0.5  # refit LSA when the corpus grew by half since it was fitted
FILES = ("docs.parquet", "tokens.parquet", "bm25", "vectors.npy", "meta.arrow", "embedder.joblib", "index.json")
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


def fitted_backend(embedding: str) -> bool:
    """Whether the embedding is fitted on the corpus it embeds (so it is persisted, and refitted as it grows)."""
    return embedding.split(":")[0].split("@")[0] == "lsa"


@lru_cache(maxsize=4)
def named_embedder(embedding: str):
    return get_embedder(embedding)


class HybridIndex:
    """Build with ``update(docs)`` where ``docs`` has ``key``, ``hash`` and ``text`` columns."""

    def __init__(self, folder: str | Path, embedding: str = "lsa", engine=None) -> None:
        self.folder = Path(folder)
        self.embedding = embedding
        self.engine = engine  # where documents are encoded (devquarry.engine; default local); queries stay here
        self.docs = pd.DataFrame(columns=["key", "hash"])
        self.tokens = Tokens()
        self.meta: pa.Table | None = None
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
            self.docs, self.tokens, self.vectors, self.embedder, self.fitted_on, self.bm25, self.meta = loaded

    def _read(self):
        info = json.loads((self.folder / "index.json").read_text())
        if info.get("embedding") != self.embedding:
            return None
        n = int(info["documents"])
        docs = pd.read_parquet(self.folder / "docs.parquet")
        tokens = Tokens(pq.read_table(self.folder / "tokens.parquet").column("tokens").combine_chunks())
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
        bm25 = self._load_bm25() if n else self._bm25([])
        if n and bm25.scores["num_docs"] != n:
            raise ValueError("the BM25 index does not cover every document")
        meta = None
        if (self.folder / "meta.arrow").exists():
            meta = pa.ipc.open_file(pa.memory_map(str(self.folder / "meta.arrow"))).read_all()
            if len(meta) != n:
                raise ValueError(f"{len(meta)} rows of hit details for {n} documents")
        return docs, tokens, vectors, embedder, info.get("fitted_on", 0), bm25, meta

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
            pq.write_table(pa.table({"tokens": self.tokens.column}), gen / "tokens.parquet")
            _step("tokens.parquet")
            if len(self.tokens):  # saved, not re-indexed on each open: that took seconds per 100,000 threads
                self.bm25.save(gen / "bm25", show_progress=False)
            _step("bm25")
            np.save(gen / "vectors.npy", self.vectors)
            _step("vectors.npy")
            if self.meta is not None:
                with pa.ipc.new_file(str(gen / "meta.arrow"), self.meta.schema) as writer:
                    writer.write_table(self.meta)
            _step("meta.arrow")
            if self.embedder is not None and fitted_backend(self.embedding):
                joblib.dump(self.embedder, gen / "embedder.joblib")
            _step("embedder.joblib")
            info = {"embedding": self.embedding, "documents": len(self.docs), "fitted_on": self.fitted_on}
            (gen / "index.json").write_text(json.dumps(info))
            _step("index.json")
            for f in [*gen.iterdir(), *(gen / "bm25").glob("*")]:
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

    @property
    def state_file(self) -> Path:
        """The store's state (``answer.store_state``) when this index last matched it; kept beside the
        generations, outside them, so that an unchanged store costs no save."""
        return self.generations / f"{self.folder.name}.state"

    def read_state(self) -> str | None:
        try:
            info = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        # Only for the generation it was written for: a save since then (another process) voids it.
        return info.get("state") if info.get("documents") == len(self.docs) and info.get("target") == self._target() else None

    def write_state(self, state: str) -> None:
        self.generations.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(self.state_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"state": state, "documents": len(self.docs), "target": self._target()}))
        os.replace(tmp, self.state_file)

    def _target(self) -> str | None:
        return os.readlink(self.folder) if self.folder.is_symlink() else None

    # -- building ----------------------------------------------------------------------------
    def _index_bm25(self, lists: list[list[str]]) -> None:
        self.bm25 = self._bm25(lists)

    def _load_bm25(self):
        import bm25s

        if not (self.folder / "bm25").is_dir():  # an index saved by an older version
            return self._bm25(self.tokens.take(range(len(self.tokens))))
        return bm25s.BM25.load(self.folder / "bm25", mmap=True, show_progress=False, verbosity=0)

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
        from devquarry.engine import encode

        # A named embedder is built by each worker; a fitted one (LSA) is sent as fitted here.
        spec = None if fitted_backend(self.embedding) else self.embedding
        return np.asarray(encode(self.engine, self._embedder(), texts, progress, spec=spec), dtype=np.float32)

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
            if all(c in docs for c in META):  # a new accepted answer or url changes no text: only the details
                meta = _meta(docs.set_index("key").loc[self.docs.key].reset_index())
                if self.meta is None or not meta.equals(self.meta):
                    self.meta = meta
                    self._save()
            return {"documents": len(self.docs), "added": 0, "removed": 0, "refit": False}
        if docs.empty:  # nothing to index: no embedder is made or fitted (LSA cannot fit on nothing)
            self.docs, self.tokens, self.meta = pd.DataFrame(columns=["key", "hash"]), Tokens(), None
            self.vectors = np.zeros((0, 0), dtype=np.float32)
            self._index_bm25([])
            self._save()
            return {"documents": 0, "added": 0, "removed": removed, "refit": False}
        keep = docs[plan["same"]]
        position = {k: i for i, k in enumerate(self.docs.key)} if len(self.docs) else {}
        kept_tokens = self.tokens.take([position[k] for k in keep.key])
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
        self.meta = _meta(order) if all(c in order for c in META) else None
        lists = kept_tokens + [list(t) for t in new_tokens]
        self.tokens = Tokens.of(lists)
        self.vectors = normalise(vectors).astype(np.float32)
        self._last_query = None  # a refit embedder encodes the query anew
        self._index_bm25(lists)
        self._save()
        return {"documents": len(self.docs), "added": len(fresh), "removed": removed, "refit": refit}

    # -- searching ---------------------------------------------------------------------------
    def bm25_ranking(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``mask``: the documents that may be returned (booleans in index order); None for all."""
        if not len(self.tokens):  # bm25s builds no vocabulary over no documents
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
        if len(candidates) > 4 * k:  # a full sort of a million scores costs more than the product itself
            vals = sims[candidates]
            kth = np.partition(vals, len(vals) - k)[len(vals) - k]
            candidates = candidates[vals >= kth]  # ties at the k-th score all stay: the stable sort decides
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
        keys = self._keys()
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
            key = keys[i]
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

    def _keys(self) -> np.ndarray:
        """The documents' keys as an array, made once per set of documents (not per query)."""
        held = getattr(self, "keys_", None)
        if held is None or held[0] is not self.docs:
            self.keys_ = held = (self.docs, self.docs.key.to_numpy(dtype=object))
        return held[1]

    def details(self, positions) -> pd.DataFrame | None:
        """Title, url and accepted answer's start of the documents at ``positions`` (None: an index
        saved without them, by an older version)."""
        if self.meta is None:
            return None
        return self.meta.take(pa.array(list(positions), pa.int64())).to_pandas()

    def _query_vector(self, query: str) -> np.ndarray:
        if self._last_query != query:  # one encoding per query, however many uses
            self._last_query, self._last_vector = query, np.asarray(self._embedder().encode([query]), dtype=np.float32)[0]
        return self._last_vector
