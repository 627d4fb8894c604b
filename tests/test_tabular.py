import json
from datetime import UTC, datetime

import pandas as pd
from conftest import FIXTURES
from openpyxl import Workbook

from devquarry import ingest_table

SO_MAP = "created_at=created_time,accepted_at=accepted_time,is_resolved=has_accepted_answer,score=votes,label=type"


def test_stackoverflow_labelled(store, shared):
    path = shared / "stackoverflow-openai-api" / "questions_labelled.csv.gz"
    c = ingest_table(store, [path], source="stackoverflow", mapping=SO_MAP).attrs["counts"]
    assert c["threads_new"] == 2299
    raw = pd.read_csv(path)
    t = store.threads("stackoverflow").set_index("source_id")
    assert int(t.is_resolved.sum()) == int(raw.has_accepted_answer.sum())
    # "2025/1/21 18:30" is parsed as UTC; the id is read from the url.
    row = t.loc["79374039"]
    assert row.created_at == pd.Timestamp(datetime(2025, 1, 21, 18, 30, tzinfo=UTC))
    assert row.label == "7" and row.tags == ["model", "artificial-intelligence", "openai-api"]
    assert int(t.views.sum()) == int(raw.views.sum())
    accepted = t.dropna(subset=["accepted_at"])
    assert len(accepted) == raw.accepted_time.notna().sum()


def test_latin1_file_with_broken_bytes(store, shared):
    path = shared / "stackoverflow-openai-api" / "questions_with_irrelevant.csv.gz"
    c = ingest_table(store, [path], source="stackoverflow", mapping=SO_MAP, encoding="latin-1").attrs["counts"]
    assert c["threads_new"] == 4081
    labels = store.threads().label.value_counts().to_dict()
    assert labels["0"] == 1782 and labels["1"] == 1015 and labels["-1"] == 78


def test_forum_labelled_titles_and_labels(store, shared):
    path = shared / "openai-forum-labelled" / "annotated_questions.csv.gz"
    ingest_table(
        store, [path], source="openai-forum-labelled", mapping="source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"
    )
    t = store.threads().set_index("source_id")
    assert len(t) == 1183
    assert t.loc["20178", "title"] == "inconsistent results with identical prompts"
    assert t.loc["20178", "label"] == "B.1"
    assert t.loc["8167", "label"] == "B.1--C.5"  # kept as typed, for the taxonomy step
    assert int(t.is_resolved.sum()) == int(pd.read_csv(path).Solved.sum())


def test_jsonl_and_xlsx(store, tmp_path):
    rows = pd.read_csv(FIXTURES / "so_latin1.csv", encoding="latin-1")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows.where(rows.notna(), None).to_dict("records")))
    ingest_table(store, [jsonl], source="so-jsonl", mapping=SO_MAP)
    xlsx = tmp_path / "q.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.append(list(rows.columns))
    for r in rows.itertuples(index=False):
        ws.append([None if pd.isna(v) else v for v in r])
    wb.save(xlsx)
    ingest_table(store, [xlsx], source="so-xlsx", mapping=SO_MAP)
    a = store.threads("so-jsonl").set_index("source_id")
    b = store.threads("so-xlsx").set_index("source_id")
    assert len(a) == len(b) == len(rows) == 9
    cols = ["title", "created_at", "accepted_at", "is_resolved", "views", "score", "label"]
    pd.testing.assert_frame_equal(a[cols].sort_index(), b[cols].sort_index())
    assert int(a.is_resolved.sum()) == 5
