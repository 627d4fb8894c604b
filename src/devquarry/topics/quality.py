"""Topic quality, measured the standard way (as OCTIS does): NPMI coherence of each topic's
top words over the reference corpus, and topic diversity (the share of unique words among all
topics' top words).

The NPMI is gensim's ``c_npmi`` (``CoherenceModel`` with a boolean sliding window of 10 tokens,
epsilon 1e-12, the mean over word pairs per topic, then the mean over topics), re-implemented
with numpy so that the core install needs no gensim; it agrees with gensim to 1e-6 (tested)."""

from __future__ import annotations

import re

import numpy as np

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern, lower-cased
EPSILON = 1e-12  # gensim's, in the log ratio and its normalisation


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def topic_diversity(topics: list[list[str]], top_n: int = 10) -> float:
    words = [w for t in topics for w in t[:top_n]]
    return len(set(words)) / len(words) if words else 0.0


def _window_presence(ids: np.ndarray, n_words: int, window: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Which relevant words count as present in each window of one document, as gensim counts them.

    gensim slides the window one token at a time and, at each step, marks the token that left as
    absent and the token that entered as present, even when the leaving word still occurs inside
    the window. That quirk changes the counts, so it is reproduced: a word's state in window k is
    set by its last event up to k (leaving before entering within one step).
    Returns the document's relevant word ids, a (windows x words) boolean matrix, and the number
    of windows (a document shorter than the window is one window; an empty one counts too)."""
    length = len(ids)
    if length < window:
        present = np.unique(ids[ids < n_words])
        return present, np.ones((1, len(present)), dtype=bool), 1
    n = length - window + 1
    words, col = np.unique(ids, return_inverse=True)
    keep = words < n_words
    state = np.full((n, len(words)), -1, dtype=np.int8)
    state[0, np.unique(col[:window])] = 1
    leave = np.arange(0, n - 1)  # token at position k-1 leaves at step k
    state[leave + 1, col[leave]] = 0
    enter = np.arange(window, length)  # token at position k+window-1 enters at step k
    state[enter - window + 1, col[enter]] = 1
    last = np.where(state >= 0, np.arange(n)[:, None], 0)
    np.maximum.accumulate(last, axis=0, out=last)
    present = np.take_along_axis(state, last, axis=0)[:, keep] == 1
    return words[keep], present, n


def npmi_per_topic(topics: list[list[str]], texts: list[str], top_n: int = 10, window: int = 10) -> list[float]:
    """NPMI of each topic's top words (words absent from the corpus dropped; a topic left with
    fewer than two words is not scored). Same figures as gensim's ``c_npmi``."""
    seen = {w for t in texts for w in tokenize(t)}
    kept = [[w for w in t[:top_n] if w in seen] for t in topics]
    kept = [t for t in kept if len(t) >= 2]
    if not kept:
        return []
    vocab = {w: i for i, w in enumerate(dict.fromkeys(w for t in kept for w in t))}
    n_words = len(vocab)
    occurrences = np.zeros(n_words, dtype=np.int64)
    co = np.zeros((n_words, n_words), dtype=np.int64)
    windows = 0
    for text in texts:  # tokenised again here rather than kept: all tokens of a corpus take gigabytes
        doc = tokenize(text)
        ids = np.fromiter((vocab.get(w, n_words) for w in doc), dtype=np.int64, count=len(doc))
        words, present, n = _window_presence(ids, n_words, window)
        windows += n
        if len(words):
            counts = present.astype(np.int64)
            occurrences[words] += counts.sum(axis=0)
            co[np.ix_(words, words)] += counts.T @ counts
    p = occurrences / windows
    scores = []
    for t in kept:
        i = np.array([vocab[w] for w in t])
        joint = co[np.ix_(i, i)] / windows
        npmi = np.log((joint + EPSILON) / np.outer(p[i], p[i])) / -np.log(joint + EPSILON)
        pairs = ~np.eye(len(i), dtype=bool)
        scores.append(float(np.mean(npmi[pairs])))
    return scores


def npmi_coherence(topics: list[list[str]], texts: list[str], top_n: int = 10, window: int = 10) -> float:
    """Mean NPMI over topics; words absent from the corpus are dropped from their topic."""
    scores = npmi_per_topic(topics, texts, top_n, window)
    return float(np.nanmean(scores)) if scores else float("nan")
