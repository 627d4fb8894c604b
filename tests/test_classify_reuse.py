"""A second classify codes only the threads ingested or changed since the first, and gives every
thread the codes a run from scratch gives."""

import json

import numpy as np
import pandas as pd
from conftest import SO_MAP, run_cli

from devquarry import Store, ingest_table
from devquarry.classify import classify
from devquarry.demo import demo_corpus

CB = "chen2025-so-api"


def _rows(store: Store, run_id: int) -> pd.DataFrame:
    df = store.query("SELECT source, source_id, code, score, rank FROM classification WHERE run_id = ?", [run_id])
    return df.sort_values(["source", "source_id", "rank"]).reset_index(drop=True)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["source", "source_id", "rank"]).reset_index(drop=True)


def _params(store: Store, run_id: int) -> dict:
    return json.loads(store.con.execute("SELECT params FROM run WHERE run_id = ?", [run_id]).fetchall()[0][0])


def test_a_second_run_codes_only_new_and_changed_threads(so_labelled_copy, tmp_path):
    db = so_labelled_copy
    corpus = pd.read_csv(demo_corpus(), dtype=str, keep_default_na=False)
    off = corpus[corpus["type"] == "0"]  # questions the store lacks (the study's off-subject ones)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    off.head(50).to_csv(one, index=False)
    edited = off.head(1).assign(body=lambda d: d.body + "\n\nIt also fails with gpt-4o.")
    pd.concat([off.iloc[50:100], edited]).to_csv(two, index=False)
    with Store(db) as s:
        ingest_table(s, [one], source="stackoverflow", mapping=SO_MAP)
        first = classify(s, CB, coder="lexical").attrs["run_id"]
        # 50 more questions and one of the first 50 edited: 51 threads to code.
        ingest_table(s, [two], source="stackoverflow", mapping=SO_MAP)
        again = classify(s, CB, coder="lexical")
        assert again.attrs["reused_from"] == first and again.attrs["recoded"] == 51
        fresh = classify(s, CB, coder="lexical", reuse=False)
        scratch = fresh.attrs["run_id"]
        kept = classify(s, CB, coder="lexical", sources=None)  # nothing new: every row kept, the same frame
        assert kept.attrs["recoded"] == 0 and _sorted(kept).equals(_sorted(fresh))
        assert "reused_from" not in _params(s, scratch)
        a, b = _rows(s, again.attrs["run_id"]), _rows(s, scratch)
    assert a[["source", "source_id", "code", "rank"]].equals(b[["source", "source_id", "code", "rank"]])
    assert np.allclose(a.score, b.score, atol=1e-9)
    assert a.source_id.nunique() == 2299 + 100
    # Nothing new: the CLI's second run codes nothing and keeps the same codes; --recode-all codes all.
    r = run_cli("classify", "--codebook", CB, "--coder", "lexical", "--json", db=db)
    assert r.returncode == 0, r.stderr
    with Store(db, read_only=True) as s:
        last = s.con.execute("SELECT max(run_id) FROM run").fetchall()[0][0]
        assert _params(s, last)["recoded"] == 0 and _params(s, last)["reused_from"] == scratch + 1
        assert _rows(s, last)[["source_id", "code", "rank"]].equals(b[["source_id", "code", "rank"]])
    r = run_cli("classify", "--codebook", CB, "--coder", "lexical", "--recode-all", "--json", db=db)
    assert r.returncode == 0, r.stderr
    # A labelled question edited: the coder learns from its new text, so every thread is coded again.
    labelled = corpus[corpus["type"] == "1"].head(1).assign(body=lambda d: d.body + "\n\nEdited.")
    labelled.to_csv(one, index=False)
    with Store(db) as s:
        assert "reused_from" not in _params(s, s.con.execute("SELECT max(run_id) FROM run").fetchall()[0][0])
        ingest_table(s, [one], source="stackoverflow", mapping=SO_MAP)
        assert "reused_from" not in classify(s, CB, coder="lexical").attrs
