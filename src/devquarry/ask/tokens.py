"""The BM25 side of the ask index: tokens (English stop words, Snowball stems), content words,
and the tokens of every document kept as one Arrow column."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import pyarrow as pa

# What a hit shows, kept with the index (memory-mapped) so that a query reads nothing from the store:
# at a million threads one lookup there scanned the table (80 ms).
META = ("title", "url", "answer")


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


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


def _meta(frame: pd.DataFrame) -> pa.Table:
    return pa.table({c: pa.array([None if pd.isna(v) else str(v) for v in frame[c]], pa.string()) for c in META})


class Tokens:
    """The documents' BM25 tokens as an Arrow list column (one chunk per segment): a reopened index of a million threads
    converts to Python lists only the few rows a search reads."""

    def __init__(self, column: pa.Array | pa.ChunkedArray | None = None) -> None:
        self.column = column if column is not None else pa.array([], type=pa.list_(pa.string()))

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, i: int) -> list[str]:
        return self.column[int(i)].as_py()

    def take(self, positions) -> pa.Array:
        """The token lists at ``positions`` as one array."""
        taken = self.column.take(pa.array(positions, pa.int64()))
        return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken
