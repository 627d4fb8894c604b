"""How well machine codes agree with human ones: accuracy, macro-F1 and Cohen's kappa, overall
and per code; cross-validated when the same labels train the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from devquarry.classify import CHAR_FEATURES, WORD_FEATURES, SupervisedCoder, ZeroShotCoder, training_labels
from devquarry.codebooks import load_codebook
from devquarry.errors import InputError
from devquarry.fold_features import counted
from devquarry.store import Store
from devquarry.text import thread_text


def scores(y_true, y_pred) -> dict:
    """Overall accuracy, macro-F1 and kappa, plus a per-code table."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    codes = sorted(set(y_true))
    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=codes, zero_division=0)
    per = pd.DataFrame({"code": codes, "precision": p, "recall": r, "f1": f, "support": n})
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=codes, average="macro", zero_division=0)),
        "kappa": float(cohen_kappa_score(y_true, y_pred)),
        "per_code": per,
    }


def cross_validated(texts: list[str], labels: list[str], folds: int = 5, seed: int = 42) -> np.ndarray:
    """Out-of-fold predictions of the supervised coder (stratified folds)."""
    counts = pd.Series(labels).value_counts()
    keep = np.isin(labels, counts[counts >= folds].index)
    if not keep.all():
        raise InputError(
            None,
            f"codes with fewer than {folds} labelled threads cannot be cross-validated: "
            f"{', '.join(counts[counts < folds].index)}",
        )
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # The texts are split into n-grams once; each fold's vocabulary and idf still come from its training rows only.
    counts, features = counted(list(texts), WORD_FEATURES, CHAR_FEATURES)
    coder = make_pipeline(features, SupervisedCoder())
    return cross_val_predict(coder, counts, np.asarray(labels, dtype=object), cv=cv)


def evaluate(
    store: Store,
    codebook: str,
    *,
    method: str = "supervised",
    rater: str | None = None,
    level: int = 0,
    folds: int = 5,
    embedding: str = "minilm",
    threshold: float = 0.15,
    min_support: int | None = None,
) -> dict:
    """Machine codes against the hand labels in the store at a level (0 = category).

    ``supervised`` is cross-validated on those same labels; ``zero-shot`` uses no labels. Codes with
    fewer than ``min_support`` labelled threads (default: ``folds`` for supervised, none left out for
    zero-shot) are left out and listed."""
    cb = load_codebook(codebook)
    labels = training_labels(store, cb, rater, level)
    if labels.empty:
        raise InputError(store.path, f"no hand labels for {cb.id}")
    threads = store.threads().merge(labels, on=["source", "source_id"])
    if min_support is None:  # only training needs examples of a code; zero-shot scores every one
        min_support = folds if method == "supervised" else 1
    counts = threads.primary.value_counts()
    dropped = sorted(counts[counts < min_support].index)
    threads = threads[~threads.primary.isin(dropped)]
    texts = [thread_text(t, b) for t, b in zip(threads.title, threads.body_text)]
    gold = threads.primary.tolist()
    if method == "supervised":
        pred = cross_validated(texts, gold, folds)
    elif method == "zero-shot":
        pred = ZeroShotCoder(cb.id, embedding, threshold, level).fit(texts).predict(texts)
    else:
        raise InputError(None, "evaluate supports supervised and zero-shot", field="method")
    out = scores(gold, pred)
    out.update(
        codebook=cb.id,
        level=cb.levels[level],
        method=method,
        left_out=dropped,
        human_kappa=cb.human_kappa,
        cross_validated=f"{folds}-fold" if method == "supervised" else None,
    )
    return out
