"""A segment of the ask index: the documents added by one update (or all of them, after a merge),
in a folder of their own that no later save writes to again. A save hard-links the segments it
keeps into its new generation, so adding 1% of threads writes 1% of the index."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from devquarry.ask.bm25 import Postings
from devquarry.ask.tokens import Tokens


class Segment:
    """``docs`` (key, hash), their ``tokens``, ``vectors``, hit details ``meta`` (or None) and BM25 ``postings``."""

    def __init__(self, name: str, docs: pd.DataFrame, tokens: Tokens, vectors: np.ndarray, meta: pa.Table | None, postings=None):
        self.name, self.docs, self.tokens, self.vectors, self.meta = name, docs, tokens, vectors, meta
        self.postings = postings if postings is not None else Postings.of(tokens.column)
        self.folder: Path | None = None  # where it was read from, once saved

    def __len__(self) -> int:
        return len(self.docs)

    def write(self, folder: Path, step: Callable[[str], None]) -> None:
        """Into ``folder``; ``step(name)`` after each file (the kill test's hook)."""
        if self.folder is not None:  # saved before: the same files, linked
            link_tree(self.folder, folder)
            return
        folder.mkdir()
        self.docs.to_parquet(folder / "docs.parquet", index=False)
        step("docs.parquet")
        _write_arrow(pa.table({"tokens": self.tokens.column}), folder / "tokens.arrow")
        step("tokens.arrow")
        self.postings.save(folder / "bm25")
        step("bm25")
        np.save(folder / "vectors.npy", self.vectors)
        step("vectors.npy")
        if self.meta is not None:
            _write_arrow(self.meta, folder / "meta.arrow")
        step("meta.arrow")

    @classmethod
    def read(cls, folder: Path) -> Segment:
        docs = pd.read_parquet(folder / "docs.parquet")
        # Memory-mapped: opening an index for an update reads none of its tokens (a search reads ten rows).
        tokens = Tokens(_read_arrow(folder / "tokens.arrow").column("tokens").combine_chunks())
        # Memory-mapped too (saved files are never written again): an update that only adds a segment
        # reads none of them, a search reads them from the page cache without a copy.
        vectors = np.load(folder / "vectors.npy", allow_pickle=False, mmap_mode="r")
        meta = None
        if (folder / "meta.arrow").exists():
            meta = _read_arrow(folder / "meta.arrow")
        postings = Postings.load(folder / "bm25")
        if list(docs.columns) != ["key", "hash"] or vectors.ndim != 2:
            raise ValueError(f"{folder.name}: unexpected columns or vector shape")
        n = len(docs)
        if not n == len(tokens) == len(vectors) == len(postings) or meta is not None and len(meta) != n:
            raise ValueError(
                f"{folder.name}: {n} documents, {len(tokens)} token lists, {len(vectors)} vectors, "
                f"{len(postings)} BM25 documents, {len(meta) if meta is not None else n} details"
            )
        segment = cls(folder.name, docs, tokens, vectors, meta, postings)
        segment.folder = folder
        return segment


def _write_arrow(table: pa.Table, path: Path) -> None:
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def _read_arrow(path: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def link_file(source: Path, dest: Path) -> None:
    """A hard link (a copy where the file system has none): a saved file is never written again."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def link_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            link_file(path, dest)
