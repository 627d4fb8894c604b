"""``fit_topics``: threads from the store -> embeddings -> clusters -> c-TF-IDF keywords, themes,
quality, all saved in the store under one run (and, with the ``[bertopic]`` extra, a BERTopic
model of the run beside the store)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from devquarry.embeddings import embed_threads, get_embedder
from devquarry.errors import InputError
from devquarry.extras import available, require
from devquarry.reuse import threads_fingerprint
from devquarry.store import TEXT_COLUMNS, Store
from devquarry.text import thread_text
from devquarry.topics.ctfidf import TOP_N_WORDS, class_tfidf
from devquarry.topics.persist import save_topic_run
from devquarry.topics.pipeline import CLUSTERINGS, OUTLIER, hdbscan_topics, kmeans_topics
from devquarry.topics.quality import npmi_coherence, topic_diversity
from devquarry.topics.themes import cut_themes

# BERTopic warns that assigning topics by hand must come last; here it is last.
logging.getLogger("BERTopic").setLevel(logging.ERROR)


# NPMI is measured over at most this many threads (all of them below it, as in the papers).
QUALITY_DOCS = 20_000
# Above this many threads the model is fitted on a seeded sample of this size and the other threads
# go to the nearest topic centroid, chunk by chunk: at 100,000 threads a full fit took 3.4 GB, and
# its memory would grow with the store while the topics a sample finds do not change much.
FIT_DOCS = 50_000
ASSIGN_CHUNK = 20_000


@dataclass
class TopicResult:
    """What a topic run produced; every frame is also in the store under ``run_id``."""

    run_id: int
    topics: pd.DataFrame
    assignments: pd.DataFrame
    themes: pd.DataFrame
    quality: dict = field(default_factory=dict)
    model: object = None  # the fitted BERTopic (with the [bertopic] extra), for notebook use


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
    fit_sample: int | None = FIT_DOCS,
    bertopic_model: bool | None = None,
    progress=None,
    stage=None,
    engine=None,
) -> TopicResult:
    """Fit a topic model on the store's threads and save it as a new run. ``progress(n)`` hears of
    threads embedded; ``stage(description)`` of each later step (they have no count to show).

    The default (``kmeans``) needs only scikit-learn. ``bertopic_model`` (None: when the
    ``[bertopic]`` extra is installed) also fits a BERTopic model on the run's topics, saves it in
    ``<store>.topics/run-<id>/`` (``BERTopic.load`` reads it; the path is in the run's params) and
    fills the KeyBERT-like ``keybert`` keywords, which stay empty without it. ``engine``
    (``devquarry.engine``; default local): where the threads are embedded.

    ``fit_sample``: a store with more threads is modelled on a seeded sample of this many (the
    clusters, keywords, themes, coherence and BERTopic model come from it) and every other thread is
    given the topic of the nearest centroid, as ``topics --assign-new`` does; sizes count them all.
    None or 0: fit on every thread."""
    stage = stage or (lambda description, total=None: None)
    started = datetime.now(UTC)
    if clustering not in CLUSTERINGS:
        raise InputError(None, f"unknown clustering {clustering!r}; use one of {', '.join(CLUSTERINGS)}", field="clustering")
    if min_topic_size < 2:
        raise InputError(None, "--min-topic-size must be at least 2", field="min_topic_size")
    threads = store.threads(columns=TEXT_COLUMNS)
    if sources:
        threads = threads[threads.source.isin(sources)]
    threads = threads.reset_index(drop=True)
    if len(threads) < max(2 * min_topic_size, 10):
        raise InputError(store.path, f"{len(threads)} threads are too few for topics with a minimum size of {min_topic_size}")
    if fit_sample and fit_sample < max(2 * min_topic_size, 10):
        raise InputError(
            None, f"--fit-sample {fit_sample} is too small for topics with a minimum size of {min_topic_size}", field="fit_sample"
        )
    picked = None
    if fit_sample and len(threads) > fit_sample:
        picked = np.sort(np.random.default_rng(seed).choice(len(threads), fit_sample, replace=False))
    fitted = threads if picked is None else threads.iloc[picked].reset_index(drop=True)
    docs = [thread_text(t, b) for t, b in zip(fitted["title"], fitted["body_text"])]
    # A missing extra is reported before minutes of embedding, not after.
    if clustering == "hdbscan":
        for module in ("bertopic", "umap", "hdbscan"):
            require(module, "bertopic", "--clustering hdbscan")
    if bertopic_model is None:
        bertopic_model = available("bertopic")
    elif bertopic_model:
        require("bertopic", "bertopic", "the BERTopic model of a topic run (--bertopic-model)")
    stage("embedding", len(threads))
    embedder = get_embedder(embedding)
    vectors = embed_threads(store, embedder, fitted, progress, engine=engine)
    stage("clustering")
    model = None
    if clustering == "hdbscan":
        model, labels, outliers_before = hdbscan_topics(
            docs,
            vectors,
            embedder,
            min_topic_size=min_topic_size,
            nr_topics=nr_topics,
            seed=seed,
            reduce_outliers=reduce_outliers,
        )
    else:
        labels = kmeans_topics(vectors, min_topic_size=min_topic_size, nr_topics=nr_topics, seed=seed)
        outliers_before = 0.0
    fit_labels = labels
    if picked is not None:
        stage("assigning the threads outside the sample")
        labels = _assign_rest(store, embedder, threads, picked, vectors, fit_labels, progress, engine)
    inputs = threads_fingerprint(threads)
    # Later stages read the sample's texts only: the store's (gigabytes at a million threads) go now.
    threads = threads[["source", "source_id"]]
    stage("keywords and themes")
    ctfidf = class_tfidf(docs, fit_labels)
    topic_ids = [t for t in ctfidf.classes if t != OUTLIER]
    keywords = ctfidf.top_words(TOP_N_WORDS)
    keybert: dict[int, list[str]] = {t: [] for t in topic_ids}
    if bertopic_model:
        from devquarry.topics.bertopic_model import fit_manual, keybert_words

        stage("BERTopic model")
        if model is None:
            model = fit_manual(docs, vectors, fit_labels, embedder, seed=seed)
        keybert = keybert_words(model, topic_ids)
    theme_of: dict[int, int] = {}
    theme_frame = pd.DataFrame(columns=["theme_id", "label", "keywords", "topics"])
    if themes and topic_ids:
        theme_of, theme_frame = cut_themes(
            ctfidf.rows(topic_ids), topic_ids, ctfidf.words, themes, sizes=[int(np.sum(labels == t)) for t in topic_ids]
        )
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
        "n_docs": len(threads),
        "n_topics": len(topic_ids),
        "outlier_share_before_reduction": round(outliers_before, 4),
        "outlier_share": round(float(np.mean(labels == OUTLIER)), 4),
    }
    if picked is not None:
        scores.update(fit_docs=len(fitted), assigned_to_centroid=len(threads) - len(fitted))
    if quality and topic_ids:
        stage("coherence (NPMI)")
        words = [keywords[t] for t in topic_ids]
        reference = docs
        if len(docs) > QUALITY_DOCS:  # a seeded sample: the full pass grew to minutes and gigabytes at 100,000 threads
            picked = np.sort(np.random.default_rng(seed).choice(len(docs), QUALITY_DOCS, replace=False))
            reference = [docs[i] for i in picked]
            scores["npmi_reference_docs"] = QUALITY_DOCS
        scores["npmi"] = round(npmi_coherence(words, reference), 4)
        scores["diversity"] = round(topic_diversity(words), 4)
    params = {
        "embedding": f"{embedder.backend}:{embedder.model_id}",
        "clustering": clustering,
        "min_topic_size": min_topic_size,
        "nr_topics": nr_topics,
        "themes": themes,
        "seed": seed,
        "reduce_outliers": reduce_outliers,
        "fit_sample": fit_sample or None,
        "sources": sources,
        "inputs": inputs,
    }
    saver = None
    if bertopic_model:
        from devquarry.topics.bertopic_model import model_folder, save_model

        def saver(run_id: int) -> str:
            return str(save_model(model, model_folder(store.path, run_id)))

    stage("saving")
    run_id = save_topic_run(store, params, scores, topic_frame, assignments, theme_frame, started, save_model=saver)
    from devquarry.topics.assign import save_assigner

    save_assigner(store, run_id, embedder, embedding, vectors, fit_labels)  # `topics --assign-new` adds later threads
    return TopicResult(run_id, topic_frame, assignments, theme_frame, scores, model)


def _assign_rest(store, embedder, threads, picked, vectors, fit_labels, progress, engine) -> np.ndarray:
    """Every thread's topic: the sample's as fitted, the others' the nearest centroid's, embedded a
    chunk at a time (by the embedder fitted on the sample, when it is one that is fitted)."""
    from devquarry.topics.assign import nearest_topic, topic_centroids

    labels = np.full(len(threads), OUTLIER, dtype=int)
    labels[picked] = fit_labels
    ids, centroids = topic_centroids(vectors, fit_labels)
    rest = np.setdiff1d(np.arange(len(threads)), picked)
    if not ids:
        return labels
    for i in range(0, len(rest), ASSIGN_CHUNK):
        at = rest[i : i + ASSIGN_CHUNK]
        part = embed_threads(store, embedder, threads.iloc[at], progress, engine=engine)
        labels[at] = nearest_topic(part, ids, centroids)[0]
    return labels
