"""BM25 over an index made of segments, so that new documents are appended, not re-indexed.

bm25s (which tokenizes for us) stores each (term, document) pair's final score, which depends on
every document's statistics: one new thread changed them all, and its index could only be built
again whole (a third of a full build at a million threads, for 1% more). Here each segment keeps
its term frequencies and document lengths, as postings lists memory-mapped from disk, and a query
computes the scores of its few terms from the statistics of the live documents of all segments
together. The formula is bm25s's default (Lucene's: k1 1.5, b 0.75, idf ln(1 + (N - df + 0.5) /
(df + 0.5))), so the scores are those of one bm25s index built anew over the live documents;
documents replaced or removed are masked, and count in no statistic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

K1, B = 1.5, 0.75
ARRAYS = ("indptr", "docs", "tf", "lengths")


class Postings:
    """One segment's postings: for term ``t`` (row ``vocab[t]``), the documents ``docs[indptr[r]:indptr[r + 1]]``
    (positions in the segment) with their counts ``tf``; ``lengths``: each document's number of tokens."""

    def __init__(self, terms: pa.Array, indptr: np.ndarray, docs: np.ndarray, tf: np.ndarray, lengths: np.ndarray) -> None:
        self.terms, self.indptr, self.docs, self.tf, self.lengths = terms, indptr, docs, tf, lengths
        self._vocab: dict[str, int] | None = None

    @classmethod
    def of(cls, column: pa.Array) -> Postings:
        """From the documents' token lists (an Arrow list<string> column), without a Python loop over them."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.string()))
        n = len(column)
        lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
        flat = column.flatten()
        if not len(flat):
            empty = np.zeros(0, np.int32)
            return cls(pa.array([], pa.string()), np.zeros(1, np.int64), empty, empty.astype(np.float32), lengths)
        encoded = pc.dictionary_encode(flat)
        term = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        doc = np.repeat(np.arange(n, dtype=np.int64), lengths)
        pairs, tf = np.unique(term * n + doc, return_counts=True)  # sorted by term, then document
        rows = pairs // n
        indptr = np.zeros(len(encoded.dictionary) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(encoded.dictionary)), out=indptr[1:])
        return cls(encoded.dictionary, indptr, (pairs - rows * n).astype(np.int32), tf.astype(np.float32), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def vocab(self) -> dict[str, int]:
        if self._vocab is None:  # made on the first query, not when the index opens for an update
            self._vocab = {t: i for i, t in enumerate(self.terms.to_pylist())}
        return self._vocab

    def save(self, folder: Path) -> None:
        folder.mkdir()
        for name in ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        with pa.ipc.new_file(str(folder / "terms.arrow"), pa.schema([("term", pa.string())])) as writer:
            writer.write_table(pa.table({"term": self.terms}))

    @classmethod
    def load(cls, folder: Path) -> Postings:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
        terms = pa.ipc.open_file(pa.memory_map(str(folder / "terms.arrow"))).read_all().column("term").combine_chunks()
        indptr = arrays["indptr"]
        if len(indptr) != len(terms) + 1 or not len(arrays["docs"]) == len(arrays["tf"]) == indptr[-1]:
            raise ValueError(f"the postings in {folder} do not hold together")
        return cls(terms, **arrays)

    def files(self) -> list[str]:
        return [*(f"{n}.npy" for n in ARRAYS), "terms.arrow"]


class Bm25:
    """The segments' postings as one index over their concatenated positions; ``live``: which
    positions count (None: all)."""

    def __init__(self, parts: list[Postings], live: np.ndarray | None = None) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0, *(len(p) for p in parts)])
        self.size = int(self.offsets[-1])
        self.live = live
        lengths = np.concatenate([np.asarray(p.lengths) for p in parts]) if parts else np.zeros(0, np.int32)
        self.lengths = lengths.astype(np.float32)
        counted = lengths if live is None else lengths[live]
        self.num_docs = len(counted)
        self.avgdl = float(counted.mean()) if len(counted) else 0.0

    def __contains__(self, term: str) -> bool:
        return any(term in p.vocab for p in self.parts)

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        docs, tfs = [], []
        for part, offset in zip(self.parts, self.offsets):
            row = part.vocab.get(term)
            if row is not None:
                a, b = part.indptr[row], part.indptr[row + 1]
                docs.append(np.asarray(part.docs[a:b], np.int64) + offset)
                tfs.append(np.asarray(part.tf[a:b]))
        if not docs:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        doc, tf = np.concatenate(docs), np.concatenate(tfs)
        if self.live is not None:
            keep = self.live[doc]
            doc, tf = doc[keep], tf[keep]
        return doc, tf

    def scores(self, terms: list[str]) -> np.ndarray:
        """Each position's BM25 score for the query ``terms`` (a repeated term counts each time, as in bm25s)."""
        out = np.zeros(self.size, np.float32)
        for term in terms:
            doc, tf = self._postings(term)
            if not len(doc):
                continue
            idf = np.log(1 + (self.num_docs - len(doc) + 0.5) / (len(doc) + 0.5))
            norm = K1 * ((1 - B) + B * self.lengths[doc] / self.avgdl)
            out[doc] += (idf * tf / (norm + tf)).astype(np.float32)  # a term's documents are distinct
        return out

    def top(self, terms: list[str], k: int, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best positions with a score above zero, best first (ties: the earlier position)."""
        scores = self.scores(terms)
        if weights is not None:
            scores *= weights
        hit = np.flatnonzero(scores > 0)
        if len(hit) > k:
            vals = scores[hit]
            kth = np.partition(vals, len(vals) - k)[len(vals) - k]
            hit = hit[vals >= kth]
        order = np.lexsort((hit, -scores[hit]))[:k]
        return hit[order], scores[hit[order]]
