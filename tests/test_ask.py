"""Ask: hybrid retrieval over resolved threads, the likely category and fix, a grounded draft."""

import json

import pandas as pd
import pytest
from chat_server import ChatServer
from conftest import SHARED, run_cli

from devquarry import Store, ingest_stackexchange, ingest_table
from devquarry.ask import ask, open_index
from devquarry.ask.answer import hit_bodies
from devquarry.ask.draft import ABSTAIN, count_tokens, draft

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="real corpora not found")
OFF_TOPIC = "What temperature should I bake a rye sourdough loaf at, and for how long?"


@pytest.fixture(scope="module")
def se_db(tmp_path_factory):
    """The cstheory-meta dump: 589 questions, 206 with an accepted answer held in the store."""
    db = tmp_path_factory.mktemp("ask") / "se.duckdb"
    with Store(db) as s:
        ingest_stackexchange(s, SHARED / "stackexchange-dump-cstheory-meta")
    return db


def test_ask_finds_the_resolved_thread_and_its_answer(se_db):
    with Store(se_db) as s:
        target = s.query("""SELECT t.source_id, t.title, t.body_text FROM threads t JOIN replies r ON r.source = t.source
                            AND r.thread_id = t.source_id WHERE t.is_resolved AND r.is_accepted ORDER BY t.views DESC LIMIT 1""").iloc[
            0
        ]
        # A new question in the words of the resolved one: its title and the start of its body.
        hits = ask(s, f"{target.title} {target.body_text[:300]}", k=5, embedding="lsa")
        unresolved = set(s.query("SELECT source_id FROM threads WHERE NOT is_resolved").source_id)
    assert hits.source_id.iloc[0] == target.source_id and hits.attrs["confident"]
    assert not set(hits.source_id) & unresolved  # only resolved threads answer
    assert isinstance(hits.answer.iloc[0], str) and len(hits.answer.iloc[0]) > 20
    assert hits.url.iloc[0].startswith("https://cstheory.meta.stackexchange.com/questions/")
    assert (hits.score.diff().dropna() <= 0).all()
    off = None
    with Store(se_db) as s:
        off = ask(s, OFF_TOPIC, k=5, embedding="lsa")
    assert not off.attrs["confident"]


def test_index_is_persisted_and_updated_incrementally(so_copy, tmp_path):
    with Store(so_copy) as s:
        index, first = open_index(s, "lsa")
        resolved = s.con.execute("SELECT count(*) FROM threads WHERE is_resolved").fetchone()[0]
        assert first["added"] == first["documents"] and resolved - 10 < first["documents"] <= resolved  # copies merged
        _, again = open_index(s, "lsa")
        assert again == {"documents": first["documents"], "added": 0, "removed": 0, "refit": False}
        new = tmp_path / "new.csv"
        pd.DataFrame(
            [
                {
                    "url": "https://stackoverflow.com/questions/1/x",
                    "title": "Whisper transcribes my mp3 with timestamps off by 30s",
                    "body": "the segments drift",
                    "has_accepted_answer": 1,
                    "created_time": "2024-05-01",
                }
            ]
        ).to_csv(new, index=False)
        ingest_table(s, [new], source="stackoverflow", mapping="created_at=created_time,is_resolved=has_accepted_answer")
        index, third = open_index(s, "lsa")
    assert third["added"] == 1 and third["documents"] == first["documents"] + 1 and not third["refit"]
    assert index.search("whisper timestamps drift mp3", k=1).key.iloc[0] == "stackoverflow|1"


def test_category_and_fix_from_the_neighbours(so_labelled_copy):
    with Store(so_labelled_copy) as s:
        hits = ask(
            s,
            "How do I prepare a JSONL training file to fine-tune gpt-3.5-turbo on my examples?",
            k=10,
            codebook="chen2025-so-api",
            embedding="lsa",
        )
    assert hits.attrs["category"] == "fine-tuning" and hits.attrs["fix"] == "fine-tuning"
    assert 0.5 <= hits.attrs["category_share"] <= 1.0


def test_draft_cites_the_threads_and_abstains(se_db, monkeypatch):
    with Store(se_db) as s:
        target = s.query("SELECT title FROM threads WHERE is_resolved ORDER BY views DESC LIMIT 1").title.iloc[0]
        hits = ask(s, target, k=4, embedding="lsa")
        bodies = hit_bodies(s, hits)
        off = ask(s, OFF_TOPIC, k=4, embedding="lsa")
    with ChatServer(fail_first=1) as chat:
        monkeypatch.setenv("DEVQUARRY_OPENAI_BASE_URL", chat.base)
        monkeypatch.setenv("DEVQUARRY_CHAT_MODEL", "local-test-model")
        monkeypatch.setenv("DEVQUARRY_OPENAI_API_KEY", "sk-local-secret")
        d = draft(target, hits, bodies, confident=hits.attrs["confident"], context_tokens=1500, answer_tokens=256)
        assert len(chat.requests) == 2  # a 500, then the retry
        sent = chat.requests[-1]
        assert sent["auth"] == "Bearer sk-local-secret" and sent["body"]["model"] == "local-test-model"
        prompt = sent["body"]["messages"][-1]["content"]
        # Only the retrieved threads, numbered, within the context window.
        assert all(f"[{i}] {t}" in prompt for i, t in enumerate(hits.title, 1))
        assert d.prompt_tokens + 256 <= 1500 and count_tokens(prompt) <= 1500
        assert d.citations == [1, 2] and "[9]" not in d.text and not d.abstained
        n = len(chat.requests)
        abstained = draft(OFF_TOPIC, off, {}, confident=off.attrs["confident"])
        assert abstained.abstained and abstained.text == ABSTAIN and len(chat.requests) == n  # no call made


def test_cli_ask_json_and_draft(se_db, tmp_path):
    with ChatServer() as chat:
        env = {"DEVQUARRY_OPENAI_BASE_URL": chat.base, "DEVQUARRY_CHAT_MODEL": "m", "DEVQUARRY_OPENAI_API_KEY": "sk-cli-secret"}
        with Store(se_db, read_only=True) as s:
            title = s.query("SELECT title FROM threads WHERE is_resolved ORDER BY views DESC LIMIT 1").title.iloc[0]
        proc = run_cli("ask", title, "--k", "3", "--embedding", "lsa", "--draft", "--json", db=se_db, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["hits"]) == 3 and out["confident"] and out["draft"]["citations"] == [1, 2]
    assert "sk-cli-secret" not in proc.stdout + proc.stderr
    bad = run_cli("ask", title, "--fusion", "max", db=se_db)
    assert bad.returncode == 2 and "fusion" in bad.stderr
    missing = run_cli("ask", title, "--embedding", "lsa", "--draft", db=se_db, env={"DEVQUARRY_OPENAI_BASE_URL": ""})
    assert missing.returncode == 2 and "DEVQUARRY_CHAT_MODEL" in missing.stderr
