"""New threads go into an existing topic run (`topics --assign-new`) instead of a refit."""

import json

import pandas as pd
from conftest import SHARED, SO_MAP, run_cli

from devquarry import Store, ingest_table
from devquarry.topics import fit_topics


def test_new_threads_join_the_topics_their_copies_were_given(tmp_path):
    path = SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz"
    db = tmp_path / "t.duckdb"
    with Store(db) as s:
        ingest_table(s, [path], source="first", mapping=SO_MAP)
        run = fit_topics(s, themes=4, bertopic_model=False, quality=False).run_id
    # The same 2,299 questions again, as a second source: every one is new to the run.
    r = run_cli("ingest", "table", str(path), "--source", "second", "--map", SO_MAP, db=db)
    assert r.returncode == 0, r.stderr
    r = run_cli("topics", "--assign-new", "--json", db=db)
    assert r.returncode == 0, r.stderr
    new = pd.DataFrame(json.loads(r.stdout))
    assert len(new) == 2299 and set(new.source) == {"second"}
    with Store(db, read_only=True) as s:
        fitted = s.query("SELECT source_id, topic_id FROM topic_assignment WHERE run_id = ? AND source = 'first'", [run])
        added = s.query("SELECT source_id, topic_id FROM topic_assignment WHERE run_id = ? AND source = 'second'", [run])
        counts = json.loads(s.con.execute("SELECT counts FROM run WHERE command = 'topics-assign'").fetchone()[0])
    assert len(added) == 2299 and counts["threads"] == 2299
    pairs = fitted.merge(added, on="source_id", suffixes=("_fit", "_new"))
    agreement = float((pairs.topic_id_fit == pairs.topic_id_new).mean())
    # The nearest centroid in the full space against k-means in 50 PCA dimensions, small topics folded.
    assert agreement >= 0.8, agreement
    # A second call finds nothing new; the run's fitted assignments never moved.
    r = run_cli("topics", "--assign-new", "--json", db=db)
    assert r.returncode == 0 and json.loads(r.stdout) == []
    with Store(db, read_only=True) as s:
        again = s.query("SELECT source_id, topic_id FROM topic_assignment WHERE run_id = ? AND source = 'first'", [run])
    assert again.sort_values("source_id").equals(fitted.sort_values("source_id"))
