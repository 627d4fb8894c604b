"""A persisted hybrid index over threads: BM25 (English stop words, Snowball stems; scored by
``ask.bm25``) and dense vectors from one of our embeddings, fused by a convex combination of the
two scores (default; it beat reciprocal rank fusion on both tasks of bench/ask.py) or by
reciprocal rank.

The index lives in a folder beside the store (``STORE.index/NAME``) as segments (``ask.segments``):
each holds the keys and content hashes of some documents, their BM25 tokens and postings, their
vectors and hit details. ``update`` tokenizes and embeds only the documents that are new or changed:
they become a new segment, and the positions of the versions they replace (or of threads gone)
are marked dead. When segments and dead positions pass a quarter of the index, or LSA is fitted
again as the corpus grows, the segments are merged into one (the kept documents' tokens and vectors
are reused, not computed again). Nothing is rebuilt per query.

A reopened index needs the embedder again to encode queries: LSA's is fitted on the corpus, so it
is persisted with the index; any other (MiniLM, static, an endpoint) depends on its name alone and
is made again from it when first needed, once per process (loading MiniLM takes seconds).

Saving and opening: ``ask.persist``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from devquarry.ask.bm25 import Bm25
from devquarry.ask.persist import KILL_AT_ENV, SAVE_STEPS, SavedIndex, fitted_backend
from devquarry.ask.segments import Segment
from devquarry.ask.tokens import META, Tokens, _meta, content_words, tokenize
from devquarry.embeddings import get_embedder
from devquarry.embeddings.base import normalise

RRF_K = 60
CANDIDATES = 100
LSA_REFIT_GROWTH = 0.5  # refit LSA when the corpus grew by half since it was fitted
MERGE_SHARE = 0.25  # merge the segments when those after the first and the dead positions pass this share
MAX_SEGMENTS = 16
__all__ = ["KILL_AT_ENV", "SAVE_STEPS", "HybridIndex", "fitted_backend", "named_embedder"]


@lru_cache(maxsize=4)
def named_embedder(embedding: str):
    return get_embedder(embedding)


class HybridIndex(SavedIndex):
    """Build with ``update(docs)`` where ``docs`` has ``key``, ``hash`` and ``text`` columns (or
    ``key`` and ``hash`` with a ``texts`` callable that gives the texts of the keys it is asked)."""

    def __init__(self, folder: str | Path, embedding: str = "lsa", engine=None) -> None:
        self.folder = Path(folder)
        self.embedding = embedding
        self.engine = engine  # where documents are encoded (devquarry.engine; default local); queries stay here
        self.segments: list[Segment] = []
        self.live: np.ndarray | None = None  # positions that count (None: all of them)
        self.embedder = None
        self.embedder_file: Path | None = None  # the saved fitted embedder, linked by a save that keeps it
        self.fitted_on = 0
        self._assemble()
        self._load()

    @property
    def size(self) -> int:
        """The number of documents (positions of replaced or removed versions not counted)."""
        return len(self.docs) if self.live is None else int(self.live.sum())

    def _assemble(self) -> None:
        """The segments as one index over their concatenated positions. Their tokens and vectors are
        not copied into one array: at a million threads that copy (800 MB) took seconds of every
        update and of every process's first ask."""
        segs = self.segments
        self.docs = pd.concat([s.docs for s in segs], ignore_index=True) if segs else pd.DataFrame(columns=["key", "hash"])
        self.tokens = Tokens(pa.chunked_array([s.tokens.column for s in segs])) if segs else Tokens()
        self._starts = np.cumsum([0, *(len(s) for s in segs)])
        self._vectors = None
        metas = [s.meta for s in segs]
        self.meta = pa.concat_tables(metas) if segs and all(m is not None for m in metas) else None
        self.bm25 = Bm25([s.postings for s in segs], self.live)
        self._last_query = self._last_vector = None
        self._plan = None

    @property
    def vectors(self) -> np.ndarray:
        """Every position's vector as one array (a copy, made on first use; searching does not need it)."""
        if self._vectors is None:
            segs = self.segments
            self._vectors = np.vstack([s.vectors for s in segs]) if segs else np.zeros((0, 0), np.float32)
        return self._vectors

    def _rows(self, positions) -> np.ndarray:
        """The vectors at ``positions``, gathered from the segments."""
        positions = np.asarray(positions, dtype=np.int64)
        if len(self.segments) == 1:
            return self.segments[0].vectors[positions]
        seg = np.searchsorted(self._starts, positions, side="right") - 1
        out = np.empty((len(positions), self.dimension), np.float32)
        for i in np.unique(seg):
            at = seg == i
            out[at] = self.segments[i].vectors[positions[at] - self._starts[i]]
        return out

    def _cosines(self, q: np.ndarray) -> np.ndarray:
        """Every position's vector times ``q`` (the vectors are unit length), segment by segment."""
        return np.concatenate([s.vectors @ q for s in self.segments])

    @property
    def dimension(self) -> int:
        return next((s.vectors.shape[1] for s in self.segments if len(s)), 0)

    # -- building ----------------------------------------------------------------------------
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
            self.embedder_file = None
            self.fitted_on = len(texts)
        from devquarry.engine import encode

        # A named embedder is built by each worker; a fitted one (LSA) is sent as fitted here.
        spec = None if fitted_backend(self.embedding) else self.embedding
        return np.asarray(encode(self.engine, self._embedder(), texts, progress, spec=spec), dtype=np.float32)

    def _live_positions(self) -> np.ndarray:
        return np.arange(len(self.docs)) if self.live is None else np.flatnonzero(self.live)

    def plan(self, docs: pd.DataFrame) -> dict:
        """What ``update(docs)`` would do: the documents it would embed (``to_embed``), add and remove.
        Made once for a given frame: ``update`` after a progress bar's ``plan`` reuses it."""
        if self._plan is not None and self._plan[0] is docs:
            return self._plan[1]
        given = docs
        docs = docs.drop_duplicates("key").reset_index(drop=True)
        held = self._live_positions()
        held_keys = self.docs.key.to_numpy(dtype=object)[held]
        # Object arrays: pandas' Arrow strings went element by element through Python here (2 s at a million).
        found = pd.Index(held_keys).get_indexer(docs.key.to_numpy(dtype=object)) if len(held) else np.full(len(docs), -1)
        has = found >= 0
        old = np.where(has, held[np.maximum(found, 0)] if len(held) else -1, -1).astype(np.int64)
        same = has.copy()
        if has.any():
            same[has] = docs.hash.to_numpy(dtype=object)[has] == self.docs.hash.to_numpy(dtype=object)[old[has]]
        if same.any() and self.meta is not None and all(c in docs for c in META):
            # Details given with the texts (not folded into the hash): a new accepted answer is a change too.
            stored = self.meta.take(pa.array(old[same])).to_pandas()
            given_meta = _meta(docs[same]).to_pandas()
            differ = ~((stored == given_meta) | (stored.isna() & given_meta.isna())).all(axis=1).to_numpy()
            same[np.flatnonzero(same)[differ]] = False
        gone = np.setdiff1d(held, old[same], assume_unique=True)  # removed or replaced
        removed = len(held) - int(has.sum())
        growth = len(docs) / max(self.fitted_on, 1) - 1
        refit = fitted_backend(self.embedding) and len(docs) > 0 and (self.embedder is None or growth > LSA_REFIT_GROWTH)
        fresh = docs[~same]
        plan = {
            "docs": docs,
            "same": same,
            "kept": old[same],
            "gone": gone,
            "fresh": fresh,
            "removed": removed,
            "refit": refit,
            "to_embed": len(docs) if refit else len(fresh),
        }
        self._plan = (given, plan)
        return plan

    def update(
        self,
        docs: pd.DataFrame,
        progress: Callable[[int], None] | None = None,
        texts: Callable[[list[str]], pd.DataFrame] | None = None,
    ) -> dict:
        """Bring the index in line with ``docs`` (key, hash and text, or key and hash with ``texts``:
        keys -> a frame of key, text and optionally title, url and answer, read only for the
        documents to embed); return what changed. ``progress`` is called with the number of
        documents embedded since its last call."""
        plan = self.plan(docs)
        docs, fresh, removed, refit, kept = plan["docs"], plan["fresh"], plan["removed"], plan["refit"], plan["kept"]
        if fresh.empty and not len(plan["gone"]) and not refit and self.size:
            return {"documents": self.size, "added": 0, "removed": 0, "refit": False}
        if docs.empty:  # nothing to index: no embedder is made or fitted (LSA cannot fit on nothing)
            self.segments, self.live, self.embedder, self.embedder_file = [], None, None, None
            self._assemble()
            self._save()
            return {"documents": 0, "added": 0, "removed": removed, "refit": False}
        if texts is None:
            given = docs.set_index("key")
            texts = lambda keys: given.loc[keys].reset_index()  # noqa: E731
        dead = (len(self.docs) - self.size) + len(plan["gone"])
        after = len(self.docs) + len(fresh)
        later = after - (len(self.segments[0]) if self.segments else 0)
        merge = refit or not self.segments or dead + later > MERGE_SHARE * after or len(self.segments) >= MAX_SEGMENTS
        wanted = docs.key.tolist() if refit else fresh.key.tolist()
        frame = _text_frame(texts(wanted), wanted)
        if refit:
            self.embedder = None
            vectors = self._encode(frame.text.tolist(), progress)
            by_key = pd.Index(wanted)
            kept_vectors = vectors[by_key.get_indexer(self.docs.key.to_numpy()[kept])] if len(kept) else vectors[:0]
            new_vectors = vectors[by_key.get_indexer(fresh.key)]
        else:
            kept_vectors = self._rows(kept) if merge and len(kept) else None  # a new segment leaves them where they are
            new_vectors = self._encode(frame.text.tolist(), progress) if len(fresh) else None
        new_frame = frame.set_index("key").loc[fresh.key].reset_index() if refit else frame
        new_tokens = pa.array([list(t) for t in tokenize(new_frame.text.tolist())], pa.list_(pa.string()))
        new_meta = _meta(new_frame) if all(c in new_frame for c in META) else None
        new_docs = fresh[["key", "hash"]].reset_index(drop=True)
        if merge:
            meta = None
            if (not len(kept) or self.meta is not None) and (fresh.empty or new_meta is not None):
                parts = [self.meta.take(pa.array(kept, pa.int64()))] if len(kept) else []
                meta = pa.concat_tables([*parts, *([new_meta] if len(fresh) else [])])
            vectors = [v for v in (kept_vectors, new_vectors) if v is not None]
            segment = Segment(
                self._next_name(),
                pd.concat([self.docs.iloc[kept], new_docs], ignore_index=True)[["key", "hash"]],
                Tokens(pa.concat_arrays([self.tokens.take(kept), new_tokens])),
                normalise(np.vstack(vectors)),
                meta,
            )
            self.segments, self.live = [segment], None
        else:
            live = np.ones(len(self.docs), bool) if self.live is None else self.live.copy()
            live[plan["gone"]] = False
            if len(fresh):
                self.segments = [
                    *self.segments,
                    Segment(self._next_name(), new_docs, Tokens(new_tokens), normalise(new_vectors), new_meta),
                ]
                live = np.concatenate([live, np.ones(len(fresh), bool)])
            self.live = None if live.all() else live
        self._assemble()
        self._save()
        return {"documents": self.size, "added": len(fresh), "removed": removed, "refit": refit, "merged": merge}

    def _next_name(self) -> str:
        last = max((int(s.name.split("-")[1]) for s in self.segments), default=0)
        return f"seg-{last + 1:06d}"

    # -- searching ---------------------------------------------------------------------------
    def bm25_ranking(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``mask``: the documents that may be returned (booleans in index order); None for all."""
        q = [t for t in tokenize([query])[0] if t in self.bm25]
        if not q:
            return np.zeros(0, int), np.zeros(0)
        return self.bm25.top(q, k, self._mask(mask))

    def dense_ranking(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if not self.size:
            return np.zeros(0, int), np.zeros(0)
        sims = self._cosines(self._query_vector(query))
        mask = self._mask(mask)
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
            cos = self._rows(union) @ self._query_vector(query)
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
        df["cosine"] = self._rows(df.position.to_numpy()) @ self._query_vector(query)
        q = content_words(query)
        df["overlap"] = [len(q & set(self.tokens[i])) / len(q) if q else 0.0 for i in df.position]
        return df

    def _mask(self, mask: np.ndarray | None) -> np.ndarray | None:
        """``mask`` less the dead positions (None: every position may be returned)."""
        if self.live is None:
            return mask
        return self.live if mask is None else mask & self.live

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


def _text_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The texts of ``keys``, in their order (a key with no text is an error, not a silent gap)."""
    frame = frame.drop_duplicates("key").set_index("key")
    missing = pd.Index(keys).difference(frame.index)
    if len(missing):
        raise KeyError(f"no text for {len(missing)} documents to index, such as {missing[0]!r}")
    return frame.loc[keys].reset_index()
