"""How far a coder's scores are from probabilities: top-label expected calibration error and the
reliability table behind it.

A thread's confidence is its highest score; it is correct when that code is the gold one. Threads are
put into ``bins`` equal-width confidence bins [low, high) over [0, 1] (the last one also holds 1);
ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|. Threads without a
score (NaN) are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _top_label(y_true, proba, classes) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes, dtype=object)
    y_true = np.asarray(y_true, dtype=object)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ValueError(f"proba must be (n, classes) = ({len(y_true)}, {len(classes)}), got {proba.shape}")
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == y_true
    return confidence, correct.astype(float)


def reliability_bins(confidence, correct, bins: int = 10) -> pd.DataFrame:
    """One row per non-empty confidence bin: its range, threads, mean confidence, accuracy, gap;
    from each thread's top score (``confidence``) and whether its top code is right (``correct``)."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    keep = ~np.isnan(confidence)
    confidence, correct = confidence[keep], correct[keep]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip((confidence * bins).astype(int), 0, bins - 1)
    rows = []
    for b in range(bins):
        hit = which == b
        if not hit.any():
            continue
        conf, acc = float(confidence[hit].mean()), float(correct[hit].mean())
        rows.append(
            {"low": edges[b], "high": edges[b + 1], "n": int(hit.sum()), "confidence": conf, "accuracy": acc, "gap": acc - conf}
        )
    return pd.DataFrame(rows, columns=["low", "high", "n", "confidence", "accuracy", "gap"])


def calibration_error(confidence, correct, bins: int = 10) -> float:
    """Top-label ECE from each thread's top score and whether that code is right (0 = calibrated)."""
    table = reliability_bins(confidence, correct, bins)
    if table.empty:
        return float("nan")
    return float((table.n / table.n.sum() * table.gap.abs()).sum())


def reliability_table(y_true, proba, classes, bins: int = 10) -> pd.DataFrame:
    """:func:`reliability_bins` of a probability matrix (one column per entry of ``classes``)."""
    return reliability_bins(*_top_label(y_true, proba, classes), bins)


def expected_calibration_error(y_true, proba, classes, bins: int = 10) -> float:
    """Top-label ECE (0 = perfectly calibrated); ``proba`` has one column per entry of ``classes``."""
    return calibration_error(*_top_label(y_true, proba, classes), bins)
