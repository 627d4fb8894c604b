"""`ingest table --map field=EXPRESSION`, optional titles and unknown resolution, on the forum
study's own per-topic statistics (../shared/data/openai-forum-topic-stats) and small files."""

import json
import math

import pandas as pd
import pytest
from conftest import run_cli

from devquarry import Store, build_report, info, ingest_table, metrics, trends
from devquarry.errors import InputError

STATS_MAP = "source_id=topic_id,category=category_id,reply_count=post_count - 1,score=avg_score"


@pytest.fixture
def stats_csv(shared):
    return shared / "openai-forum-topic-stats" / "topic_post_counts.csv"


def test_topic_stats_import_with_an_expression_and_no_title(stats_csv, tmp_path):
    db = tmp_path / "stats.duckdb"
    proc = run_cli("ingest", "table", str(stats_csv), "--source", "forum-stats", "--map", STATS_MAP, "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["new"] == 29574
    assert "reply_count=post_count - 1" in proc.stderr  # the mapping used, expression and all

    raw = pd.read_csv(stats_csv)
    replies = raw.post_count - 1
    # Counted here with pandas from the CSV, and written out as measured.
    assert len(raw) == 29574 and (replies == 0).sum() == 6330 and (replies < 3).sum() == 16042 and replies.sum() == 140354
    with Store(db, read_only=True) as s:
        t = s.threads("forum-stats").set_index("source_id")
        m = metrics(s).set_index("group")
        summary = info(s).set_index("source")
    assert len(t) == 29574 and t.title.isna().all()
    expected = pd.Series(replies.to_numpy(), index=raw.topic_id.astype(str))
    assert (t.reply_count.sort_index() == expected.sort_index()).all()
    assert t.loc["100020", "score"] == pytest.approx(21762.8)  # an average score is kept whole, not cut to 21762
    assert t.loc["100020", "category"] == "7"
    # No resolved column: resolution is unknown, not "all unresolved".
    assert t.is_resolved.isna().all()
    row = m.loc["(all)"]
    assert row.threads == 29574 and row.n_reply_count == 29574
    assert row.pct_no_reply == pytest.approx(6330 / 29574) and round(row.pct_no_reply * 100, 1) == 21.4
    assert row.pct_under_3_replies == pytest.approx(16042 / 29574) and round(row.pct_under_3_replies * 100, 1) == 54.2
    assert row.n_resolved_known == 0 and math.isnan(row.pct_unresolved) and math.isnan(row.pct_unresolved_lo)
    assert summary.loc["forum-stats", "replies_stated"] == 140354 and summary.loc["forum-stats", "replies_stored"] == 0
    assert pd.isna(summary.loc["forum-stats", "share_resolved"])


def test_untitled_rows_go_through_info_metrics_and_report(stats_csv, tmp_path):
    cut = tmp_path / "cut.csv"
    pd.read_csv(stats_csv, nrows=300).to_csv(cut, index=False)
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        ingest_table(s, [cut], source="forum-stats", mapping=STATS_MAP)
        ingest_table(
            s,
            [cut],
            source="forum-solved",
            mapping="source_id=topic_id,title=topic_id,reply_count=post_count - 1,is_resolved=post_count > 2",
        )
        m = metrics(s).set_index("group")
        out = build_report(s, tmp_path / "r.html")
    raw = pd.read_csv(cut)
    # One source with resolution, one without: the (all) row counts only the known ones.
    assert m.loc["forum-solved", "n_resolved_known"] == 300
    assert m.loc["forum-solved", "pct_unresolved"] == pytest.approx((raw.post_count <= 2).mean())
    assert m.loc["forum-stats", "n_resolved_known"] == 0 and math.isnan(m.loc["forum-stats", "pct_unresolved"])
    assert m.loc["(all)", "n_resolved_known"] == 300
    assert m.loc["(all)", "pct_unresolved"] == pytest.approx((raw.post_count <= 2).mean())
    html = out.read_text()
    assert "nan%" not in html and "forum-stats" in html


def test_trends_leave_unknown_resolution_out_of_the_unresolved_share(tmp_path):
    # Twelve forum topics over two quarters; one copy states resolution, the other does not.
    rows = pd.DataFrame(
        {
            "topic_id": range(1, 13),
            "created": [f"2024-0{1 + i % 6}-15" for i in range(12)],
            "post_count": [1, 2, 3, 4, 5, 6, 1, 1, 2, 9, 3, 2],
        }
    )
    path = tmp_path / "topics.csv"
    rows.to_csv(path, index=False)
    with Store(tmp_path / "s.duckdb") as s:
        ingest_table(s, [path], source="known", mapping="source_id=topic_id,created_at=created,is_resolved=post_count > 2")
        ingest_table(s, [path], source="unknown", mapping="source_id=topic_id,created_at=created")
        long = trends(s, "source", measure="pct_unresolved", complete_only=False)
        from devquarry.trends import series

        per = series(s, "source", complete_only=False).set_index(["group", "period"])
    q1 = pd.Timestamp("2024-01-01")
    first = rows[pd.to_datetime(rows.created) < pd.Timestamp("2024-04-01")]
    assert per.loc[("known", q1), "threads"] == len(first) == 6
    assert per.loc[("known", q1), "pct_unresolved"] == pytest.approx((first.post_count <= 2).mean())
    # Unknown resolution is no evidence of "unresolved": no share, not 100%.
    assert per.loc[("unknown", q1), "resolution_known"] == 0 and math.isnan(per.loc[("unknown", q1), "pct_unresolved"])
    long = long.set_index("group")
    second = rows[pd.to_datetime(rows.created) >= pd.Timestamp("2024-04-01")]
    assert long.loc["known", "last_value"] == pytest.approx((second.post_count <= 2).mean()) == pytest.approx(1 / 6)
    assert pd.isna(long.loc["unknown", "last_value"]) and long.loc["unknown", "threads"] == 12


def test_expressions_beside_plain_columns_with_odd_names(store, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text(
        'id,Title of it,"Views (total)",it\'s,"a""); DROP TABLE thread; --",created\n'
        "1,first,10,3,2.5,2024-01-02\n"
        "2,second,,0,,2024-01-03\n"
        "3,,7,1,4,2024-01-04\n"
    )
    mapping = (
        'source_id=id,title=Title of it,views=coalesce("Views (total)", 0),reply_count=it\'s,'
        'score="a""); DROP TABLE thread; --" * 2,created_at=created'
    )
    c = ingest_table(store, [path], source="odd", mapping=mapping).attrs["counts"]
    assert c["threads_new"] == 3
    t = store.threads("odd").set_index("source_id")
    assert list(t.title) == ["first", "second", ""]  # a mapped title column keeps empty cells empty, as before
    assert list(t.views) == [10, 0, 7]
    assert list(t.reply_count) == [3, 0, 1]
    assert t.score.tolist()[0] == 5.0 and pd.isna(t.score.tolist()[1]) and t.score.tolist()[2] == 8
    assert t.is_resolved.isna().all()
    assert store.counts()["thread"] == 3  # the column named like SQL stayed a name


def test_resolution_column_with_empty_cells_stays_known(store, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,title,solved,accepted\n1,a,1,\n2,b,,\n3,c,0,\n4,d,,2024-01-01\n")
    ingest_table(store, [path], source="r", mapping="source_id=id,is_resolved=solved")
    ingest_table(store, [path], source="r2", mapping="source_id=id,accepted_at=accepted")
    t = store.threads().set_index(["source", "source_id"]).is_resolved
    assert t.loc["r"].tolist() == [True, False, False, False]
    assert t.loc["r2"].tolist() == [False, False, False, True]
    m = metrics(store).set_index("group")
    assert m.loc["r", "n_resolved_known"] == 4 and m.loc["r", "pct_unresolved"] == 0.75


@pytest.mark.parametrize(
    "expr, said",
    [
        ("reply_count=post_count -", "Parser Error"),
        ("reply_count=nosuch - 1", 'column "nosuch" not found'),
        ("reply_count=1; DROP TABLE thread", "more than one statement"),
        ("views=(SELECT count(*) FROM read_csv('/etc/passwd'))", "file system operations are disabled"),
        ("reply_count=count(*)", "gives 1 values for 2 rows"),
        ("reply_count=post_count || 'x'", "not a number: '5x'"),
        ("reply_count=post_cnt", "column 'post_cnt' (mapped to reply_count) is not in the file; columns: post_count, topic_id"),
    ],
)
def test_a_bad_expression_names_field_and_expression_and_leaves_the_store(expr, said, store, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("topic_id,post_count\n1,5\n2,1\n")
    ingest_table(store, [path], source="before", mapping="source_id=topic_id")
    with pytest.raises(InputError) as err:
        ingest_table(store, [path], source="x", mapping=f"source_id=topic_id,{expr}")
    field, spec = expr.split("=", 1)
    assert said in str(err.value) and "t.csv" in str(err.value)
    assert f"{field}={spec}" in str(err.value) or f"column {spec!r}" in str(err.value)
    assert store.counts()["thread"] == 2 and set(store.threads().source) == {"before"}


def test_cli_bad_expression_is_one_line_exit_2(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("topic_id,post_count\n1,5\n")
    proc = run_cli(
        "ingest",
        "table",
        str(path),
        "--source",
        "x",
        "--map",
        "source_id=topic_id,reply_count=post_count -",
        db=tmp_path / "s.db",
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "field 'reply_count'" in proc.stderr and "--map reply_count=post_count - is not a usable expression" in proc.stderr
