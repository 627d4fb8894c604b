import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from sklearn.metrics import cohen_kappa_score

from devquarry import Store, ingest_table
from devquarry.codebooks import load_codebook
from devquarry.labeling import (
    agreement,
    fleiss_kappa,
    import_labels,
    label_shares,
    parse_label,
    read_sheet,
    sample_size,
    stratified_sample,
    write_sheet,
)

FORUM_MAP = "source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"


@pytest.fixture
def forum(tmp_path, shared):
    path = shared / "openai-forum-labelled" / "annotated_questions.csv.gz"
    store = Store(tmp_path / "forum.duckdb")
    ingest_table(store, [path], source="openai-forum-labelled", mapping=FORUM_MAP)
    yield store, path
    store.close()


def test_parse_the_messy_label_strings():
    cb = load_codebook("chen2024-forum")
    assert parse_label("A.1--C.2", cb).codes == ("A.1", "C.2")
    assert parse_label("C--", cb).codes == ("C",)
    p = parse_label("B.1--C.2*", cb)
    assert p.codes == ("B.1", "C.2") and p.uncertain
    assert parse_label("///", cb).status == "irrelevant"
    assert parse_label("", cb).status == "blank" and parse_label(None, cb).status == "blank"
    assert parse_label("a.2", cb).codes == ("A.2",)
    with pytest.raises(KeyError):
        parse_label("G.1", cb)
    assert parse_label("5", load_codebook("chen2025-so-api")).codes == ("audio",)


def test_forum_labels_beside_the_published_shares(forum):
    store, path = forum
    counts = import_labels(
        store, path, "chen2024-forum", rater="paper", label_column="Label", source="openai-forum-labelled", id_column="ID"
    )
    row = counts.iloc[0]
    assert (row.coded, row.irrelevant, row.blank, row.uncertain) == (1038, 145, 0, 58)
    shares = label_shares(store, "chen2024-forum", level=0).set_index("code")
    assert shares.threads.sum() == 1038
    assert shares.loc["A", "threads"] == 298 and shares.loc["F", "threads"] == 38
    # Every category's share in this published sample is within 3 points of the paper's.
    assert (shares.share - shares.published_share).abs().max() < 0.03
    # Importing again replaces, it does not add.
    import_labels(
        store, path, "chen2024-forum", rater="paper", label_column="Label", source="openai-forum-labelled", id_column="ID"
    )
    assert store.con.execute("SELECT count(DISTINCT source_id) FROM label").fetchone()[0] == 1183


def test_sheet_round_trip_and_agreement(forum, tmp_path):
    store, path = forum
    cb = load_codebook("chen2024-forum")
    calc = sample_size(len(store.threads()), 0.95, 0.05)
    assert calc["n"] == 291  # 1,183 threads at 95% and ±5%: n0 = 384.15, n = 290.2
    sample = stratified_sample(store.threads(), calc["n"], seed=1)
    sheet = write_sheet(sample, tmp_path / "sheet.xlsx", ["ana", "ben"], cb)
    filled = read_sheet(sheet)
    paper = pd.read_csv(path, dtype=str).set_index("ID").Label
    filled["label_ana"] = filled.source_id.map(paper)
    # Ben recodes the first 20 GPT-builder questions as integration questions.
    ben = filled.label_ana.copy()
    moved = filled.index[filled.label_ana.str.startswith("E", na=False)][:20]
    ben[moved] = "A.1"
    filled["label_ben"] = ben
    filled.to_excel(sheet, index=False)
    counts = import_labels(store, sheet, cb)
    assert set(counts.rater) == {"ana", "ben"} and counts.coded.sum() > 400
    result = agreement(store, "chen2024-forum", level=0)
    assert result["method"] == "Cohen" and result["raters"] == ["ana", "ben"]
    n_moved = len(moved)
    assert len(result["disagreements"]) == n_moved > 0
    assert result["confusion"].loc["E", "A"] == n_moved
    wide = result["disagreements"]
    assert set(wide["ana"]) == {"E"} and set(wide["ben"]) == {"A"}

    # The kappa is Cohen's on the primary categories of the same threads.
    def primary(label):
        parsed = parse_label(label, cb)
        return cb.ancestor(parsed.codes[0], 0) if parsed.status == "coded" else None

    pairs = pd.DataFrame({"a": filled.label_ana.map(primary), "b": filled.label_ben.map(primary)}).dropna()
    assert result["threads"] == len(pairs)
    assert result["kappa"] == pytest.approx(cohen_kappa_score(pairs.a, pairs.b))
    assert 0.8 < result["kappa"] < 1.0


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as reproduced in most references: 10 subjects, 14 raters, 5 categories, kappa 0.210.
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=0.001)


