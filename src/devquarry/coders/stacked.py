"""The stacked coder: a lexical model (TF-IDF word and character n-grams) and a dense model (sentence
embeddings), each a logistic regression, combined by a third logistic regression trained on their
out-of-fold log-probabilities. The combiner learns how far to trust each half per codebook (titles
lean on the embedding, long Stack Overflow posts on the n-grams) and its output is calibrated."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from devquarry.coders.supervised import SupervisedCoder, _features

Embed = Callable[[list[str]], np.ndarray]

# Vectors already computed in this process, by (embedding, text hash): the out-of-fold fits, a
# benchmark's coders and a classify run's two coders embed each text once. About 1.5 kB a text.
_MEMO: dict[tuple[str, str], np.ndarray] = {}
_MEMO_LIMIT = 200_000


def memo_embed(spec: str) -> Embed:
    """Embed with the named backend, remembering vectors in this process."""

    def embed(texts: list[str]) -> np.ndarray:
        from devquarry.embeddings import get_embedder

        keys = [(spec, hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest()) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in _MEMO))
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            vectors = get_embedder(spec).encode([texts[first[k]] for k in missing])
            if len(_MEMO) + len(missing) > _MEMO_LIMIT:
                _MEMO.clear()
            _MEMO.update(zip(missing, vectors))
        return np.vstack([_MEMO[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    return embed


def store_embed(store, spec: str, progress: Callable[[int], None] | None = None, engine=None) -> Embed:
    """Embed through the store's embedding cache (``embed_texts``): a second run embeds nothing new.
    ``progress`` hears how many texts each batch brought (cached ones included); ``engine`` encodes
    the texts not cached (``devquarry.engine``; default local)."""

    def embed(texts: list[str]) -> np.ndarray:
        from devquarry.embeddings import embed_texts

        return embed_texts(store, spec, list(texts), progress, engine=engine)

    return embed


def _aligned(model, X, classes: np.ndarray) -> np.ndarray:
    """``model``'s probabilities with one column per entry of ``classes`` (0 for codes it never saw)."""
    out = np.zeros((X.shape[0], len(classes)))
    out[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(X)
    return out


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-6, 1.0))


