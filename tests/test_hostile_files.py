"""Files that survive a kill and paths that do not bite (issue 13 items 3 and 9): the ask index is
replaced whole or not at all and checked when opened; report and tables write only where told; a
codebook given as a YAML file keeps working once its labels are in the store."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from devquarry import Store, ingest_table
from devquarry.ask import open_index
from devquarry.ask.answer import forget_indexes, thread_docs
from devquarry.ask.index import KILL_AT_ENV, SAVE_STEPS, HybridIndex
from devquarry.codebooks.loader import _shipped
from devquarry.demo import DEMO_MAPPING, DEMO_SOURCE, demo_corpus

MAPPING = ",".join(f"{k}={v}" for k, v in DEMO_MAPPING.items())
QUESTION = "How do I handle the rate limit error from the OpenAI API?"


def _cut(tmp_path, name: str, start: int, resolved: int, unresolved: int = 0):
    rows = pd.read_csv(demo_corpus())
    answered = rows.has_accepted_answer.astype(str).str.lower().isin(["1", "true"])
    cut = pd.concat([rows[answered].iloc[start : start + resolved], rows[~answered].iloc[start : start + unresolved]])
    path = tmp_path / name
    cut.to_csv(path, index=False)
    return path


def _store(tmp_path, resolved: int = 40, unresolved: int = 0):
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        ingest_table(s, [_cut(tmp_path, "first.csv", 0, resolved, unresolved)], source=DEMO_SOURCE, mapping=MAPPING)
    return db


def _consistent(index: HybridIndex) -> int:
    n = index.size
    assert len(index.docs) == len(index.tokens) == index.vectors.shape[0] == index.bm25.size >= n == index.bm25.num_docs
    return n


def _one_line_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for w in words:
        assert w in lines[0], proc.stderr


# -- item 3: the ask index ------------------------------------------------------------------


@pytest.mark.parametrize("step", SAVE_STEPS)
def test_a_kill_at_any_step_of_the_index_save_leaves_a_whole_index(tmp_path, step):
    db = _store(tmp_path, 30)
    with Store(db) as s:
        first = _consistent(open_index(s, "lsa")[0])
        # Twice as many threads: the LSA model is fitted again, so every file of the index is rewritten.
        ingest_table(s, [_cut(tmp_path, "more.csv", 30, 30)], source=DEMO_SOURCE, mapping=MAPPING)
        wanted = len(thread_docs(s))
    assert wanted > first
    killed = run_cli("ask", QUESTION, "--embedding", "lsa", "--json", db=db, env={KILL_AT_ENV: step})
    assert killed.returncode == -9, (step, killed.returncode, killed.stderr[-2000:])
    # What a reader finds now is one whole index: the old one or the new one, never a mix.
    folder = db.with_name(db.name + ".index") / "lsa"
    left = HybridIndex(folder, "lsa")
    assert _consistent(left) in (first, wanted)
    with Store(db) as s:  # the next ask (same code path, in this process: a CLI run costs seconds)
        index, changes = open_index(s, "lsa")
        assert _consistent(index) == wanted and changes["documents"] == wanted
        assert len(index.search(QUESTION, k=5)) == 5
    # Only the index's generation is left (a kill after the swap leaves the one before it, until the next save).
    assert folder.is_symlink() and [p.name for p in folder.parent.iterdir()] == ["lsa"]
    gens = folder.parent.with_name(f".{folder.parent.name}.gen")
    current = folder.resolve()
    assert current.parent == gens.resolve()
    stale = {p.name for p in gens.iterdir()} - {"lsa.lock", "lsa.state", current.name}
    assert all(g.startswith("lsa.gen-") for g in stale) and len(stale) <= (step == "swap")
    if stale:
        with Store(db) as s:
            ingest_table(s, [_cut(tmp_path, "last.csv", 60, 2)], source=DEMO_SOURCE, mapping=MAPPING)
            open_index(s, "lsa")
        assert {p.name for p in gens.iterdir()} - {"lsa.state"} == {"lsa.lock", folder.resolve().name}


@pytest.mark.parametrize("damage", ["truncated embedder", "fewer vectors", "bad index.json", "missing tokens"])
def test_a_damaged_index_is_rebuilt_not_trusted(tmp_path, damage):
    db = _store(tmp_path, 30)
    with Store(db) as s:
        n = _consistent(open_index(s, "lsa")[0])
    folder = db.with_name(db.name + ".index") / "lsa"
    segment = folder / json.loads((folder / "index.json").read_text())["segments"][0]
    if damage == "truncated embedder":
        data = (folder / "embedder.joblib").read_bytes()
        (folder / "embedder.joblib").write_bytes(data[: len(data) // 3])
    elif damage == "fewer vectors":
        np.save(segment / "vectors.npy", np.load(segment / "vectors.npy")[:10])
    elif damage == "bad index.json":
        (folder / "index.json").write_text('{"embedding": "lsa", "documents": ')
    else:
        (segment / "tokens.arrow").unlink()
    if damage == "truncated embedder":  # what the issue saw: every later ask exited 1
        proc = run_cli("ask", QUESTION, "--embedding", "lsa", "--json", db=db)
        assert proc.returncode == 0, proc.stderr
    else:
        assert HybridIndex(folder, "lsa").discarded and HybridIndex(folder, "lsa").size == 0
    forget_indexes()  # the next process: this one still holds the index it opened before the damage
    with Store(db) as s:
        index, changes = open_index(s, "lsa")
        assert _consistent(index) == n and HybridIndex(folder, "lsa").discarded is None
        assert len(index.search(QUESTION, k=5)) == 5


# -- item 9: paths --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_db(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("report"), 30, 20)


def test_report_does_not_follow_a_planted_tmp_symlink(report_db, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "r.html"
    (tmp_path / "r.html.tmp").symlink_to(victim)
    proc = run_cli("report", "--out", str(out), db=report_db)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious"
    assert out.is_file() and not out.is_symlink() and "<html" in out.read_text()[:2000].lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.html.tmp", "victim.txt"]


def test_report_out_naming_a_folder_is_one_line_and_leaves_nothing(report_db, tmp_path):
    folder = tmp_path / "already"
    folder.mkdir()
    proc = run_cli("report", "--out", str(folder), db=report_db)
    _one_line_error(proc, str(folder), "out")
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["already"]


def test_tables_out_naming_a_file_is_one_line_and_leaves_nothing(report_db, tmp_path):
    existing = tmp_path / "tables.txt"
    existing.write_text("mine")
    proc = run_cli("tables", "--out", str(existing), db=report_db)
    _one_line_error(proc, str(existing), "out")
    assert existing.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["tables.txt"]


def test_a_yaml_codebook_keeps_working_once_its_labels_are_imported(tmp_path):
    db = _store(tmp_path, 40, 20)
    books = tmp_path / "books"
    books.mkdir()
    yaml_file = books / "mine.yaml"
    text = _shipped()["chen2025-so-api"].read_text(encoding="utf-8")
    yaml_file.write_text(text.replace("id: chen2025-so-api", "id: my-book", 1), encoding="utf-8")
    imported = run_cli(
        "labels", "import", "--codebook", str(yaml_file), "--from-threads", "--source", DEMO_SOURCE, "--rater", "study", db=db
    )
    assert imported.returncode == 0, imported.stderr
    shutil.rmtree(books)  # the file is gone; its copy in the store serves from now on
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (
        ("classify", "--codebook", str(yaml_file), "--method", "zero-shot", "--embedding", "lsa"),
        # LSA on 40 threads leaves every thread unclassified: the report has hotspots of no group
        ("report", "--out", str(elsewhere / "zero-shot.html")),
        ("classify", "--codebook", "my-book", "--method", "supervised"),
        ("report", "--out", str(elsewhere / "r.html")),
        ("metrics", "--by", "code", "--codebook", "my-book", "--json"),
        ("compare", "--codebook", "my-book", "--json"),
    ):
        proc = run_cli(*args, db=db, cwd=elsewhere)
        assert proc.returncode == 0, (args, proc.stderr)
    html = (elsewhere / "r.html").read_text(encoding="utf-8")
    assert "my-book" in html
    with Store(db) as s:
        assert s.query("SELECT DISTINCT codebook FROM classification").codebook.tolist() == ["my-book"]
    # An unknown name still says which codebooks there are, and a store's copy does not leak into another store.
    (tmp_path / "other").mkdir()
    other = run_cli("classify", "--codebook", "my-book", "--method", "supervised", db=_store(tmp_path / "other", 10))
    _one_line_error(other, "my-book", "no such codebook")


def test_a_codebook_file_that_exists_still_wins_over_the_stored_copy(tmp_path):
    from devquarry.codebooks import load_codebook

    db = _store(tmp_path, 20)
    yaml_file = tmp_path / "mine.yaml"
    text = _shipped()["chen2025-so-api"].read_text(encoding="utf-8").replace("id: chen2025-so-api", "id: my-book", 1)
    yaml_file.write_text(text, encoding="utf-8")
    with Store(db) as s:
        from devquarry.labeling import import_labels_from_threads

        import_labels_from_threads(s, str(yaml_file), DEMO_SOURCE, "study")
        yaml_file.write_text(text.replace("name: OpenAI API categories", "name: Renamed categories", 1), encoding="utf-8")
        assert load_codebook(str(yaml_file), store=s).name.startswith("Renamed")
        os.remove(yaml_file)
        assert load_codebook(str(yaml_file), store=s).name.startswith("OpenAI API categories")
        assert load_codebook("my-book", store=s).id == "my-book"
