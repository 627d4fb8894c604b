"""Topic quality, measured the standard way (as OCTIS does): NPMI coherence of each topic's
top words over the reference corpus (gensim's ``c_npmi``: sliding windows of 10 tokens), and
topic diversity (the share of unique words among all topics' top words)."""

from __future__ import annotations

import re

import numpy as np

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern, lower-cased


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def topic_diversity(topics: list[list[str]], top_n: int = 10) -> float:
    words = [w for t in topics for w in t[:top_n]]
    return len(set(words)) / len(words) if words else 0.0


def npmi_coherence(topics: list[list[str]], texts: list[str], top_n: int = 10, window: int = 10) -> float:
    """Mean NPMI over topics; words absent from the corpus are dropped from their topic."""
    from gensim.corpora import Dictionary
    from gensim.models.coherencemodel import CoherenceModel

    tokens = [tokenize(t) for t in texts]
    dictionary = Dictionary(tokens)
    kept = [[w for w in t[:top_n] if w in dictionary.token2id] for t in topics]
    kept = [t for t in kept if len(t) >= 2]
    if not kept:
        return float("nan")
    model = CoherenceModel(topics=kept, texts=tokens, dictionary=dictionary, coherence="c_npmi", topn=top_n, window_size=window, processes=1)
    return float(np.nanmean(model.get_coherence_per_topic()))
