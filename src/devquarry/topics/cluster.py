"""A k-means that respects a minimum topic size (a scikit-learn estimator, so BERTopic could use it too)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans


def auto_n_topics(n_docs: int, min_topic_size: int) -> int:
    """About sqrt(n/2.5) topics (30 for 2,300 questions), never more than n / min size."""
    k = int(round(np.sqrt(n_docs / 2.5)))
    return int(max(2, min(k, 200, n_docs // max(min_topic_size, 1))))


class SizedKMeans(ClusterMixin, BaseEstimator):
    """K-means whose clusters smaller than ``min_size`` are folded into the nearest larger one.

    Every document gets a topic (no outliers). Labels are renumbered by size, largest first.
    """

    def __init__(self, n_clusters: int = 30, min_size: int = 10, random_state: int = 42, n_init: int = 3) -> None:
        self.n_clusters = n_clusters
        self.min_size = min_size
        self.random_state = random_state
        self.n_init = n_init

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        k = max(1, min(self.n_clusters, len(X)))
        km = KMeans(n_clusters=k, random_state=self.random_state, n_init=self.n_init).fit(X)
        labels = km.labels_.copy()
        centers = km.cluster_centers_
        sizes = np.bincount(labels, minlength=k)
        big = np.flatnonzero(sizes >= self.min_size)
        if big.size == 0:
            big = np.array([int(np.argmax(sizes))])
        small = np.setdiff1d(np.arange(k), big)
        if small.size:
            moved = np.isin(labels, small)
            d = ((X[moved, None, :] - centers[None, big, :]) ** 2).sum(axis=2)
            labels[moved] = big[np.argmin(d, axis=1)]
        order = [c for c, _ in sorted(((c, -np.sum(labels == c)) for c in big), key=lambda t: (t[1], t[0]))]
        remap = {c: i for i, c in enumerate(order)}
        self.labels_ = np.array([remap[c] for c in labels])
        self.cluster_centers_ = np.vstack([X[self.labels_ == i].mean(axis=0) for i in range(len(order))])
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        d = ((X[:, None, :] - self.cluster_centers_[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1)
