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


def test_a_store_above_the_fit_sample_is_modelled_on_a_sample_and_every_thread_gets_a_topic(tmp_path):
    path = SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz"
    db = tmp_path / "t.duckdb"
    with Store(db) as s:
        for source in ("first", "second"):  # every question twice: 4,598 threads
            ingest_table(s, [path], source=source, mapping=SO_MAP)
    r = run_cli("topics", "--fit-sample", "2000", "--themes", "4", "--no-bertopic-model", "--json", db=db)
    assert r.returncode == 0, r.stderr
    with Store(db, read_only=True) as s:
        run, params, scores = s.con.execute("SELECT run_id, params, counts FROM run WHERE command = 'topics'").fetchone()
        assigned = s.query("SELECT source, source_id, topic_id FROM topic_assignment WHERE run_id = ?", [run])
        sizes = s.query("SELECT topic_id, size FROM topic WHERE run_id = ?", [run])
    params, scores = json.loads(params), json.loads(scores)
    assert params["fit_sample"] == 2000
    assert scores["n_docs"] == 4598 and scores["fit_docs"] == 2000 and scores["assigned_to_centroid"] == 2598
    # One topic for every thread, counted in the topic sizes; as many topics as a fit on 2,000 makes.
    assert len(assigned) == 4598 and not assigned.duplicated(["source", "source_id"]).any()
    assert int(sizes["size"].sum()) == 4598 and (assigned.topic_id >= 0).all()
    assert 20 <= len(sizes) <= 35, len(sizes)
    # A copy left out of the sample joins the topic its twin was fitted into.
    pairs = assigned[assigned.source == "first"].merge(assigned[assigned.source == "second"], on="source_id")
    assert float((pairs.topic_id_x == pairs.topic_id_y).mean()) >= 0.8
    # The sample is seeded: a second run gives every thread the same topic.
    with Store(db) as s:
        again = fit_topics(s, fit_sample=2000, themes=4, bertopic_model=False, quality=False).run_id
        second = s.query("SELECT source, source_id, topic_id FROM topic_assignment WHERE run_id = ?", [again])
    key = ["source", "source_id"]
    assert second.sort_values(key, ignore_index=True).equals(assigned.sort_values(key, ignore_index=True))
