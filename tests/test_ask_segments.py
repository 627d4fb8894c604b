"""The ask index grows by segments (issue 17: 1% more threads must not cost a third of a full
build): new and changed threads become a new segment, replaced and removed ones are masked, and
BM25 scores stay those of one index built anew over the documents that count."""

from __future__ import annotations

import hashlib
import json

import bm25s
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from devquarry.ask.bm25 import Bm25, Postings
from devquarry.ask.index import HybridIndex
from devquarry.ask.tokens import tokenize
from devquarry.demo import demo_corpus

QUERIES = [
    "rate limit error from the OpenAI API",
    "fine tune a model on my own data",
    "embeddings vector database similarity search",
    "langchain agent tool calling memory",
]


@pytest.fixture(scope="module")
def docs() -> pd.DataFrame:
    rows = pd.read_csv(demo_corpus()).head(1200)
    text = (rows.title.fillna("") + "\n\n" + rows.body.fillna("")).tolist()
    return pd.DataFrame(
        {"key": [f"so|{i}" for i in range(len(rows))], "hash": [hashlib.md5(t.encode()).hexdigest() for t in text], "text": text}
    )


def _bm25(index: HybridIndex, query: str, k: int = 20) -> pd.DataFrame:
    hits = index.search(query, k=k, mode="bm25")
    return hits[["key", "score"]].reset_index(drop=True)


def test_postings_score_as_bm25s_does(docs):
    tokens = tokenize(docs.text.tolist())
    reference = bm25s.BM25()
    reference.index(tokens, show_progress=False)
    column = pa.array(tokens, pa.list_(pa.string()))
    ours = Bm25([Postings.of(column.slice(0, 500)), Postings.of(column.slice(500))])  # two segments, one index
    for q in QUERIES:
        terms = [t for t in tokenize([q])[0] if t in reference.vocab_dict]
        np.testing.assert_allclose(ours.scores(terms), reference.get_scores(terms), rtol=1e-5, atol=1e-5)
    # Dead positions count in no statistic: the scores of an index of the others alone.
    live = np.ones(len(docs), bool)
    live[100:300] = False
    alone = Bm25([Postings.of(column.filter(pa.array(live)))])
    terms = tokenize([QUERIES[0]])[0]
    np.testing.assert_allclose(Bm25([Postings.of(column)], live).scores(terms)[live], alone.scores(terms), rtol=1e-6)


def test_an_update_adds_a_segment_and_searches_as_a_fresh_build(docs, tmp_path):
    index = HybridIndex(tmp_path / "grown", "lsa")
    first = index.update(docs.iloc[:1000])
    assert first["added"] == 1000 and first["merged"] and len(index.segments) == 1
    vectors_before = index.vectors.copy()
    # 1% more threads, one changed, one gone: a second segment, two positions masked.
    changed = docs.iloc[:1010].drop(index=[7]).copy()
    changed.loc[3, ["text", "hash"]] = ["How do I stream a chat completion token by token?", "new-hash"]
    second = index.update(changed)
    assert second == {"documents": 1009, "added": 11, "removed": 1, "refit": False, "merged": False}
    assert [len(s) for s in index.segments] == [1000, 11] and index.size == 1009 and (~index.live).sum() == 2
    np.testing.assert_array_equal(index.vectors[:1000], vectors_before)  # the kept vectors untouched
    fresh = HybridIndex(tmp_path / "fresh", "lsa")
    fresh.update(changed)
    for q in [*QUERIES, "stream a chat completion token by token"]:
        grown, built = _bm25(index, q), _bm25(fresh, q)
        assert grown.key.tolist() == built.key.tolist(), q
        np.testing.assert_allclose(grown.score, built.score, rtol=1e-5)
    assert "so|7" not in set(index.search(docs.text[7][:300], k=50).key)
    top = index.search("stream a chat completion token by token", k=1)
    assert top.key.iloc[0] == "so|3"
    # The second run: a reopened index is the same index, and the same update changes nothing.
    reopened = HybridIndex(tmp_path / "grown", "lsa")
    assert reopened.discarded is None and [s.name for s in reopened.segments] == [s.name for s in index.segments]
    assert reopened.size == 1009 and reopened.update(changed) == {"documents": 1009, "added": 0, "removed": 0, "refit": False}
    for q in QUERIES:
        pd.testing.assert_frame_equal(reopened.search(q, k=10), index.search(q, k=10))


def test_the_segments_merge_past_a_quarter_and_keep_their_tokens_and_vectors(docs, tmp_path):
    index = HybridIndex(tmp_path / "i", "lsa")
    index.update(docs.iloc[:800])
    fitted = index.embedder
    # +5% each: the seventh takes the segments after the first past a quarter of the positions.
    steps = [index.update(docs.iloc[: 800 + 40 * i]) for i in range(1, 8)]
    assert [s["merged"] for s in steps] == [False] * 6 + [True]
    assert len(index.segments) == 1 and index.live is None and index.size == 1080 and index.embedder is fitted
    fresh = HybridIndex(tmp_path / "fresh", "lsa")
    fresh.update(docs.iloc[:1080])
    for q in QUERIES:
        assert _bm25(index, q).key.tolist() == _bm25(fresh, q).key.tolist(), q
    gen = index.folder.resolve()
    info = json.loads((gen / "index.json").read_text())
    assert info["segments"] == [index.segments[0].name] and info["dead"] == 0
    assert sorted(p.name for p in gen.iterdir()) == sorted([index.segments[0].name, "embedder.joblib", "index.json"])


def test_a_delta_save_writes_only_the_new_segment(docs, tmp_path):
    index = HybridIndex(tmp_path / "i", "lsa")
    index.update(docs.iloc[:1000])
    base = index.folder.resolve() / index.segments[0].name / "vectors.npy"
    inode = base.stat().st_ino
    index.update(docs.iloc[:1005])
    gen = index.folder.resolve()
    # The first segment and the fitted model are the same files, linked into the new generation.
    assert (gen / index.segments[0].name / "vectors.npy").stat().st_ino == inode
    assert (gen / "embedder.joblib").stat().st_nlink == 1  # the previous generation is gone
    assert len(list(gen.parent.glob("i.gen-*"))) == 1
