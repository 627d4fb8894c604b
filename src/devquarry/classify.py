"""Coding threads into a codebook's codes, and running the coders (``devquarry.coders``) over the store.

- supervised (``coders.supervised``): learns from hand labels;
- zero-shot (``coders.zeroshot``): from the codebook's own text;
- topic: every member of a topic takes the topic's most frequent hand-labelled code.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from devquarry.codebooks import Codebook, load_codebook
from devquarry.coders.supervised import CHAR_FEATURES, WORD_FEATURES, SupervisedCoder, ThreadFeatures
from devquarry.coders.zeroshot import UNCLASSIFIED, ZeroShotCoder
from devquarry.errors import InputError
from devquarry.reuse import labels_fingerprint, threads_fingerprint
from devquarry.store import Store
from devquarry.text import thread_text

__all__ = ["CHAR_FEATURES", "WORD_FEATURES", "SupervisedCoder", "ThreadFeatures", "UNCLASSIFIED", "ZeroShotCoder", "classify"]

IRRELEVANT = "irrelevant"
MIN_EXAMPLES = 3
METHODS = ("supervised", "zero-shot", "topic")


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
    if "rank" not in out:
        # A thread's codes ranked by score: the first is its primary code.
        out = out.assign(_s=out.score.fillna(-1.0)).sort_values(["source", "source_id", "_s"], ascending=[True, True, False])
        out = out.assign(rank=out.groupby(["source", "source_id"]).cumcount()).drop(columns="_s")
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
                "rank": [int(r) for r in out["rank"]],
            }
        )
        con.execute("INSERT INTO classification BY NAME SELECT * FROM batch")
        counts = out.code.value_counts().to_dict()
        store.record_run(
            run_id,
            "classify",
            {**params, "codebook": cb.id},
            {"threads": int(out[["source", "source_id"]].drop_duplicates().shape[0]), "assignments": len(out), "codes": counts},
            started,
        )
    return run_id
