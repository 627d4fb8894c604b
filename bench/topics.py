"""devquarry's default topic pipeline against BERTopic's default, on the same corpus, in one process.

Corpus: the 2,299 hand-labelled Stack Overflow questions (title plus body).
- BERTopic default: all-MiniLM-L6-v2 (the packaged copy, loaded offline) embeddings, UMAP,
  HDBSCAN, BERTopic's default settings (min_topic_size 10, CountVectorizer without stop words).
- devquarry default: the default embedding (LSA: TF-IDF and truncated SVD), PCA to 50 dimensions, k-means with a minimum topic size,
  BM25-weighted c-TF-IDF without English stop words (scikit-learn only; no BERTopic, so no KeyBERT-like list).
Both timed from raw text to topics, model loading included, nothing cached. NPMI and diversity
over the top 10 words of each topic (outliers excluded), with the same tokenizer and corpus.

BERTopic's default UMAP is unseeded, so its figures vary from run to run: --repeats runs it
several times and prints each run and the mean.

Usage: python bench/topics.py [--repeats 1] [--embedding lsa|static|minilm] [--only-devquarry]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from common import labelled_questions

from devquarry.embeddings import get_embedder
from devquarry.text import thread_text
from devquarry.topics.ctfidf import TOP_N_WORDS, class_tfidf
from devquarry.topics.pipeline import kmeans_topics
from devquarry.topics.quality import npmi_coherence, topic_diversity

DOCS: list[str] = []  # the corpus NPMI is measured over


def score(name: str, seconds: float, words: list[list[str]], labels) -> dict:
    labels = np.asarray(labels)
    row = {
        "pipeline": name,
        "seconds": seconds,
        "topics": len(words),
        "outliers": float(np.mean(labels == -1)),
        "npmi": npmi_coherence(words, DOCS),
        "diversity": topic_diversity(words),
    }
    print(
        f"{name:18s} {seconds:8.1f} s  topics {row['topics']:3d}  outliers {row['outliers']:.1%}  "
        f"NPMI {row['npmi']:.3f}  diversity {row['diversity']:.3f}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--only-devquarry", action="store_true", help="skip BERTopic's default (needs the [bertopic] and [minilm] extras)"
    )
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--embedding", default=None, help="devquarry's embedding (default: the default backend)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    df = labelled_questions()
    docs = DOCS[:] = [thread_text(t, b) for t, b in zip(df.title, df.body)]
    print(f"{len(docs)} questions (title + body)")

    t0 = time.perf_counter()
    emb = get_embedder(args.embedding)
    vectors = emb.encode(docs)
    labels = kmeans_topics(vectors)
    keywords = class_tfidf(docs, labels).top_words(TOP_N_WORDS)
    ours = score(f"devquarry ({emb.backend})", time.perf_counter() - t0, [keywords[t] for t in sorted(keywords)], labels)

    if args.only_devquarry:
        return
    from bertopic import BERTopic
    from sentence_transformers import SentenceTransformer

    from devquarry.embeddings.minilm import packaged_minilm

    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        st = SentenceTransformer(str(packaged_minilm()), device="cpu")
        base_model = BERTopic(embedding_model=st)
        base_labels, _ = base_model.fit_transform(docs)
        words = [[w for w, _ in base_model.get_topic(t)][:TOP_N_WORDS] for t in sorted(set(base_labels)) if t != -1]
        runs.append(score("BERTopic default", time.perf_counter() - t0, words, base_labels))
    base = {k: float(np.mean([r[k] for r in runs])) for k in ("seconds", "npmi", "diversity", "outliers")}
    if args.repeats > 1:
        print(
            f"BERTopic mean of {args.repeats}: {base['seconds']:.1f} s  NPMI {base['npmi']:.3f}  diversity {base['diversity']:.3f}  outliers {base['outliers']:.1%}"
        )

    print(
        f"speed-up: {base['seconds'] / ours['seconds']:.1f}x;  NPMI {ours['npmi'] - base['npmi']:+.3f};  "
        f"diversity {ours['diversity'] - base['diversity']:+.3f};  outliers {ours['outliers']:.1%} vs {base['outliers']:.1%}"
    )


if __name__ == "__main__":
    main()
