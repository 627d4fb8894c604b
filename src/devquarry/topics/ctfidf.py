"""Class-based TF-IDF keywords, as BERTopic computes them, with scikit-learn and scipy only.

Each topic's documents are joined into one; word counts per topic are L1-normalised and weighted
by a BM25-style idf over topics, ``log(1 + (A - f + 0.5) / (f + 0.5))``, where ``f`` is a word's
count over all topics and ``A`` the mean number of words per topic. The matrix and the vocabulary
are those BERTopic's ``ClassTfidfTransformer(bm25_weighting=True)`` gives; words of equal weight
are ranked alphabetically (BERTopic leaves their order to the CPU's sort), so the keywords are the
same on every machine, with or without the ``[bertopic]`` extra."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

TOP_N_WORDS = 10
# Words start with a letter: numbers, hex escapes and version strings from logs make poor labels.
WORD_PATTERN = r"(?u)\b[^\W\d_]\w+\b"


def vectorizer() -> CountVectorizer:
    return CountVectorizer(stop_words="english", token_pattern=WORD_PATTERN)


def _clean(text: str) -> str:
    # BERTopic's preprocessing when it is given an embedding model: line breaks and tabs to spaces
    # (its ASCII-only filter applies only without one), so identifiers like curl_setopt survive.
    return text.replace("\n", " ").replace("\t", " ") or "emptydoc"


@dataclass
class ClassTfidf:
    """Rows are ``classes`` (topic ids, ascending, the outlier class -1 included when present)."""

    matrix: sp.csr_matrix
    words: np.ndarray
    classes: list[int]

    def rows(self, topic_ids: list[int]) -> sp.csr_matrix:
        index = {c: i for i, c in enumerate(self.classes)}
        return self.matrix[[index[t] for t in topic_ids]]

    def top_words(self, n: int = TOP_N_WORDS) -> dict[int, list[str]]:
        """The ``n`` highest-weighted words of each class (fewer when a topic has fewer words with a
        positive weight); equal weights in alphabetical order."""
        m = self.matrix
        out = {}
        for row, label in enumerate(self.classes):
            data, cols = m.data[m.indptr[row] : m.indptr[row + 1]], m.indices[m.indptr[row] : m.indptr[row + 1]]
            # The vocabulary is sorted, so the column breaks ties: numpy's argsort orders equal
            # values differently on CPUs with and without AVX-512, and keywords must not depend on that.
            order = np.lexsort((cols, -data))[:n]
            out[label] = [str(self.words[cols[i]]) for i in order if data[i] > 0]
        return out


def class_tfidf(docs: list[str], labels, vectorizer_model: CountVectorizer | None = None) -> ClassTfidf:
    """c-TF-IDF of the topics ``labels`` assigns to ``docs``."""
    labels = np.asarray(labels)
    classes = sorted(int(c) for c in set(labels.tolist()))
    joined = [_clean(" ".join(d for d, lab in zip(docs, labels) if lab == c)) for c in classes]
    vec = vectorizer_model or vectorizer()
    counts = vec.fit_transform(joined)
    frequency = np.asarray(counts.sum(axis=0)).ravel()
    mean_words = int(counts.sum(axis=1).mean())
    idf = np.log(1 + (mean_words - frequency + 0.5) / (frequency + 0.5))
    matrix = normalize(counts, axis=1, norm="l1", copy=False) @ sp.diags(idf, offsets=0, format="csr", dtype=np.float64)
    return ClassTfidf(sp.csr_matrix(matrix), vec.get_feature_names_out(), classes)
