"""Themes: the topic hierarchy (Ward linkage over topics' L2-normalised c-TF-IDF vectors, as
BERTopic's hierarchical_topics builds it) cut into K groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.preprocessing import normalize


def cut_themes(
    ctfidf, topic_ids: list[int], words: np.ndarray, k: int, sizes: list[int] | None = None, top_n: int = 6
) -> tuple[dict[int, int], pd.DataFrame]:
    """Return {topic id: theme id} and a frame of themes (id, label, keywords, topics)."""
    X = normalize(ctfidf)
    if hasattr(X, "toarray"):
        X = X.toarray()
    k = max(1, min(k, len(topic_ids)))
    if len(topic_ids) == 1:
        groups = np.array([1])
    else:
        groups = fcluster(linkage(X, method="ward"), t=k, criterion="maxclust")
    # Number themes by size, largest first, so that ids are stable for the same input.
    size = dict(zip(topic_ids, sizes or [1] * len(topic_ids)))
    order = sorted(
        set(groups),
        key=lambda g: (
            -sum(size[t] for t, x in zip(topic_ids, groups) if x == g),
            min(t for t, x in zip(topic_ids, groups) if x == g),
        ),
    )
    remap = {g: i for i, g in enumerate(order)}
    mapping = {t: remap[g] for t, g in zip(topic_ids, groups)}
    rows = []
    for g in order:
        members = [t for t, x in zip(topic_ids, groups) if x == g]
        weights = np.asarray(X[[topic_ids.index(t) for t in members]].sum(axis=0)).ravel()
        top = [str(words[i]) for i in np.argsort(-weights)[:top_n] if weights[i] > 0]
        rows.append({"theme_id": remap[g], "label": ", ".join(top[:4]), "keywords": top, "topics": members})
    return mapping, pd.DataFrame(rows)
