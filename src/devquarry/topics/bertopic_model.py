"""A real BERTopic model of a devquarry topic run (the ``[bertopic]`` extra), so that BERTopic's
own tools (``visualize_topics``, ``visualize_barchart``, ``topics_over_time``, ``BERTopic.load``)
work on devquarry's topics. It also gives the KeyBERT-like keyword list.

The model is fitted by BERTopic's manual route: no dimensionality reduction, a "clustering" that
returns the labels devquarry found, and the same c-TF-IDF settings, so its topics and words are
devquarry's."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from devquarry.embeddings.base import Embedder
from devquarry.extras import require
from devquarry.topics.ctfidf import TOP_N_WORDS, ClassTfidf, vectorizer

WHAT = "the BERTopic model and KeyBERT-like keywords"


def _embedder_backend(embedder: Embedder):
    """Lets BERTopic embed words and documents (for KeyBERT-like labels) with our backend."""
    from bertopic.backend import BaseEmbedder

    class DevquarryEmbedder(BaseEmbedder):
        def __init__(self, inner: Embedder) -> None:
            super().__init__()
            self.inner = inner

        def embed(self, documents, verbose: bool = False) -> np.ndarray:
            return self.inner.encode([str(d) for d in documents])

    return DevquarryEmbedder(embedder)


def model_settings(embedder: Embedder, seed: int) -> dict:
    """What every BERTopic model of ours shares: our embedder, BM25-weighted c-TF-IDF over English
    words, and the KeyBERT-like list as a second aspect."""
    require("bertopic", "bertopic", WHAT)
    from bertopic.representation import KeyBERTInspired
    from bertopic.vectorizers import ClassTfidfTransformer

    return dict(
        embedding_model=_embedder_backend(embedder),
        vectorizer_model=vectorizer(),
        ctfidf_model=ClassTfidfTransformer(bm25_weighting=True),
        representation_model={"KeyBERT": KeyBERTInspired(top_n_words=TOP_N_WORDS, random_state=seed)},
        top_n_words=TOP_N_WORDS,
        calculate_probabilities=False,
        verbose=False,
    )


def fit_manual(docs: list[str], vectors: np.ndarray, labels: np.ndarray, embedder: Embedder, seed: int = 42):
    """A BERTopic model whose topics are ``labels`` (ids as given, sizes descending)."""
    bertopic = require("bertopic", "bertopic", WHAT)
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction

    model = bertopic.BERTopic(
        umap_model=BaseDimensionalityReduction(), hdbscan_model=BaseCluster(), **model_settings(embedder, seed)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(docs, embeddings=vectors, y=np.asarray(labels))
        fitted = np.asarray(model.topics_)
        if not np.array_equal(fitted, labels):
            # BERTopic renumbers topics by size; among topics of equal size its order may differ
            # from ours. Put our ids back, and the topic vectors with them.
            order = [int(fitted[np.flatnonzero(labels == t)[0]]) for t in sorted(set(labels.tolist()))]
            offset = 1 if -1 in fitted else 0
            embeddings = np.asarray(model.topic_embeddings_)[[o + offset for o in order]]
            model.update_topics(
                docs,
                topics=list(labels),
                top_n_words=TOP_N_WORDS,
                vectorizer_model=model.vectorizer_model,
                ctfidf_model=model.ctfidf_model,
                representation_model=model.representation_model,
            )
            model.topic_embeddings_ = embeddings
    _rank_ties_alphabetically(model)
    return model


def _rank_ties_alphabetically(model) -> None:
    """The main keywords as devquarry ranks them (equal weights alphabetically), so that
    ``get_topic`` gives the run's keywords on every CPU."""
    matrix = model.c_tf_idf_.tocsr()
    ctfidf = ClassTfidf(matrix, model.vectorizer_model.get_feature_names_out(), sorted(model.topic_representations_))
    index = {w: i for i, w in enumerate(ctfidf.words)}
    for row, (topic, words) in enumerate(zip(ctfidf.classes, ctfidf.top_words(TOP_N_WORDS).values())):
        model.topic_representations_[topic] = [(w, float(matrix[row, index[w]])) for w in words]


def keybert_words(model, topic_ids: list[int]) -> dict[int, list[str]]:
    aspects = model.get_topics(full=True).get("KeyBERT", {})
    return {t: [w for w, _ in aspects.get(t, []) if w][:TOP_N_WORDS] for t in topic_ids}


def model_folder(store_path: Path, run_id: int) -> Path:
    """Where a run's BERTopic model goes: beside the store, ``<store>.topics/run-<id>/``."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".topics") / f"run-{run_id}"


def save_model(model, folder: Path) -> Path:
    """Safetensors with the c-TF-IDF, without the embedding model (ours is not a hub model)."""
    import logging

    logging.getLogger("BERTopic").setLevel(logging.ERROR)  # it warns that no embedding model is saved
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder), serialization="safetensors", save_ctfidf=True, save_embedding_model=False)
    return folder
