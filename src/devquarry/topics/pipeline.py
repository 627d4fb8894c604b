"""Clustering thread vectors into topics: the fast default (PCA + sized k-means, scikit-learn only)
and BERTopic's own UMAP + HDBSCAN (the ``[bertopic]`` extra)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from devquarry.topics.cluster import SizedKMeans, auto_n_topics
from devquarry.topics.ctfidf import TOP_N_WORDS, WORD_PATTERN  # noqa: F401 (re-exported for the benches)

CLUSTERINGS = ("kmeans", "hdbscan")
OUTLIER = -1


def kmeans_topics(
    vectors: np.ndarray, *, min_topic_size: int = 10, nr_topics: int | None = None, seed: int = 42, dims: int = 50
) -> np.ndarray:
    """PCA to 50 dimensions (fewer for a small corpus or a small embedding space), then k-means
    whose clusters below ``min_topic_size`` are folded into the nearest topic; about sqrt(n / 2.5)
    topics unless ``nr_topics``. Topic ids run from 0, largest first; no outliers. These are the
    steps BERTopic ran with the same components, on the same input and seed: the same labels."""
    n_docs = len(vectors)
    k = nr_topics or auto_n_topics(n_docs, min_topic_size)
    pca = PCA(n_components=max(1, min(dims, n_docs - 1, vectors.shape[1])), random_state=seed)
    reduced = np.nan_to_num(pca.fit_transform(vectors))
    return by_size(SizedKMeans(n_clusters=k, min_size=min_topic_size, random_state=seed).fit(reduced).labels_)


def by_size(labels) -> np.ndarray:
    """Topic ids by size, largest first, outliers kept at -1, numbered as BERTopic numbers them:
    pandas' default sort over the topics in order of first appearance. Its order among topics of
    equal size is not ours to choose, but keeping it keeps the ids runs had before."""
    labels = np.asarray(labels, dtype=int)
    sizes = pd.Series(Counter(labels.tolist()))
    ranked = [t for t in sizes.sort_values(ascending=False).index if t != OUTLIER]
    mapping = {OUTLIER: OUTLIER, **{int(t): i for i, t in enumerate(ranked)}}
    return np.array([mapping[t] for t in labels.tolist()], dtype=int)


def hdbscan_model(embedder, *, min_topic_size: int = 10, nr_topics: int | None = None, seed: int = 42):
    """BERTopic's own pipeline (UMAP, HDBSCAN), seeded, with our keyword settings."""
    from devquarry.extras import require

    bertopic = require("bertopic", "bertopic", "--clustering hdbscan")
    hdbscan = require("hdbscan", "bertopic", "--clustering hdbscan")
    umap = require("umap", "bertopic", "--clustering hdbscan")
    from devquarry.topics.bertopic_model import model_settings

    return bertopic.BERTopic(
        umap_model=umap.UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed),
        hdbscan_model=hdbscan.HDBSCAN(
            min_cluster_size=min_topic_size, metric="euclidean", cluster_selection_method="eom", prediction_data=True
        ),
        nr_topics=nr_topics,
        min_topic_size=min_topic_size,
        **model_settings(embedder, seed),
    )


def hdbscan_topics(
    docs: list[str],
    vectors: np.ndarray,
    embedder,
    *,
    min_topic_size: int = 10,
    nr_topics: int | None = None,
    seed: int = 42,
    reduce_outliers: bool = True,
):
    """UMAP + HDBSCAN through BERTopic, then (optionally) outliers moved to the most similar topic
    by embedding (cosine >= 0.3). Returns the fitted BERTopic model, the labels, and the outlier
    share before reduction."""
    import warnings

    model = hdbscan_model(embedder, min_topic_size=min_topic_size, nr_topics=nr_topics, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, _ = model.fit_transform(docs, vectors)
        outliers_before = float(np.mean(np.asarray(labels) == OUTLIER))
        if reduce_outliers and outliers_before > 0:
            labels = model.reduce_outliers(docs, labels, strategy="embeddings", embeddings=vectors, threshold=0.3)
            model.update_topics(
                docs,
                topics=labels,
                top_n_words=TOP_N_WORDS,
                vectorizer_model=model.vectorizer_model,
                ctfidf_model=model.ctfidf_model,
                representation_model=model.representation_model,
            )
    return model, np.asarray(labels, dtype=int), outliers_before
