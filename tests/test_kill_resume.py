"""A long embedding killed midway keeps the chunks it committed, and the next run encodes only the
rest: at a million threads a kill must not throw away hours of MiniLM."""

import pandas as pd
import pytest
from conftest import run_cli

from devquarry import Store, ingest_table
from devquarry.demo import DEMO_MAPPING, DEMO_SOURCE, demo_corpus
from devquarry.embeddings.cache import CHUNK_ENV, KILL_AFTER_ENV

pytest.importorskip("sentence_transformers")


def test_a_killed_embedding_keeps_whole_chunks_and_resumes(tmp_path):
    rows = pd.read_csv(demo_corpus()).head(300)
    rows.to_csv(tmp_path / "cut.csv", index=False)
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        ingest_table(s, [tmp_path / "cut.csv"], source=DEMO_SOURCE, mapping=DEMO_MAPPING)
    args = ("topics", "--embedding", "minilm@64", "--no-bertopic-model", "--json")
    killed = run_cli(*args, db=db, env={CHUNK_ENV: "64", KILL_AFTER_ENV: "2"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    with Store(db, read_only=True) as s:
        kept = s.con.execute("SELECT count(*) FROM embedding").fetchall()[0][0]
        runs = s.con.execute("SELECT count(*) FROM run WHERE command = 'topics'").fetchall()[0][0]
    assert kept == 128 and runs == 0  # two whole chunks; no topic run half saved
    done = run_cli(*args, db=db, env={CHUNK_ENV: "64"})
    assert done.returncode == 0, done.stderr[-2000:]
    with Store(db, read_only=True) as s:
        texts = s.con.execute("SELECT count(DISTINCT title || coalesce(body_text, '')) FROM thread").fetchall()[0][0]
        total = s.con.execute("SELECT count(*) FROM embedding").fetchall()[0][0]
        runs = s.con.execute("SELECT count(*) FROM run WHERE command = 'topics'").fetchall()[0][0]
    assert total == texts and runs == 1