class LogPool:
    """The combiner: p(code) proportional to exp(a * log p_lexical + b * log p_dense + c_code), its
    2 + codes parameters fitted by log-loss on out-of-fold probabilities (a weighted product of the
    two halves, re-calibrated). Few parameters, so rare codes do not make it overfit as a logistic
    regression over both halves' probabilities of every code does."""

    def __init__(self, ridge: float = 1e-3) -> None:
        self.ridge = ridge

    def fit(self, halves: list[np.ndarray], y_index: np.ndarray) -> LogPool:
        from scipy.optimize import minimize

        n, k = halves[0].shape
        onehot = np.eye(k)[y_index]

        def loss(theta):
            z = self._z(halves, theta)
            z -= z.max(axis=1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            grad_z = (np.exp(log_p) - onehot) / n
            bias = theta[len(halves) :]
            value = -(log_p * onehot).sum() / n + self.ridge * (bias**2).sum()
            grad = [(grad_z * h).sum() for h in halves] + list(grad_z.sum(axis=0) + 2 * self.ridge * bias)
            return value, np.asarray(grad)

        start = np.r_[np.full(len(halves), 1.0 / len(halves)), np.zeros(k)]
        self.theta_ = minimize(loss, start, jac=True, method="L-BFGS-B").x
        return self

    @staticmethod
    def _z(halves, theta) -> np.ndarray:
        return sum(w * h for w, h in zip(theta, halves)) + theta[len(halves) :]

    def predict_proba(self, halves: list[np.ndarray]) -> np.ndarray:
        z = self._z(halves, self.theta_)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


class StackedCoder(ClassifierMixin, BaseEstimator):
    """Learns one code per text from labelled texts (``y``: one code per text).

    ``embed`` is an optional function texts -> L2-normalised vectors (e.g. :func:`store_embed`, to
    reuse a store's cache); without it the ``embedding`` backend is called, remembering vectors in
    this process. ``lexical_C`` regularises the lexical half (devquarry's calibrated linear SVM),
    ``dense_C`` the embedding half, ``meta_C`` the combiner; ``folds`` out-of-fold splits train the
    combiner (each costs one more fit of both halves)."""

    def __init__(
        self,
        embedding: str = "minilm",
        lexical_C: float = 0.3,
        dense_C: float = 2.0,
        meta_C: float = 1.0,
        combiner: str = "pool",
        folds: int = 3,
        random_state: int = 42,
        embed: Embed | None = None,
    ) -> None:
        self.embedding = embedding
        self.lexical_C = lexical_C
        self.dense_C = dense_C
        self.meta_C = meta_C
        self.combiner = combiner
        self.folds = folds
        self.random_state = random_state
        self.embed = embed

    def _embed(self, texts: list[str]) -> np.ndarray:
        return (self.embed or memo_embed(self.embedding))(list(texts))

    def _lexical(self):
        return SupervisedCoder(C=self.lexical_C)

    def _dense(self):
        return LogisticRegression(C=self.dense_C, max_iter=3000, class_weight="balanced")

    def _halves(self, Xl, E) -> np.ndarray:
        lexical, dense = _aligned(self.lexical_, Xl, self.classes_), _aligned(self.dense_, E, self.classes_)
        return np.hstack([_log(lexical), _log(dense)])

    def _fit_halves(self, Xl, E, target, rows) -> None:
        # The SVM's calibration needs two examples of a code: a rarer one is left to the dense half.
        counts = pd.Series(target[rows]).value_counts()
        lexical_rows = rows[np.isin(target[rows], counts[counts >= 2].index)]
        self.lexical_ = self._lexical().fit(Xl[lexical_rows], target[lexical_rows])
        self.dense_ = self._dense().fit(E[rows], target[rows])

    def fit(self, X, y):
        texts = list(X)
        target = np.asarray(y, dtype=object)
        if len(texts) != len(target):
            raise ValueError(f"{len(texts)} texts but {len(target)} codes")
        self.classes_ = np.array(sorted(set(target)), dtype=object)
        if len(self.classes_) < 2:
            raise ValueError("needs labelled texts of at least two codes")
        # The n-gram vocabulary and idf come from all training texts (no labels), as in ThreadFeatures.
        self.features_ = _features()
        Xl = self.features_.fit_transform(texts)
        E = self._embed(texts)
        # Small dense solves: BLAS threads only contend (5 s instead of 0.3 s a fit on 2 busy cores).
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            # A code rarer than the folds still lands in the training part of most of them.
            warnings.filterwarnings("ignore", message="The least populated class")
            folds = int(min(self.folds, pd.Series(target).value_counts().max()))
            splits = StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(texts, target)
            meta_X = np.zeros((len(texts), 2 * len(self.classes_)))
            for train, held in splits:
                self._fit_halves(Xl, E, target, train)
                meta_X[held] = self._halves(Xl[held], E[held])
            self._fit_halves(Xl, E, target, np.arange(len(texts)))
            if self.combiner == "pool":
                k = len(self.classes_)
                y_index = np.searchsorted(self.classes_, target)
                self.meta_ = LogPool().fit([meta_X[:, :k], meta_X[:, k:]], y_index)
            else:
                self.meta_ = LogisticRegression(C=self.meta_C, max_iter=3000).fit(meta_X, target)
        return self

    def predict_proba(self, X) -> np.ndarray:
        texts = list(X)
        Xl, E = self.features_.transform(texts), self._embed(texts)
        with threadpool_limits(limits=1, user_api="blas"):
            halves = self._halves(Xl, E)
            if self.combiner == "pool":
                k = len(self.classes_)
                return self.meta_.predict_proba([halves[:, :k], halves[:, k:]])
            return _aligned(self.meta_, halves, self.classes_)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
