"""Compare embedding backends on the 2,299 hand-labelled Stack Overflow questions.

For each backend, in one process: texts per second (title + body, nothing cached); topic
quality of devquarry's default topic pipeline on those vectors (NPMI coherence and diversity of
the top 10 words); macro-F1 of a logistic regression predicting the nine hand labels from the
vectors (5-fold stratified cross-validation); and title-to-own-body retrieval recall@10 (each
title is a query, its own question body the one relevant document among all 2,299 bodies).

Usage: python bench/embeddings.py [--backends static,minilm,lsa] [--openai MODEL]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from common import labelled_questions
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from devquarry.embeddings import get_embedder
from devquarry.text import thread_text
from devquarry.topics.ctfidf import class_tfidf
from devquarry.topics.pipeline import kmeans_topics
from devquarry.topics.quality import npmi_coherence, topic_diversity


def recall_at(queries: np.ndarray, docs: np.ndarray, k: int = 10) -> float:
    sims = queries @ docs.T
    own = np.diag(sims)
    rank = (sims > own[:, None]).sum(axis=1)  # documents scored above the right one
    return float(np.mean(rank < k))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="static,minilm,lsa")
    ap.add_argument("--openai", default=None, help="also an OpenAI-compatible model (endpoint and key from the environment)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    df = labelled_questions()
    docs = [thread_text(t, b) for t, b in zip(df.title, df.body)]
    titles = df.title.tolist()
    bodies = [b[:4000] or t for t, b in zip(df.title, df.body)]
    y = df["type"].astype(str).to_numpy()
    names = [b for b in args.backends.split(",") if b] + ([f"openai:{args.openai}"] if args.openai else [])
    print(f"{len(docs)} questions, {len(set(y))} labels")
    print(f"{'backend':10s} {'dim':>5s} {'texts/s':>9s} {'NPMI':>7s} {'diversity':>9s} {'macro-F1':>9s} {'recall@10':>9s}")
    rows = []
    for name in names:
        emb = get_embedder(name)
        if hasattr(emb, "_load"):
            emb._load()  # model loading is not embedding speed
        t0 = time.perf_counter()
        vectors = emb.encode(docs)
        rate = len(docs) / (time.perf_counter() - t0)
        labels = kmeans_topics(vectors)
        top = class_tfidf(docs, labels).top_words()
        words = [top[t] for t in sorted(top) if t != -1]
        npmi, div = npmi_coherence(words, docs), topic_diversity(words)
        f1 = cross_val_score(
            LogisticRegression(max_iter=2000, C=10.0),
            vectors,
            y,
            scoring="f1_macro",
            cv=StratifiedKFold(5, shuffle=True, random_state=42),
        ).mean()
        if name == "lsa":  # LSA is fitted per corpus: queries and bodies share one fit
            emb.fit(docs)
        q, d = emb.encode(titles), emb.encode(bodies)
        r10 = recall_at(q, d)
        rows.append((name, vectors.shape[1], rate, npmi, div, f1, r10))
        print(f"{name:10s} {vectors.shape[1]:5d} {rate:9.1f} {npmi:7.3f} {div:9.3f} {f1:9.3f} {r10:9.3f}", flush=True)
    base = next((r for r in rows if r[0] == "minilm"), None)
    if base:
        for r in rows:
            print(
                f"{r[0]:10s} speed x{r[2] / base[2]:.1f} of minilm; macro-F1 {r[5] - base[5]:+.3f}; recall@10 {r[6] - base[6]:+.3f}"
            )


if __name__ == "__main__":
    main()
