"""What a newcomer hits with `ask` (issue 11): a reopened index, progress, an empty store, urls, abstention."""

import json
import shutil

import pandas as pd
import pytest
from conftest import run_cli

from devquarry import Store, ingest_table
from devquarry.ask import ask, open_index, similar_resolved
from devquarry.demo import DEMO_MAPPING, DEMO_SOURCE, demo_corpus
from devquarry.errors import InputError

OFF_SUBJECT = "What temperature should I bake a rye sourdough loaf at, and for how long?"
MAPPING = ",".join(f"{k}={v}" for k, v in DEMO_MAPPING.items())


def _small_store(tmp_path, resolved: int, unresolved: int = 0):
    """A store of the demo corpus's first ``resolved`` answered (and ``unresolved`` unanswered) questions."""
    rows = pd.read_csv(demo_corpus())
    answered = rows.has_accepted_answer.astype(str).str.lower().isin(["1", "true"])
    cut = pd.concat([rows[answered].head(resolved), rows[~answered].head(unresolved)])
    path = tmp_path / "cut.csv"
    cut.to_csv(path, index=False)
    db = tmp_path / "small.duckdb"
    with Store(db) as s:
        ingest_table(s, [path], source=DEMO_SOURCE, mapping=MAPPING)
    return db


@pytest.mark.slow
def test_minilm_index_reopens_in_a_new_process_and_in_the_same_one(tmp_path):
    db = _small_store(tmp_path, 150)
    question = "How do I handle the rate limit error from the OpenAI API?"
    first = run_cli("ask", question, "--json", db=db, env={"DEVQUARRY_PROGRESS": "1"})
    second = run_cli("ask", question, "--json", db=db)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "indexing resolved threads (minilm)" in first.stderr and "indexing" not in second.stderr  # progress on stderr
    folder = db.with_name(db.name + ".index") / "minilm"
    assert list(folder.glob("seg-*/vectors.npy")) and not (folder / "embedder.joblib").exists()  # MiniLM is made again by name
    top = json.loads(first.stdout)["hits"][0]["source_id"]
    assert json.loads(second.stdout)["hits"][0]["source_id"] == top
    with Store(db) as s:  # twice in one process: each call reopens the persisted index
        a = ask(s, question, embedding="minilm")
        b = ask(s, question, embedding="minilm")
    assert a.source_id.iloc[0] == b.source_id.iloc[0] == top
    n = a.attrs["index"]["documents"]  # 150 less the copies merged (same title and time)
    assert a.attrs["index"] == {"documents": n, "added": 0, "removed": 0, "refit": False} and 140 < n <= 150
    assert f"{n}/{n}" in first.stderr  # the bar counted every embedded question


def test_index_build_reports_progress(demo_copy):
    from devquarry.ask.answer import index_backlog

    shutil.rmtree(demo_copy.with_name(demo_copy.name + ".index"), ignore_errors=True)
    with Store(demo_copy) as s:
        todo = index_backlog(s, "lsa")
        seen = []
        _, changes = open_index(s, "lsa", progress=seen.append)
        assert index_backlog(s, "lsa") == 0
    assert todo == changes["documents"] == sum(seen) > 700


def test_long_url_printed_whole_and_the_same_top_hit_twice(demo_copy):
    with Store(demo_copy, read_only=True) as s:
        title, url = s.query("""SELECT title, url FROM threads WHERE is_resolved AND length(url) > 110
                                ORDER BY length(url) DESC, source_id LIMIT 1""").iloc[0]
    runs = [run_cli("ask", title, "--embedding", "lsa", db=demo_copy) for _ in range(2)]
    assert all(p.returncode == 0 for p in runs), runs[-1].stderr
    assert runs[0].stdout == runs[1].stdout
    lines = runs[0].stdout.splitlines()
    assert f"[1] {url}" in lines  # the top hit's url, whole, on a line of its own
    assert "…" not in runs[0].stdout


def test_off_subject_question_names_no_category_or_fix(demo_copy):
    table = run_cli("ask", OFF_SUBJECT, "--embedding", "lsa", db=demo_copy)
    assert table.returncode == 0, table.stderr
    assert "retrieval is not confident" in table.stdout
    assert "likely category" not in table.stdout and "fix:" not in table.stdout
    js = run_cli("ask", OFF_SUBJECT, "--embedding", "lsa", "--json", db=demo_copy)
    out = json.loads(js.stdout)
    assert out["confident"] is False
    assert out["category"] is None and out["fix"] is None and out["category_share"] is None
    assert out["category_vote"]["category"] in {
        "chat",
        "embeddings",
        "audio",
        "assistants",
        "fine-tuning",
        "image-generation",
        "code-generation",
        "gpt-actions",
        "others",
    }
    with Store(demo_copy, read_only=True) as s:
        hits = ask(s, OFF_SUBJECT, embedding="lsa", codebook="chen2025-so-api")
    assert hits.attrs["category"] is None and hits.attrs["fix"] is None and not hits.attrs["confident"]


def test_ask_on_a_store_with_nothing_resolved(tmp_path):
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    open_only = _small_store(tmp_path, 0, unresolved=20)
    for db, embedding in ((empty, "minilm"), (open_only, "lsa")):
        proc = run_cli("ask", "rate limit", "--embedding", embedding, db=db)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
        assert str(db) in proc.stderr and "no resolved threads" in proc.stderr
    with Store(open_only) as s:
        assert similar_resolved(s, [{"source": DEMO_SOURCE, "source_id": "1", "title": "rate limit", "body_text": ""}]) == {
            f"{DEMO_SOURCE}|1": []
        }


def test_a_source_choice_filters_the_one_index(demo_copy):
    with Store(demo_copy) as s:
        ask(s, "rate limit", embedding="lsa")
        with pytest.raises(InputError, match="no resolved threads of source github:nobody/none"):
            ask(s, "rate limit", embedding="lsa", sources=["github:nobody/none"])
        only = ask(s, "rate limit", embedding="lsa", sources=[DEMO_SOURCE])
        again = ask(s, "rate limit", embedding="lsa")
    assert set(only.source) == {DEMO_SOURCE}
    # Choosing a source neither dropped the others from the index nor made the next call embed them again.
    assert again.attrs["index"]["added"] == 0 and only.attrs["index"]["removed"] == 0


def test_lsa_ask_on_a_store_with_two_resolved_threads(tmp_path, shared):
    """A small forum list has 2 resolved threads of 30: LSA's word cuts left no vocabulary (ValueError, exit 1)."""
    from devquarry.embeddings.lsa import LSAEmbedder

    db = tmp_path / "forum.duckdb"
    assert run_cli("ingest", "discourse", str(shared / "discourse-openai-forum" / "latest.json"), db=db).returncode == 0
    for _ in range(2):  # the second ask reopens the index
        proc = run_cli("ask", "rate limit", "--embedding", "lsa", "--json", db=db)
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)["hits"]) == 2
    docs = ["rate limit error with the api key", "rate limit error with the api key again"]
    assert LSAEmbedder().fit(docs).encode(docs).shape[0] == 2
