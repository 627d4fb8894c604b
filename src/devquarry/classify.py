"""Coding threads into a codebook's codes: scikit-learn estimators, and running them over the store.

- ``SupervisedCoder``: TF-IDF word and character n-grams and a linear SVM, calibrated (sigmoid)
  so that scores are probabilities; multi-label aware (one calibrated model per code).
- ``ZeroShotCoder``: no training; each code is described by its own text in the codebook (name,
  description, keywords) and a thread takes the closest code by cosine similarity of embeddings,
  category first, then a subcategory within it; below ``threshold`` it is ``unclassified``.
- ``TopicCoder``: every member of a topic takes the topic's most frequent hand-labelled code.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_union
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from devquarry.codebooks import Codebook, load_codebook
from devquarry.errors import InputError
from devquarry.reuse import labels_fingerprint, threads_fingerprint
from devquarry.store import Store
from devquarry.text import thread_text

UNCLASSIFIED = "unclassified"
IRRELEVANT = "irrelevant"
MIN_EXAMPLES = 3
METHODS = ("supervised", "zero-shot", "topic")


# The supervised coder's features: TF-IDF of word 1-2-grams and of character 3-5-grams.
WORD_FEATURES = dict(sublinear_tf=True, min_df=2, ngram_range=(1, 2))
CHAR_FEATURES = dict(sublinear_tf=True, analyzer="char_wb", ngram_range=(3, 5), min_df=3, max_features=200_000)


def _features():
    return make_union(TfidfVectorizer(**WORD_FEATURES), TfidfVectorizer(**CHAR_FEATURES))


class SupervisedCoder(ClassifierMixin, BaseEstimator):
    """Learns codes from labelled texts. ``y`` is one code per text, or a list of codes per text
    (multi-label: every code whose calibrated probability reaches 0.5, and at least the best one).

    ``X`` is texts (the TF-IDF features are then learnt from the training texts), or rows of a
    feature matrix from ``text_features`` (fit and predict must then both be given rows)."""

    def __init__(self, C: float = 0.3, calibration_folds: int = 3) -> None:
        self.C = C
        self.calibration_folds = calibration_folds

    def fit(self, X, y):
        svm = LinearSVC(C=self.C, class_weight="balanced")
        self.multi_label_ = len(y) > 0 and isinstance(y[0], (list, tuple))
        if self.multi_label_:
            self.binarizer_ = MultiLabelBinarizer().fit(y)
            target = self.binarizer_.transform(y)
            clf = OneVsRestClassifier(CalibratedClassifierCV(svm, method="sigmoid", cv=self.calibration_folds))
            self.classes_ = self.binarizer_.classes_
        else:
            target = np.asarray(y, dtype=object)
            counts = pd.Series(target).value_counts()
            folds = int(max(2, min(self.calibration_folds, counts.min())))
            clf = CalibratedClassifierCV(svm, method="sigmoid", cv=folds)
        self.features_ = None if sp.issparse(X) else _features()
        self.model_ = clf.fit(X if self.features_ is None else self.features_.fit_transform(list(X)), target)
        if not self.multi_label_:
            self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        if self.features_ is None and not sp.issparse(X):
            raise ValueError("this coder was fitted on feature rows: predict from rows of the same text_features")
        return self.model_.predict_proba(X if self.features_ is None else self.features_.transform(list(X)))

    def predict(self, X):
        proba = self.predict_proba(X)
        if not self.multi_label_:
            return self.classes_[proba.argmax(axis=1)]
        out = []
        for row in proba:
            picked = [self.classes_[i] for i in np.flatnonzero(row >= 0.5)] or [self.classes_[int(row.argmax())]]
            out.append(picked)
        return out


class ThreadFeatures:
    """TF-IDF features of a set of threads, computed once and shared by the coders of one
    ``classify`` run (the code coder and the relevance coder), looked up by (source, source_id).
    The vocabulary comes from every thread being coded or labelled, as text classifiers commonly
    fit their unsupervised features on the whole corpus; labels never enter it."""

    def __init__(self, *frames: pd.DataFrame) -> None:
        rows = pd.concat([f[["source", "source_id", "title", "body_text"]] for f in frames], ignore_index=True)
        rows = rows.drop_duplicates(["source", "source_id"]).reset_index(drop=True)
        self.index = {key: n for n, key in enumerate(zip(rows.source, rows.source_id))}
        self.matrix = _features().fit_transform([thread_text(t, b) for t, b in zip(rows.title, rows.body_text)]).tocsr()

    def of(self, frame: pd.DataFrame) -> sp.csr_matrix:
        return self.matrix[[self.index[key] for key in zip(frame.source, frame.source_id)]]


class ZeroShotCoder(ClassifierMixin, BaseEstimator):
    """Codes texts by similarity to the codebook's own descriptions; nothing to train.

    ``fit(X)`` only fits the embedding where it learns from the corpus (LSA)."""

    def __init__(
        self, codebook: str = "chen2024-forum", embedding: str = "minilm", threshold: float = 0.15, level: int | None = None
    ) -> None:
        self.codebook = codebook
        self.embedding = embedding
        self.threshold = threshold
        self.level = level

    def fit(self, X=None, y=None):
        from devquarry.embeddings import get_embedder

        cb = load_codebook(self.codebook)
        self.embedder_ = get_embedder(self.embedding)
        if hasattr(self.embedder_, "fit") and X is not None:
            self.embedder_.fit(list(X) + [c.text for c in cb.codes])
        # A category is described by its own text and its subcategories' names and keywords.
        texts = []
        for c in cb.codes:
            kids = [k for k in cb.codes if k.parent == c.id]
            texts.append(". ".join([c.text] + [f"{k.name}, {', '.join(k.keywords)}" for k in kids]))
        self.code_ids_ = [c.id for c in cb.codes]
        self.code_vectors_ = self.embedder_.encode(texts)
        self.codebook_ = cb
        self.classes_ = np.array(self.code_ids_ + [UNCLASSIFIED], dtype=object)
        return self

    def scores(self, X) -> np.ndarray:
        return self.embedder_.encode(list(X)) @ self.code_vectors_.T

    def predict_with_scores(self, X) -> tuple[list[str], list[float]]:
        cb = self.codebook_
        sims = self.scores(X)
        index = {c: i for i, c in enumerate(self.code_ids_)}
        deepest = self.level if self.level is not None else len(cb.levels) - 1
        codes, scores = [], []
        for row in sims:
            candidates = [c.id for c in cb.at_level(0)]
            best, best_score = UNCLASSIFIED, float("nan")
            for _depth in range(deepest + 1):
                if not candidates:
                    break
                top = max(candidates, key=lambda c: row[index[c]])
                if row[index[top]] < self.threshold:
                    break
                best, best_score = top, float(row[index[top]])
                candidates = [c.id for c in cb.codes if c.parent == top]
            codes.append(best)
            scores.append(best_score)
        return codes, scores

    def predict(self, X):
        return np.array(self.predict_with_scores(X)[0], dtype=object)


def training_labels(
    store: Store, codebook: Codebook, rater: str | None = None, level: int | None = None, keep_irrelevant: bool = False
) -> pd.DataFrame:
    """Threads with their hand-labelled primary code (at ``level``) and all codes, for training."""
    from devquarry.labeling import labels_frame

    df = labels_frame(store, codebook.id, level)
    if rater:
        df = df[df.rater == rater]
    df = df[
        ((df.status == "coded") & df.primary.notna()) | (df.status == IRRELEVANT)
        if keep_irrelevant
        else (df.status == "coded") & df.primary.notna()
    ]
    # One label per thread: the first rater's in name order (a rater named with --rater wins above).
    return df.sort_values("rater").drop_duplicates(["source", "source_id"])


def classify(
    store: Store,
    codebook: str,
    *,
    method: str = "supervised",
    rater: str | None = None,
    level: int | None = None,
    embedding: str | None = None,
    threshold: float = 0.15,
    sources: list[str] | None = None,
    topic_run: int | None = None,
    relevance: bool | None = None,
) -> pd.DataFrame:
    """Code every thread (of ``sources``) and save the result as a run; returns one row per
    (thread, code): a multi-label codebook's supervised coder may give a thread several codes.

    ``relevance`` (supervised only; by default on when the hand labels mark at least a few threads
    irrelevant to the codebook): a first coder, trained on relevant against irrelevant labels,
    sets aside the threads it finds irrelevant (code ``irrelevant``) before the codes are given."""
    started = datetime.now(UTC)
    cb = load_codebook(codebook, store=store)
    if method not in METHODS:
        raise InputError(None, f"unknown method {method!r}; use one of {', '.join(METHODS)}", field="method")
    if method == "zero-shot":
        from devquarry.embeddings import get_embedder

        get_embedder(embedding or "minilm")  # a missing extra (minilm, static) stops here, before the threads are read
    every = store.threads()
    threads = every[every.source.isin(sources)] if sources else every
    threads = threads.reset_index(drop=True)
    if threads.empty:
        raise InputError(store.path, "no threads to classify")
    if method == "zero-shot":
        texts = [thread_text(t, b) for t, b in zip(threads.title, threads.body_text)]
        coder = ZeroShotCoder(cb.id, embedding or "minilm", threshold, level).fit(texts)
        codes, scores = coder.predict_with_scores(texts)
    else:
        level = 0 if level is None else level
        labels = training_labels(store, cb, rater, level)
        if labels.empty:
            raise InputError(store.path, f"no hand labels for {cb.id} to learn from; import some with `devquarry labels import`")
        if method == "supervised":
            keyed = threads.merge(labels, on=["source", "source_id"], how="inner")
            gate_labels = training_labels(store, cb, rater, level, keep_irrelevant=True) if relevance is not False else labels
            features = ThreadFeatures(threads, every.merge(gate_labels[["source", "source_id"]], on=["source", "source_id"]))
            # Calibration needs a few examples of each code; rarer codes cannot be learnt.
            counts = keyed.primary.value_counts()
            too_rare = sorted(counts[counts < MIN_EXAMPLES].index)
            keyed = keyed[~keyed.primary.isin(too_rare)]
            if keyed.primary.nunique() < 2:
                raise InputError(store.path, "supervised coding needs labelled threads of at least two codes")
            if cb.multi_label:
                # Every code a coder gave (at this level) is a target; a thread may get several.
                targets = [[c for c in codes if c not in too_rare] or [p] for codes, p in zip(keyed.codes, keyed.primary)]
                coder = SupervisedCoder().fit(features.of(keyed), targets)
                rows_x = features.of(threads)
                proba, picked = coder.predict_proba(rows_x), coder.predict(rows_x)
                col = {c: i for i, c in enumerate(coder.classes_)}
                rows = [(i, c, float(proba[i, col[c]])) for i, cs in enumerate(picked) for c in cs]
                threads = threads.iloc[[i for i, _, _ in rows]].reset_index(drop=True)
                codes, scores = [c for _, c, _ in rows], [s for _, _, s in rows]
            else:
                coder = SupervisedCoder().fit(features.of(keyed), keyed.primary.tolist())
                proba = coder.predict_proba(features.of(threads))
                codes = list(coder.classes_[proba.argmax(axis=1)])
                scores = list(proba.max(axis=1))
        else:
            codes, scores = _topic_codes(store, threads, labels, topic_run)
    out = pd.DataFrame({"source": threads.source, "source_id": threads.source_id, "code": codes, "score": scores})
    gate = None
    if method == "supervised" and relevance is not False:
        gate = _relevance(store, every, features, gate_labels, cb, out, relevance)
        if gate is not None:
            out = gate
    _save(
        store,
        cb,
        method,
        out,
        {
            "method": method,
            "rater": rater,
            "level": level,
            "embedding": embedding,
            "threshold": threshold,
            "sources": sources,
            "codes_too_rare_to_learn": too_rare if method == "supervised" else [],
            "relevance": gate is not None,
            "inputs": f"{threads_fingerprint(every)}/{labels_fingerprint(store, cb.id)}",
        },
        started,
    )
    return out


def _relevance(
    store: Store,
    threads: pd.DataFrame,
    features: ThreadFeatures,
    labels: pd.DataFrame,
    cb: Codebook,
    coded: pd.DataFrame,
    wanted: bool | None,
) -> pd.DataFrame | None:
    """Replace the codes of the threads a relevant-vs-irrelevant coder finds irrelevant."""
    n_irrelevant = int((labels.status == IRRELEVANT).sum())
    if n_irrelevant < MIN_EXAMPLES or n_irrelevant == len(labels):
        if wanted:
            raise InputError(
                store.path, f"relevance coding needs hand labels marking threads irrelevant to {cb.id} (found {n_irrelevant})"
            )
        return None
    keyed = threads.merge(labels, on=["source", "source_id"], how="inner")
    target = np.where(keyed.status == IRRELEVANT, IRRELEVANT, "relevant")
    gate = SupervisedCoder().fit(features.of(keyed), target.tolist())
    ids = coded[["source", "source_id"]].drop_duplicates().reset_index(drop=True)
    proba = gate.predict_proba(features.of(ids))
    col = list(gate.classes_).index(IRRELEVANT)
    ids["p_irrelevant"] = proba[:, col]
    off = ids[ids.p_irrelevant >= 0.5]
    keep = coded.merge(off[["source", "source_id"]], on=["source", "source_id"], how="left", indicator=True)
    keep = keep[keep._merge == "left_only"].drop(columns="_merge")
    aside = pd.DataFrame({"source": off.source, "source_id": off.source_id, "code": IRRELEVANT, "score": off.p_irrelevant})
    return pd.concat([keep, aside], ignore_index=True)


def _topic_codes(store: Store, threads: pd.DataFrame, labels: pd.DataFrame, topic_run: int | None):
    from devquarry.topics import latest_topic_run

    run_id = topic_run or latest_topic_run(store)
    assign = store.query("SELECT source, source_id, topic_id FROM topic_assignment WHERE run_id = ?", [run_id])
    merged = assign.merge(labels[["source", "source_id", "primary"]], on=["source", "source_id"])
    if merged.empty:
        raise InputError(store.path, f"no labelled thread is in topic run {run_id}")
    top = merged.groupby("topic_id").primary.agg(lambda s: s.value_counts().index[0])
    share = merged.groupby("topic_id").primary.agg(lambda s: s.value_counts(normalize=True).iloc[0])
    per = threads[["source", "source_id"]].merge(assign, on=["source", "source_id"], how="left")
    codes = [top.get(t, UNCLASSIFIED) if pd.notna(t) else UNCLASSIFIED for t in per.topic_id]
    scores = [float(share.get(t, float("nan"))) if pd.notna(t) else float("nan") for t in per.topic_id]
    return codes, scores


def _save(store: Store, cb: Codebook, method: str, out: pd.DataFrame, params: dict, started) -> int:
    with store.transaction() as con:
        run_id = store.next_run_id()
        batch = pa.table(  # noqa: F841 (read by DuckDB)
            {
                "run_id": [run_id] * len(out),
                "codebook": [cb.id] * len(out),
                "source": out.source.tolist(),
                "source_id": out.source_id.tolist(),
                "code": [str(c) for c in out.code],
                "score": [None if pd.isna(s) else float(s) for s in out.score],
                "method": [method] * len(out),
            }
        )
        con.execute("INSERT INTO classification SELECT * FROM batch")
        counts = out.code.value_counts().to_dict()
        store.record_run(
            run_id,
            "classify",
            {**params, "codebook": cb.id},
            {"threads": int(out[["source", "source_id"]].drop_duplicates().shape[0]), "assignments": len(out), "codes": counts},
            started,
        )
    return run_id