def test_cli_labels_import_shares_agreement(forum, tmp_path):
    store, path = forum
    db = store.path
    store.close()
    bad = run_cli(
        "labels",
        "import",
        str(path),
        "--codebook",
        "chen2025-so-api",
        "--label-column",
        "Label",
        "--rater",
        "x",
        "--source",
        "openai-forum-labelled",
        "--id-column",
        "ID",
        db=db,
    )
    assert bad.returncode == 2 and "line 2" in bad.stderr and "field 'Label'" in bad.stderr and "not in codebook" in bad.stderr
    ok = run_cli(
        "labels",
        "import",
        str(path),
        "--codebook",
        "chen2024-forum",
        "--label-column",
        "Label",
        "--rater",
        "paper",
        "--source",
        "openai-forum-labelled",
        "--id-column",
        "ID",
        "--json",
        db=db,
    )
    assert ok.returncode == 0, ok.stderr
    shares = json.loads(run_cli("labels", "shares", "--codebook", "chen2024-forum", "--json", db=db).stdout)
    assert {r["code"]: r["threads"] for r in shares}["B"] == 249
    one = run_cli("agreement", "--codebook", "chen2024-forum", db=db)
    assert one.returncode == 2 and "needs two raters" in one.stderr


def test_headerless_numeric_sheets_and_agreement_between_named_raters(forum_labelled_db, tmp_path, shared):
    """A second coder's xlsx without a header row and with numeric ids; training labels of a third
    rater in the same store; `agreement --raters` compares the two coders only."""
    from conftest import copy_store

    db = copy_store(forum_labelled_db, tmp_path)
    paper = pd.read_csv(shared / "openai-forum-labelled" / "annotated_questions.csv.gz")
    paper = paper[paper.Label.notna()]
    second = paper.iloc[:60][["ID", "Label"]].copy()
    second.loc[second.index[:6], "Label"] = "F"  # six disagreements
    second["ID"] = second.ID.astype(int)  # numbers in the cells, as spreadsheets store ids
    second.to_excel(tmp_path / "second.xlsx", header=False, index=False)
    train = paper.iloc[300:340][["ID", "Label"]].rename(columns={"ID": 2024, "Label": "code"})  # a numeric header cell
    train.to_excel(tmp_path / "train.xlsx", index=False)
    common = ["--source", "openai-forum-labelled", "--codebook", "chen2024-forum"]
    for sheet, args in (
        ("second.xlsx", ["--no-header", "--id-column", "1", "--label-column", "2", "--rater", "me"]),
        ("train.xlsx", ["--id-column", "2024", "--label-column", "code", "--rater", "train"]),
    ):
        proc = run_cli("labels", "import", str(tmp_path / sheet), *common, *args, "--json", db=db)
        assert proc.returncode == 0, proc.stderr
    everyone = run_cli("agreement", "--codebook", "chen2024-forum", "--level", "0", "--json", db=db)
    assert everyone.returncode == 2 and "no thread was coded by every rater" in everyone.stderr
    two = run_cli("agreement", "--codebook", "chen2024-forum", "--level", "0", "--raters", "paper,me", "--json", db=db)
    assert two.returncode == 0, two.stderr
    result = json.loads(two.stdout)
    result = result[0] if isinstance(result, list) else result
    assert result["threads"] == 56 and result["raters"] == ["me", "paper"]  # 4 of the 60 are off-subject in the paper
    assert 0.8 < result["percent_agreement"] < 1.0
    unknown = run_cli("agreement", "--codebook", "chen2024-forum", "--raters", "paper,nobody", db=db)
    assert unknown.returncode == 2 and "nobody" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
