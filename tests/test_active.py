"""Active-learning sampling (devquarry.active, `sample --strategy`) on real Stack Overflow questions:
300 hand-labelled questions in a store, the study's labels imported for 100 of them as rater "me"."""

import pandas as pd
import pytest
from conftest import SO_MAP, copy_store, run_cli

from devquarry import Store, ingest_table
from devquarry.active import pick
from devquarry.codebooks import load_codebook
from devquarry.errors import InputError
from devquarry.labeling import import_labels, read_sheet

CB = "chen2025-so-api"


@pytest.fixture(scope="module")
def so_small(tmp_path_factory):
    """(store path, the study's codes by source_id, the 100 labelled ids)."""
    from conftest import _shared_or_skip

    questions = pd.read_csv(_shared_or_skip() / "stackoverflow-openai-api" / "questions_labelled.csv.gz", nrows=300)
    folder = tmp_path_factory.mktemp("active")
    questions.to_csv(folder / "so300.csv", index=False)
    db = folder / "so.duckdb"
    with Store(db) as s:
        ingest_table(s, [folder / "so300.csv"], source="stackoverflow", mapping=SO_MAP)
        threads = s.threads()
        sheet = threads.iloc[::3][["source", "source_id", "label"]].rename(columns={"label": "label_me"})
        import_labels(s, sheet, CB)
        gold = threads.set_index("source_id").label
    return db, gold, set(sheet.source_id)


@pytest.fixture(scope="module")
def ranking(so_small):
    """Every unlabelled thread, least sure first."""
    db, _, _ = so_small
    with Store(db, read_only=True) as s:
        return pick(s, CB, 1000, strategy="uncertainty", seed=7)


def test_uncertainty_picks_unlabelled_threads_least_sure_first(so_small, ranking):
    _, gold, labelled = so_small
    assert len(labelled) == 100 and len(ranking) == 200  # every thread not labelled, none of the labelled ones
    assert not set(ranking.source_id) & labelled
    assert ranking.attrs["strategy"] == "uncertainty" and ranking.attrs["labels"] == 100 and ranking.attrs["note"] is None
    assert ranking.margin.is_monotonic_increasing and (ranking.margin >= 0).all()
    assert (ranking.score >= ranking.margin).all() and ranking.score.between(0, 1).all()
    assert set(ranking.code) <= set(ranking.attrs["codes"]) and len(ranking.attrs["codes"]) >= 4
    # The coder's suggestion is wrong more often where it is least sure: the study's codes say so.
    aliases = load_codebook(CB).by_source_value()  # the study's "1" is chat, and so on
    right = ranking.code.to_numpy() == ranking.source_id.map(gold).map(aliases).to_numpy()
    assert right[:50].mean() + 0.2 < right[-50:].mean()


def test_uncertain_picks_have_lower_margins_than_random_ones(so_small, ranking):
    db, _, labelled = so_small
    with Store(db, read_only=True) as s:
        rand = pick(s, CB, 20, strategy="random", seed=7)
        assert pick(s, CB, 20, strategy="random", seed=7).source_id.tolist() == rand.source_id.tolist()
    assert rand.attrs["strategy"] == "random" and not set(rand.source_id) & labelled
    margin = ranking.set_index("source_id").margin
    assert margin.head(20).mean() < 0.5 * margin[rand.source_id].mean()


def test_too_few_labels_fall_back_to_a_stratified_sample(so_small, tmp_path):
    db, _, labelled = so_small
    db = copy_store(db, tmp_path)
    with Store(db) as s:
        threads = s.threads()
        fresh = threads[~threads.source_id.isin(labelled)].head(5)
        # Three chat questions and two of other codes: one code only can be learnt.
        import_labels(s, fresh[["source", "source_id"]].assign(label_few=["1", "1", "1", "5", "4"]), CB)
        out = pick(s, CB, 30, strategy="uncertainty", train_raters=["few"], seed=1)
        assert out.attrs["strategy"] == "stratified" and "needs at least 2 codes" in out.attrs["note"]
        assert len(out) == 30 and not set(out.source_id) & (labelled | set(fresh.source_id))
        assert "margin" not in out.columns
        with pytest.raises(InputError, match="nobody"):
            pick(s, CB, 5, strategy="uncertainty", train_raters=["few", "nobody"])


def test_cli_uncertainty_sheet_reads_back(so_small, ranking, tmp_path):
    db, gold, _ = so_small
    db = copy_store(db, tmp_path)
    sheet = tmp_path / "next.csv"
    args = ["--codebook", CB, "--strategy", "uncertainty", "--size", "20", "--out", str(sheet), "--seed", "7"]
    proc = run_cli("sample", *args, "--train-rater", "me", db=db)
    assert proc.returncode == 0, proc.stderr
    assert "by uncertainty" in proc.stdout and "trained on 100 hand labels" in proc.stdout
    filled = read_sheet(sheet)
    # Same seed, same labels: the threads of the library's pick in the same order, least sure first.
    assert filled.source_id.tolist() == ranking.source_id.head(20).tolist()
    filled["label_rater1"] = filled.source_id.map(gold)
    filled.to_csv(sheet, index=False)
    proc = run_cli("labels", "import", str(sheet), "--codebook", CB, "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    with Store(db, read_only=True) as s:
        raters = s.query("SELECT rater, count(DISTINCT source_id) AS n FROM label GROUP BY rater ORDER BY rater")
    assert raters.set_index("rater").n.to_dict() == {"me": 100, "rater1": 20}
    bad = run_cli("sample", *args[:2], "--strategy", "clever", "--size", "5", "--out", str(sheet), db=db)
    assert bad.returncode == 2 and "unknown strategy" in bad.stderr
