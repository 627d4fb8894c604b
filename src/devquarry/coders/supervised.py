"""The lexical supervised coder: TF-IDF word and character n-grams and a linear SVM, calibrated
(sigmoid) so that scores are probabilities; multi-label aware (one calibrated model per code)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_union
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from devquarry.text import thread_text

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
        svm = LinearSVC(C=self.C, class_weight="balanced", random_state=0)  # liblinear shuffles: fixed for reproducible codes
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
    """TF-IDF features shared by the coders of one ``classify`` run (the code coder and the
    relevance coder), looked up by (source, source_id). The vocabulary and idf are learnt from the
    training threads (``fit_frame``) only, so a thread's features, and its codes, depend on the
    training labels and its own text, not on what else is in the store or being coded."""

    def __init__(self, fit_frame: pd.DataFrame, apply_to: list[pd.DataFrame] = ()) -> None:
        # ``apply_to`` is accepted for the callers that name what they will code; their rows are
        # made when asked for (``of``), a chunk at a time: the character n-grams of 100,000 threads
        # held at once took 8 GB.
        rows = fit_frame[["source", "source_id", "title", "body_text"]].drop_duplicates(["source", "source_id"])
        rows = rows.reset_index(drop=True)
        self.index = {key: n for n, key in enumerate(zip(rows.source, rows.source_id))}
        self.vectorizer = _features()
        self.matrix = sp.csr_matrix(
            self.vectorizer.fit_transform([thread_text(t, b) for t, b in zip(rows.title, rows.body_text)])
        )

    def of(self, frame: pd.DataFrame) -> sp.csr_matrix:
        """The rows of ``frame``'s threads (title and body_text): the training rows as fitted, the
        others transformed now (a row depends on its own text only)."""
        at = np.array([self.index.get(key, -1) for key in zip(frame.source, frame.source_id)], dtype=int)
        new = np.flatnonzero(at < 0)
        if not len(new):
            return self.matrix[at]
        titles, bodies = frame.title.to_numpy()[new], frame.body_text.to_numpy()[new]
        extra = self.vectorizer.transform([thread_text(t, b) for t, b in zip(titles, bodies)])
        at[new] = self.matrix.shape[0] + np.arange(len(new))
        return sp.vstack([self.matrix, extra], format="csr")[at]
