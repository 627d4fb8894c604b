"""The zero-shot coder: no training; each code is described by its own text in the codebook (name,
description, keywords) and a thread takes the closest code by cosine similarity of embeddings,
category first, then a subcategory within it; below ``threshold`` it is ``unclassified``."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from devquarry.codebooks import load_codebook

UNCLASSIFIED = "unclassified"


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
