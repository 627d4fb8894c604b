"""BERTopic wired with devquarry's embeddings: the fast default and BERTopic's own default."""

from __future__ import annotations

import numpy as np
from bertopic import BERTopic
from bertopic.backend import BaseEmbedder
from bertopic.representation import KeyBERTInspired
from bertopic.vectorizers import ClassTfidfTransformer
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import CountVectorizer

from devquarry.embeddings.base import Embedder
from devquarry.topics.cluster import SizedKMeans, auto_n_topics

TOP_N_WORDS = 10
# Words start with a letter: numbers, hex escapes and version strings from logs make poor labels.
WORD_PATTERN = r"(?u)\b[^\W\d_]\w+\b"
CLUSTERINGS = ("kmeans", "hdbscan")


class BERTopicEmbedder(BaseEmbedder):
    """Lets BERTopic embed words and documents (for KeyBERT-like labels) with our backend."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder

    def embed(self, documents, verbose: bool = False) -> np.ndarray:
        return self.embedder.encode([str(d) for d in documents])


def build_model(
    embedder: Embedder,
    n_docs: int,
    *,
    clustering: str = "kmeans",
    min_topic_size: int = 10,
    nr_topics: int | None = None,
    seed: int = 42,
    dims: int = 50,
    embedding_dim: int | None = None,
) -> BERTopic:
    """The default (``kmeans``): PCA to 50 dimensions, k-means with a minimum topic size, BM25-
    weighted c-TF-IDF over English words without stop words, and KeyBERT-like keywords as a second
    aspect. ``hdbscan`` is BERTopic's own pipeline (UMAP, HDBSCAN), seeded. The choices were
    measured on the labelled Stack Overflow questions (bench/topics.py): MMR re-ranking raised
    diversity a little but cost more coherence than it gave."""
    common = dict(
        embedding_model=BERTopicEmbedder(embedder),
        vectorizer_model=CountVectorizer(stop_words="english", token_pattern=WORD_PATTERN),
        ctfidf_model=ClassTfidfTransformer(bm25_weighting=True),
        representation_model={"KeyBERT": KeyBERTInspired(top_n_words=TOP_N_WORDS, random_state=seed)},
        top_n_words=TOP_N_WORDS,
        min_topic_size=min_topic_size,
        calculate_probabilities=False,
        verbose=False,
    )
    if clustering == "kmeans":
        k = nr_topics or auto_n_topics(n_docs, min_topic_size)
        return BERTopic(
            # A small corpus (or a small LSA space) caps the dimensions PCA can keep.
            umap_model=PCA(n_components=max(1, min(dims, n_docs - 1, embedding_dim or dims)), random_state=seed),
            hdbscan_model=SizedKMeans(n_clusters=k, min_size=min_topic_size, random_state=seed),
            **common,
        )
    if clustering == "hdbscan":
        from hdbscan import HDBSCAN
        from umap import UMAP

        return BERTopic(
            umap_model=UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed),
            hdbscan_model=HDBSCAN(min_cluster_size=min_topic_size, metric="euclidean", cluster_selection_method="eom", prediction_data=True),
            nr_topics=nr_topics,
            **common,
        )
    raise ValueError(f"unknown clustering {clustering!r}; use one of {CLUSTERINGS}")
