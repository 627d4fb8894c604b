"""Active learning: which threads to hand-label next.

- ``stratified``: the proportional stratified sample of ``labeling.stratified_sample``;
- ``random``: a uniform sample, seeded;
- ``uncertainty``: the lexical coder (``coders.supervised.SupervisedCoder``), trained on the hand
  labels so far, codes every unlabelled thread; the threads whose two most probable codes are
  closest (smallest margin between the top two calibrated probabilities) come first.

Margin rather than least confidence (the top probability alone): on the shared labels
(``bench/active.py``) the two are within seed noise of each other; margin is ahead on Stack
Overflow from 100 to 400 labels, where uncertainty sampling beats random picks by 0.04-0.10 kappa.
On the forum's titles, where the coder stays weak (kappa < 0.35 below 400 labels), neither beats
random picks before most of the pool is labelled. A thread that any rater already labelled for
the codebook is never picked again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from devquarry.codebooks import Codebook, load_codebook
from devquarry.errors import InputError
from devquarry.store import Store

STRATEGIES = ("stratified", "uncertainty", "random")
MEASURES = ("margin", "least_confidence")
MEASURE = "margin"
MEASURE_TEXT = {
    "margin": "smallest margin between the coder's two most probable codes",
    "least_confidence": "lowest probability of the coder's most probable code",
}
# Calibration needs a few labels of a code (as in classify): rarer codes are left out of training,
# and uncertainty sampling needs at least two codes that can be learnt.
MIN_EXAMPLES = 3
MIN_CODES = 2


def labelled_keys(store: Store, codebook: str) -> pd.DataFrame:
    """(source, source_id) of every thread any rater labelled for ``codebook``, irrelevant ones too."""
    return store.query("SELECT DISTINCT source, source_id FROM label WHERE codebook = ? ORDER BY 1, 2", [codebook])


def training_frame(store: Store, cb: Codebook, raters: Sequence[str] | None = None, level: int = 0) -> pd.DataFrame:
    """One coded label per thread (source, source_id, rater, primary code at ``level``): the first
    of ``raters`` in name order that coded it, as ``classify.training_labels`` chooses."""
    from devquarry.labeling import labels_frame

    if labelled_keys(store, cb.id).empty:
        return pd.DataFrame(columns=["source", "source_id", "rater", "primary"])
    df = labels_frame(store, cb.id, level)
    df = df[(df.status == "coded") & df.primary.notna()]
    if raters:
        known = sorted(set(df.rater))
        missing = [r for r in raters if r not in known]
        if missing:
            raise InputError(
                store.path,
                f"no coded labels by {', '.join(missing)} in {cb.id}; raters: {', '.join(known) or 'none'}",
                field="train_rater",
            )
        df = df[df.rater.isin(raters)]
    df = df.sort_values(["rater", "source", "source_id"], kind="stable").drop_duplicates(["source", "source_id"])
    return df[["source", "source_id", "rater", "primary"]].reset_index(drop=True)


def learnable(codes: Sequence[str]) -> np.ndarray:
    """Which labels a coder can learn from: those of codes with at least MIN_EXAMPLES labels."""
    codes = pd.Series(list(codes), dtype=object)
    counts = codes.value_counts()
    return codes.isin(counts[counts >= MIN_EXAMPLES].index).to_numpy()


def fit_coder(X, codes: Sequence[str], seed: int = 42):
    """The lexical coder fitted on feature rows ``X`` (codes too rare to calibrate left out), or
    None when fewer than MIN_CODES codes can be learnt."""
    from devquarry.coders.supervised import SupervisedCoder

    keep = learnable(codes)
    y = np.asarray(codes, dtype=object)[keep]
    if len(set(y)) < MIN_CODES:
        return None
    # LinearSVC's dual solver shuffles with NumPy's global generator unless told a seed, and the
    # coder does not take one: seeding it here, and putting it back, makes a pick reproducible.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return SupervisedCoder().fit(X[np.flatnonzero(keep)], list(y))
    finally:
        np.random.set_state(state)


def uncertainty(proba: np.ndarray, measure: str = MEASURE) -> pd.DataFrame:
    """Per row of class probabilities: the top probability (``score``), the margin between the top
    two (``margin``) and the key the rows are picked by (smaller = less sure = first)."""
    if measure not in MEASURES:
        raise InputError(None, f"unknown uncertainty measure {measure!r}; use one of {', '.join(MEASURES)}", field="measure")
    top = np.sort(proba, axis=1)[:, ::-1]
    score = top[:, 0]
    margin = top[:, 0] - top[:, 1] if top.shape[1] > 1 else top[:, 0]
    return pd.DataFrame({"score": score, "margin": margin, "key": margin if measure == "margin" else score})


def most_uncertain(proba: np.ndarray, n: int, measure: str = MEASURE) -> np.ndarray:
    """Indices of the ``n`` least sure rows, least sure first (ties in row order)."""
    key = uncertainty(proba, measure).key.to_numpy()
    return np.argsort(key, kind="stable")[:n]


def pick(
    store: Store,
    codebook: str | Codebook,
    n: int,
    *,
    strategy: str = "stratified",
    train_raters: list[str] | None = None,
    sources: list[str] | None = None,
    level: int = 0,
    strata: str = "source",
    seed: int = 42,
    measure: str = MEASURE,
) -> pd.DataFrame:
    """The ``n`` threads (of ``sources``) to hand-label next, in labelling order, none of them
    already labelled for the codebook. Columns: the thread's (as ``stratified_sample``); with
    ``uncertainty`` also the coder's suggested ``code``, its probability ``score`` and ``margin``
    to the second code, least sure first. ``attrs``: strategy, note (why a strategy fell back),
    labels (training labels used), codes (codes learnt)."""
    from devquarry.labeling import stratified_sample

    if strategy not in STRATEGIES:
        raise InputError(None, f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}", field="strategy")
    if n < 1:
        raise InputError(None, "pick at least one thread", field="size")
    cb = load_codebook(codebook, store=store)
    every = store.threads()
    done = labelled_keys(store, cb.id)
    pool = every[every.source.isin(sources)] if sources else every
    pool = pool.merge(done.assign(_done=True), on=["source", "source_id"], how="left")
    pool = pool[pool._done.isna()].drop(columns="_done")
    pool = pool.sort_values(["source", "source_id"], kind="stable").reset_index(drop=True)
    if pool.empty:
        where = f" of {', '.join(sources)}" if sources else ""
        raise InputError(store.path, f"no unlabelled threads{where} to pick from for {cb.id}")
    n = min(n, len(pool))
    attrs = {"strategy": strategy, "note": None, "labels": 0, "codes": []}
    if strategy == "uncertainty":
        labels = training_frame(store, cb, train_raters, level)
        counts = labels.primary.value_counts()
        codes = sorted(counts[counts >= MIN_EXAMPLES].index)
        if len(codes) < MIN_CODES:
            strategy = "stratified"
            attrs["note"] = (
                f"uncertainty sampling needs at least {MIN_CODES} codes with {MIN_EXAMPLES}+ coded labels "
                f"(found {len(codes)} among {len(labels)} labels): a stratified sample instead"
            )
        else:
            out = _by_uncertainty(every, pool, labels, n, seed, measure)
            out.attrs = {**attrs, "labels": len(labels), "codes": codes, "measure": measure}
            return out
    if strategy == "random":
        out = pool.sample(n=n, random_state=seed).sort_values(["source", "source_id"]).reset_index(drop=True)
    else:
        out = stratified_sample(pool, n, strata=strata, seed=seed)
    out.attrs = {**attrs, "strategy": strategy}
    return out


def text_features(*frames: pd.DataFrame) -> list:
    """The supervised coder's TF-IDF rows of each frame's threads (title and body), with one
    vocabulary learnt from all of them: the threads to pick from and the labelled ones, texts
    only (no label enters it). A few dozen labels alone would give too small a vocabulary."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    from devquarry.coders.supervised import CHAR_FEATURES, WORD_FEATURES
    from devquarry.text import thread_text

    texts = [[thread_text(t, b) for t, b in zip(f.title, f.body_text)] for f in frames]
    union = make_union(TfidfVectorizer(**WORD_FEATURES), TfidfVectorizer(**CHAR_FEATURES))
    matrix = union.fit_transform([t for block in texts for t in block]).tocsr()
    ends = np.cumsum([0] + [len(b) for b in texts])
    return [matrix[a:b] for a, b in zip(ends[:-1], ends[1:])]


def _by_uncertainty(
    every: pd.DataFrame, pool: pd.DataFrame, labels: pd.DataFrame, n: int, seed: int, measure: str
) -> pd.DataFrame:
    train = every.merge(labels[["source", "source_id", "primary"]], on=["source", "source_id"], how="inner")
    x_pool, x_train = text_features(pool, train)
    coder = fit_coder(x_train, train.primary.tolist(), seed)
    proba = coder.predict_proba(x_pool)
    unsure = uncertainty(proba, measure)
    picked = most_uncertain(proba, n, measure)
    out = pool.iloc[picked].reset_index(drop=True)
    out["code"] = coder.classes_[proba[picked].argmax(axis=1)]
    out["score"] = unsure.score.to_numpy()[picked]
    out["margin"] = unsure.margin.to_numpy()[picked]
    return out
