"""How well machine codes agree with human ones (accuracy, macro-F1, Cohen's kappa, calibration),
overall and per code, always on gold labels the coder did not learn from:

- ``run``: the codes of a stored classify run against the gold rater's labels (threads the run
  trained on are left out and counted);
- ``held-out``: a coder trained on other labels (other raters, or other sources) scores the gold;
- ``zero-shot``: nothing is trained;
- ``cross-validated``: folds of the gold labels themselves, only when asked for by name.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from devquarry.classify import (
    CHAR_FEATURES,
    WORD_FEATURES,
    SupervisedCoder,
    ZeroShotCoder,
    code_threads,
    coder_name,
    training_labels,
)
from devquarry.codebooks import Codebook, load_codebook
from devquarry.coders.calibration import calibration_error
from devquarry.errors import InputError
from devquarry.fold_features import counted
from devquarry.store import Store
from devquarry.text import thread_text

MODES = ("run", "held-out", "zero-shot", "cross-validated")


def scores(y_true, y_pred) -> dict:
    """Overall accuracy, macro-F1 and kappa, plus a per-code table (codes of the gold labels)."""
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
    """Out-of-fold predictions of the lexical coder (stratified folds)."""
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
    gold: str | None = None,
    run: int | None = None,
    method: str = "supervised",
    coder: str | None = None,
    train_raters: list[str] | None = None,
    train_sources: list[str] | None = None,
    gold_sources: list[str] | None = None,
    cross_validate: bool = False,
    level: int = 0,
    folds: int = 5,
    embedding: str = "minilm",
    threshold: float = 0.15,
    min_support: int | None = None,
    rater: str | None = None,
) -> dict:
    """Machine codes against the gold rater's hand labels at a level (0 = category).

    With ``run``, the codes of that classify run; else a coder trained on ``train_raters``' labels
    (default: every rater but the gold one) of ``train_sources``, never on a gold thread; with
    ``method="zero-shot"`` nothing is trained; ``cross_validate`` cross-validates on the gold labels
    themselves (codes with fewer than ``min_support``, default ``folds``, labels are left out).
    ``rater`` is the older name of ``gold``."""
    cb = load_codebook(codebook, store=store)
    gold = gold or rater
    gold_labels = _gold(store, cb, gold, level, gold_sources, run is not None or cross_validate or method == "zero-shot")
    threads = store.threads().merge(gold_labels, on=["source", "source_id"])
    if threads.empty:
        raise InputError(store.path, f"none of the gold labels of {cb.id} is on a thread in the store")
    extra: dict = {"gold": gold or ", ".join(sorted(set(gold_labels.rater)))}
    if run is not None:
        mode = "run"
        gold_code, pred, conf, extra2 = _run_codes(store, cb, run, threads, level)
        extra.update(extra2)
    elif method == "zero-shot":
        mode = "zero-shot"
        texts = [thread_text(t, b) for t, b in zip(threads.title, threads.body_text)]
        pred = ZeroShotCoder(cb.id, embedding, threshold, level).fit(texts).predict_with_scores(texts)[0]
        conf = None  # similarities, not probabilities
        gold_code = threads.primary.tolist()
    elif method == "llm":
        raise InputError(
            None, "evaluate an LLM coder by its run: `classify --method llm`, then `evaluate --run ID`", field="method"
        )
    elif method != "supervised":
        raise InputError(None, "evaluate supports supervised and zero-shot (and any stored run with --run)", field="method")
    elif cross_validate:
        mode = "cross-validated"
        min_support = folds if min_support is None else min_support
        counts = threads.primary.value_counts()
        dropped = sorted(counts[counts < min_support].index)
        threads = threads[~threads.primary.isin(dropped)]
        extra["left_out"] = dropped
        texts = [thread_text(t, b) for t, b in zip(threads.title, threads.body_text)]
        gold_code = threads.primary.tolist()
        pred, conf = cross_validated(texts, gold_code, folds), None
    else:
        mode = "held-out"
        gold_code, pred, conf, extra2 = _held_out(
            store, cb, threads, gold_labels, gold, coder, train_raters, train_sources, level
        )
        extra.update(extra2)
    out = scores(gold_code, pred)
    if conf is not None:
        out["ece"] = calibration_error(conf, np.asarray(gold_code, dtype=object) == np.asarray(pred, dtype=object))
    out.update(
        {
            "codebook": cb.id,
            "level": cb.levels[level],
            "method": method,
            "mode": mode,
            "human_kappa": cb.human_kappa,
            "cross_validated": f"{folds}-fold" if mode == "cross-validated" else None,
            "left_out": [],
            **extra,
        }
    )
    return out


def _gold(store: Store, cb: Codebook, gold: str | None, level: int, sources: list[str] | None, any_rater: bool) -> pd.DataFrame:
    """The gold labels: one rater's (one label per thread), or every rater's when only one exists
    or the mode does not train on other raters."""
    labels = training_labels(store, cb, level=level, raters=[gold] if gold else None, sources=sources)
    raters = sorted(set(training_labels(store, cb, level=level).rater))
    if not gold and len(raters) > 1 and not any_rater:
        raise InputError(
            store.path,
            f"name the gold standard with --gold-rater (raters of {cb.id}: {', '.join(raters)}); "
            "the coder then trains on the other raters' labels",
            field="gold",
        )
    if labels.empty:
        raise InputError(store.path, f"no coded gold labels for {cb.id}" + (f" by {gold}" if gold else ""), field="gold")
    return labels


def _held_out(store, cb, threads, gold_labels, gold, coder, train_raters, train_sources, level):
    every = store.threads()
    others = train_raters or [r for r in sorted(set(training_labels(store, cb, level=level).rater)) if r != gold]
    if not others and not train_sources:
        raise InputError(
            store.path,
            f"nothing to train on apart from the gold labels of {gold or 'the only rater'}: import training labels as another "
            "rater and name it with --train-rater, score a stored run with --run ID, or --cross-validate on the gold itself",
            field="train-rater",
        )
    train = training_labels(store, cb, level=level, raters=others or None, sources=train_sources)
    keys = gold_labels[["source", "source_id"]].assign(_gold=True)
    train = train.merge(keys, on=["source", "source_id"], how="left")
    overlap = int(train._gold.notna().sum())
    train = every.merge(train[train._gold.isna()].drop(columns="_gold"), on=["source", "source_id"])
    if train.empty:
        raise InputError(
            store.path, "the training labels are all on gold threads: nothing is left to train on", field="train-rater"
        )
    name = coder_name(cb, coder)
    coded, info = code_threads(threads, train, cb, coder=name, store=store)
    primary = coded[coded["rank"] == 0].set_index(["source", "source_id"])
    keys = list(zip(threads.source, threads.source_id))
    pred = [primary.code.get(k) for k in keys]
    conf = [primary.score.get(k) for k in keys]
    extra = {
        "coder": name,
        "trained_on": {
            "raters": sorted(set(train.rater)),
            "sources": sorted(set(train.source)),
            "threads": int(info["training_threads"]),
            "left_out_gold_threads": overlap,
        },
        "codes_too_rare_to_learn": info["codes_too_rare_to_learn"],
    }
    return threads.primary.tolist(), pred, conf, extra


def _run_codes(store: Store, cb: Codebook, run: int, threads: pd.DataFrame, level: int):
    row = store.con.execute("SELECT command, params FROM run WHERE run_id = ?", [int(run)]).fetchone()
    if not row or row[0] != "classify":
        raise InputError(store.path, f"no classify run {run} (see `devquarry runs`)", field="run")
    params = json.loads(row[1])
    if params.get("codebook") != cb.id:
        raise InputError(store.path, f"classify run {run} coded {params.get('codebook')}, not {cb.id}", field="run")
    codes = store.query(
        "SELECT source, source_id, code, score FROM classification WHERE run_id = ? AND coalesce(rank, 0) = 0", [int(run)]
    )
    known = {c.id for c in cb.codes}
    codes["code"] = [cb.ancestor(c, level) if c in known else c for c in codes.code]
    merged = threads.merge(codes, on=["source", "source_id"], how="left", suffixes=("", "_machine"))
    missing = int(merged.code_machine.isna().sum()) if "code_machine" in merged else int(merged.code.isna().sum())
    col = "code_machine" if "code_machine" in merged else "code"
    merged = merged[merged[col].notna()]
    # Threads the run learnt from are not a test of it.
    trained = _run_training_threads(store, cb, params)
    seen = merged.merge(trained, on=["source", "source_id"], how="left", indicator=True)._merge.eq("both").to_numpy()
    merged = merged[~seen]
    if merged.empty:
        raise InputError(store.path, f"classify run {run} coded none of the gold threads it did not train on", field="run")
    extra = {
        "run": int(run),
        "method": params.get("method"),
        "coder": params.get("coder"),
        "not_coded_by_run": missing,
        "left_out_training_threads": int(seen.sum()),
    }
    score_col = "score_machine" if "score_machine" in merged else "score"
    return merged.primary.tolist(), merged[col].tolist(), merged[score_col].to_numpy(dtype=float), extra


def _run_training_threads(store: Store, cb: Codebook, params: dict) -> pd.DataFrame:
    if params.get("method") not in ("supervised", "topic", "llm"):
        return pd.DataFrame(columns=["source", "source_id"])
    # The raters it learnt from, as recorded (older runs: as named, or every rater).
    raters = params.get("trained_raters") or params.get("train_raters") or params.get("rater")
    raters = [raters] if isinstance(raters, str) else raters
    try:
        labels = training_labels(store, cb, raters=raters or None, sources=params.get("train_sources"), keep_irrelevant=True)
    except InputError:
        return pd.DataFrame(columns=["source", "source_id"])
    return labels[["source", "source_id"]].drop_duplicates()
