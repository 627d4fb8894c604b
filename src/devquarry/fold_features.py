"""The supervised coder's TF-IDF features for cross-validation, with the text analysed once.

Fitting ``TfidfVectorizer`` in every fold splits every text into word and character n-grams five
times; that analysis is most of a fold's time. Here the texts are counted once over all n-grams
(no labels involved), and each fold then keeps the columns that ``TfidfVectorizer`` fitted on
that fold's training texts would keep (``min_df`` and ``max_features`` counted on the training
rows only) and takes its idf from them. The vocabulary is sorted in both, so the columns, and the
out-of-fold predictions, are those of fitting the vectorizer per fold (up to ties at the
``max_features`` cut, which sklearn leaves to its sort)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer


class FoldTfidf(TransformerMixin, BaseEstimator):
    """TF-IDF of the count columns that ``TfidfVectorizer(min_df, max_features, sublinear_tf=True)``
    would keep if fitted on the rows given to ``fit``."""

    def __init__(self, min_df: int = 1, max_features: int | None = None) -> None:
        self.min_df = min_df
        self.max_features = max_features

    def fit(self, X, y=None):
        X = sp.csr_matrix(X)
        document_frequency = np.bincount(X.indices, minlength=X.shape[1])
        keep = np.flatnonzero(document_frequency >= self.min_df)
        if self.max_features is not None and len(keep) > self.max_features:
            term_frequency = np.asarray(X[:, keep].sum(axis=0)).ravel()
            keep = np.sort(keep[np.argsort(-term_frequency, kind="stable")[: self.max_features]])
        self.keep_ = keep
        self.tfidf_ = TfidfTransformer(sublinear_tf=True).fit(X[:, keep])
        return self

    def transform(self, X):
        return self.tfidf_.transform(sp.csr_matrix(X)[:, self.keep_])


def counted(texts: list[str], word: dict, char: dict) -> tuple[sp.csr_matrix, ColumnTransformer]:
    """All n-gram counts of ``texts`` side by side, and the transformer that turns a fold's rows of
    them into the coder's features. ``word`` and ``char`` are the ``TfidfVectorizer`` settings."""
    blocks, parts, start = [], [], 0
    for name, settings in (("word", word), ("char", char)):
        settings = dict(settings)
        min_df, max_features = settings.pop("min_df", 1), settings.pop("max_features", None)
        settings.pop("sublinear_tf", None)
        counts = CountVectorizer(**settings).fit_transform(texts)
        blocks.append(counts)
        parts.append((name, FoldTfidf(min_df, max_features), np.arange(start, start + counts.shape[1])))
        start += counts.shape[1]
    return sp.hstack(blocks, format="csr"), ColumnTransformer(parts, sparse_threshold=1.0)
