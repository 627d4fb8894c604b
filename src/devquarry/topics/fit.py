"""``fit_topics``: threads from the store -> embeddings -> BERTopic -> topics, themes, quality,
all saved in the store under one run."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from devquarry.embeddings import embed_threads, get_embedder
from devquarry.errors import InputError
from devquarry.store import Store
from devquarry.text import thread_text
from devquarry.topics.persist import save_topic_run
from devquarry.topics.pipeline import CLUSTERINGS, TOP_N_WORDS, build_model
from devquarry.topics.quality import npmi_coherence, topic_diversity
from devquarry.topics.themes import cut_themes

OUTLIER = -1
# BERTopic warns that assigning topics by hand must come last; outlier reduction is last here.
logging.getLogger("BERTopic").setLevel(logging.ERROR)


@dataclass
class TopicResult:
    """What a topic run produced; every frame is also in the store under ``run_id``."""

    run_id: int
    topics: pd.DataFrame
    assignments: pd.DataFrame
    themes: pd.DataFrame
    quality: dict = field(default_factory=dict)
    model: object = None  # the fitted BERTopic, for notebook use


def fit_topics(
    store: Store,
    *,
    embedding: str | None = None,
    min_topic_size: int = 10,
    nr_topics: int | None = None,
    themes: int | None = None,
    seed: int = 42,
    clustering: str = "kmeans",
    sources: list[str] | None = None,
    reduce_outliers: bool = True,
    quality: bool = True,
    progress=None,
    stage=None,
) -> TopicResult:
    """Fit a topic model on the store's threads and save it as a new run. ``progress(n)`` hears of
    threads embedded; ``stage(description)`` of each later step (they have no count to show)."""
    stage = stage or (lambda description, total=None: None)
    started = datetime.now(timezone.utc)
    if clustering not in CLUSTERINGS:
        raise InputError(None, f"unknown clustering {clustering!r}; use one of {', '.join(CLUSTERINGS)}", field="clustering")
    if min_topic_size < 2:
        raise InputError(None, "--min-topic-size must be at least 2", field="min_topic_size")
    threads = store.threads()
    if sources:
        threads = threads[threads.source.isin(sources)]
    threads = threads.reset_index(drop=True)
    docs = [thread_text(t, b) for t, b in zip(threads["title"], threads["body_text"])]
    if len(docs) < max(2 * min_topic_size, 10):
        raise InputError(store.path, f"{len(docs)} threads are too few for topics with a minimum size of {min_topic_size}")
    stage("embedding", len(docs))
    embedder = get_embedder(embedding)
    vectors = embed_threads(store, embedder, threads, progress)
    stage("clustering")
    model = build_model(embedder, len(docs), clustering=clustering, min_topic_size=min_topic_size, nr_topics=nr_topics, seed=seed,
                        embedding_dim=vectors.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, _ = model.fit_transform(docs, vectors)
        outliers_before = float(np.mean(np.asarray(labels) == OUTLIER))
        if clustering == "hdbscan" and reduce_outliers and outliers_before > 0:
            labels = model.reduce_outliers(docs, labels, strategy="embeddings", embeddings=vectors, threshold=0.3)
            model.update_topics(docs, topics=labels, top_n_words=TOP_N_WORDS, vectorizer_model=model.vectorizer_model,
                                representation_model=model.representation_model)
    stage("keywords and themes")
    labels = np.asarray(labels)
    info = model.get_topic_info()
    topic_ids = [int(t) for t in info.Topic if t != OUTLIER]
    keywords = {t: [w for w, _ in model.get_topic(t)][:TOP_N_WORDS] for t in topic_ids}
    keybert = {t: [w for w, _ in model.get_topic(t, full=True).get("KeyBERT", [])][:TOP_N_WORDS] for t in topic_ids}
    theme_of: dict[int, int] = {}
    theme_frame = pd.DataFrame(columns=["theme_id", "label", "keywords", "topics"])
    if themes and topic_ids:
        offset = 1 if OUTLIER in set(info.Topic) else 0
        rows = [t + offset for t in topic_ids]
        theme_of, theme_frame = cut_themes(model.c_tf_idf_[rows], topic_ids, model.vectorizer_model.get_feature_names_out(), themes,
                                           sizes=[int(np.sum(labels == t)) for t in topic_ids])
    topic_frame = pd.DataFrame(
        {
            "topic_id": topic_ids,
            "label": [", ".join(keywords[t][:4]) for t in topic_ids],
            "keywords": [keywords[t] for t in topic_ids],
            "keybert": [keybert[t] for t in topic_ids],
            "size": [int(np.sum(labels == t)) for t in topic_ids],
            "theme_id": [theme_of.get(t) for t in topic_ids],
        }
    ).sort_values(["size", "topic_id"], ascending=[False, True], ignore_index=True)
    theme_frame["size"] = [int(topic_frame[topic_frame.topic_id.isin(m)]["size"].sum()) for m in theme_frame["topics"]]
    assignments = pd.DataFrame({"source": threads.source, "source_id": threads.source_id, "topic_id": labels.astype(int)})
    scores = {
        "n_docs": len(docs),
        "n_topics": len(topic_ids),
        "outlier_share_before_reduction": round(outliers_before, 4),
        "outlier_share": round(float(np.mean(labels == OUTLIER)), 4),
    }
    if quality and topic_ids:
        stage("coherence (NPMI)")
        words = [keywords[t] for t in topic_ids]
        scores["npmi"] = round(npmi_coherence(words, docs), 4)
        scores["diversity"] = round(topic_diversity(words), 4)
    params = {
        "embedding": f"{embedder.backend}:{embedder.model_id}",
        "clustering": clustering,
        "min_topic_size": min_topic_size,
        "nr_topics": nr_topics,
        "themes": themes,
        "seed": seed,
        "reduce_outliers": reduce_outliers,
        "sources": sources,
    }
    stage("saving")
    run_id = save_topic_run(store, params, scores, topic_frame, assignments, theme_frame, started)
    return TopicResult(run_id, topic_frame, assignments, theme_frame, scores, model)
