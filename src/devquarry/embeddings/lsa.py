"""Latent semantic analysis: TF-IDF then truncated SVD, fitted on the texts it embeds. No weights."""

from __future__ import annotations

import numpy as np

from devquarry.embeddings.base import Embedder, normalise, register


class LSAEmbedder(Embedder):
    backend = "lsa"
    cacheable = False  # the vectors depend on the whole corpus they are fitted on

    def __init__(self, dims: int = 256, seed: int = 42) -> None:
        self.dims = dims
        self.seed = seed
        self.pipeline_ = None

    @property
    def model_id(self) -> str:
        return f"tfidf-svd-{self.dims}"

    def fit(self, texts) -> LSAEmbedder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        texts = list(texts)
        # Rare- and common-word cuts are made for corpora; a handful of texts (the few resolved
        # threads of a small store) may have no word left after them, and then keeps every word.
        # Each TF-IDF is fitted once and its matrix handed to the SVD: what fitting the pipeline
        # would compute, without reading a million texts three times.
        matrix = None
        tfidf = TfidfVectorizer(stop_words="english", min_df=2, max_df=0.5, sublinear_tf=True)
        try:
            matrix = tfidf.fit_transform(texts)
        except ValueError:
            pass
        if matrix is None or matrix.shape[1] < 3:
            tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True)
            try:
                matrix = tfidf.fit_transform(texts)
            except ValueError:  # nothing but stop words and single letters: their characters
                tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
                matrix = tfidf.fit_transform(texts)
        tfidf.stop_words_ = None  # every word cut as rare or common: for introspection only, and most of the pickle
        k = min(self.dims, matrix.shape[1] - 1, len(texts) - 1)
        # Too few words or texts for an SVD of two dimensions: the TF-IDF vectors themselves.
        reduce = (
            TruncatedSVD(n_components=k, random_state=self.seed) if k >= 2 else FunctionTransformer(_dense, accept_sparse=True)
        )
        self.pipeline_ = make_pipeline(tfidf, reduce.fit(matrix))
        return self

    def encode(self, texts, progress=None) -> np.ndarray:
        texts = list(texts)
        if self.pipeline_ is None:
            self.fit(texts)
        vectors = self._few(texts) if len(texts) <= FEW else self.pipeline_.transform(texts)
        if progress:
            progress(len(texts))
        return normalise(vectors)

    def _few(self, texts: list[str]) -> np.ndarray:
        """What ``pipeline_.transform`` gives, for a few texts (a query) in a millisecond: the SVD's
        product copies its components (256 x the vocabulary) to another layout on every call, 47 ms
        a query at a million threads. Each row is summed in the order scipy sums it: the same bits."""
        tfidf, reduce = self.pipeline_.steps[0][1], self.pipeline_.steps[-1][1]
        if not hasattr(reduce, "components_"):
            return self.pipeline_.transform(texts)
        rows = tfidf.transform(texts).tocsr()
        components = reduce.components_
        out = np.zeros((rows.shape[0], components.shape[0]), dtype=np.result_type(rows.dtype, components.dtype))
        for i in range(rows.shape[0]):
            for k in range(rows.indptr[i], rows.indptr[i + 1]):
                out[i] += rows.data[k] * components[:, rows.indices[k]]
        return out


# Up to this many texts are projected term by term (``_few``); more go through the pipeline.
FEW = 8


def _dense(matrix):
    return matrix.toarray()


@register("lsa")
def _factory(model: str | None) -> Embedder:
    return LSAEmbedder(dims=int(model) if model else 256)
