"""What a newcomer hits (issue 11): code counts are threads, the codes' origin is chosen and
stated, trends run over each group's own span, unknown codebooks are named."""

import gzip
import io
import json

import pandas as pd
import pytest
from conftest import SHARED, run_cli

from devquarry import Store, ingest_table
from devquarry.compare import compare
from devquarry.hotspots import hotspots
from devquarry.labeling import import_labels
from devquarry.metrics import metrics
from devquarry.trends import series, trends

FORUM = SHARED / "openai-forum-labelled" / "annotated_questions.csv.gz"
APPS = SHARED / "github-issues-llm-apps"
SO_CODES = "chen2025-so-api"


@pytest.fixture(scope="module")
def forum_coded(tmp_path_factory):
    """The 1,183 hand-labelled forum questions, coded by the real CLI into the forum taxonomy
    (multi-label: the coder gives some threads several categories)."""
    if not SHARED.is_dir():
        pytest.skip("real corpora not found")
    db = tmp_path_factory.mktemp("forum") / "f.duckdb"
    with Store(db) as s:
        ingest_table(
            s, [FORUM], source="openai-forum-labelled", mapping="source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"
        )
        import_labels(
            s, FORUM, "chen2024-forum", rater="paper", label_column="Label", source="openai-forum-labelled", id_column="ID"
        )
    proc = run_cli("classify", "--codebook", "chen2024-forum", db=db)
    assert proc.returncode == 0, proc.stderr
    return db, proc.stdout


# Item 3: code assignments are not threads.


def test_code_rows_count_threads_and_all_counts_each_thread_once(forum_coded):
    db, classify_out = forum_coded
    raw = pd.read_csv(FORUM)
    with Store(db, read_only=True) as s:
        # Counted under every code a thread has (--count any); by default only its primary code counts.
        m = metrics(s, "code", codebook="chen2024-forum", count="any").set_index("group")
        primary = metrics(s, "code", codebook="chen2024-forum").set_index("group")
        per_code = (
            s.query("SELECT code, count(DISTINCT (source, source_id)) AS n FROM classification GROUP BY code").set_index("code").n
        )
        assignments = s.con.execute("SELECT count(*) FROM classification").fetchone()[0]
        long = compare(s, "chen2024-forum")
    assert assignments > len(raw) == 1183  # the coder gave some threads two codes
    assert m.loc["(all)", "threads"] == 1183 and m.loc["(all)", "share"] == 1.0
    # Every (all) figure is over distinct threads: the share unresolved is the file's own.
    assert m.loc["(all)", "pct_unresolved"] == pytest.approx(1 - raw.Solved.astype(bool).mean())
    for code, n in per_code.items():
        assert m.loc[code, "threads"] == n and m.loc[code, "share"] == pytest.approx(n / 1183)
    assert "threads with that code" in m.attrs["rows"] and "each thread once" in m.attrs["rows"]
    assert primary.drop(index="(all)").threads.sum() == 1183 and primary.attrs["count"] == "primary"
    assert long.set_index("group").loc["(all)", "threads"] == 1183
    # classify reports threads, and the codes given apart.
    assert "1,183 threads coded into chen2024-forum" in classify_out and "secondary" in classify_out


# Item 4: hand labels or a machine run, and the output says which.


def test_metrics_by_hand_labels_reproduce_the_readme_table(demo_db):
    with Store(demo_db, read_only=True) as s:
        hand = metrics(s, "code", codebook=SO_CODES, labels="study").set_index("group")
        machine = metrics(s, "code", codebook=SO_CODES).set_index("group")
        run = int(s.con.execute("SELECT max(run_id) FROM classification").fetchone()[0])
        by_run = metrics(s, "code", codebook=SO_CODES, run=run).set_index("group")
    # README "What the real data say": all 2,291, 77.4% [75.7, 79.1]; GPT Actions 31, 96.8%.
    assert hand.loc["(all)", "threads"] == 2291
    assert round(hand.loc["(all)", "pct_unresolved"] * 100, 1) == 77.4
    assert (round(hand.loc["(all)", "pct_unresolved_lo"] * 100, 1), round(hand.loc["(all)", "pct_unresolved_hi"] * 100, 1)) == (
        75.7,
        79.1,
    )
    assert hand.loc["gpt-actions", "threads"] == 31 and round(hand.loc["gpt-actions", "pct_unresolved"] * 100, 1) == 96.8
    assert hand.attrs["codes_from"] == "hand labels (rater study), each thread's primary code"
    assert (
        machine.attrs["codes_from"] == f"classify run {run} (supervised), each thread's primary code"
        and "irrelevant" in machine.index
    )
    assert by_run.equals(machine)


def test_cli_labels_and_run_for_every_code_grouping(demo_db):
    proc = run_cli("metrics", "--by", "code", "--codebook", SO_CODES, "--labels", "study", "--json", db=demo_db)
    rows = {r["group"]: r for r in json.loads(proc.stdout)}
    assert rows["(all)"]["threads"] == 2291 and "hand labels (rater study)" in proc.stderr
    table = run_cli("metrics", "--by", "code", "--codebook", SO_CODES, "--labels", "study", db=demo_db)
    assert table.returncode == 0 and "hand labels (rater study)" in table.stdout and "shares add up to 100%" in table.stdout
    wide = pd.read_csv(io.StringIO(run_cli("compare", "--codebook", SO_CODES, "--labels", "study", "--csv", db=demo_db).stdout))
    assert wide.set_index("group").loc["(all)", "stackoverflow: threads"] == 2291
    tr = run_cli("trends", "--by", "code", "--codebook", SO_CODES, "--labels", "study", "--json", db=demo_db)
    assert tr.returncode == 0 and "hand labels (rater study)" in tr.stderr
    assert {r["group"] for r in json.loads(tr.stdout)} == set(rows) - {"(all)"}
    with Store(demo_db, read_only=True) as s:
        h = hotspots(s, "code", codebook=SO_CODES, labels="study").set_index("group")
        assert h.loc["chat", "threads"] == rows["chat"]["threads"] == 1009
        assert trends(s, "code", codebook=SO_CODES, labels="study").attrs["codes_from"].startswith("hand labels (rater study)")
        assert compare(s, SO_CODES, labels="study").attrs["codes_from"].startswith("hand labels (rater study)")
    bad = run_cli("metrics", "--by", "code", "--codebook", SO_CODES, "--labels", "bob", db=demo_db)
    assert bad.returncode == 2 and "'bob'" in bad.stderr and "study" in bad.stderr
    bad = run_cli("metrics", "--by", "code", "--codebook", SO_CODES, "--run", "999", db=demo_db)
    assert bad.returncode == 2 and "999" in bad.stderr and SO_CODES in bad.stderr


# Item 6: each group over its own span; what was dropped is said.


@pytest.fixture(scope="module")
def so_and_repos(demo_db, tmp_path_factory):
    """The demo's Stack Overflow questions (2010-2025) beside three GitHub repositories: agno (a
    young one, 500 issues from November 2024), mem0 (a quiet quarter) and prompttools (20 issues
    in 2023, quiet since)."""
    import shutil

    if not APPS.is_dir():
        pytest.skip("real corpora not found")
    db = tmp_path_factory.mktemp("repos") / "r.duckdb"
    shutil.copy(demo_db, db)
    files = [APPS / f"{r}_labeled_issues.json.gz" for r in ("agno-agi_agno", "mem0ai_mem0", "hegelai_prompttools")]
    proc = run_cli("ingest", "github", *map(str, files), db=db)
    assert proc.returncode == 0, proc.stderr
    return db


def test_trends_run_over_each_groups_own_span(so_and_repos):
    agno_json = json.loads(gzip.open(APPS / "agno-agi_agno_labeled_issues.json.gz").read())
    created = pd.to_datetime(pd.Series([i["created_at"] for i in agno_json["issues"]]), utc=True)
    in_q2 = int((created >= pd.Timestamp("2025-04-01", tz="UTC")).sum())
    with Store(so_and_repos, read_only=True) as s:
        t = trends(s, "source").set_index("group")
        long = series(s, "source")
        kept = trends(s, "source", complete_only=False).set_index("group")
    agno, so = t.loc["github:agno-agi/agno"], t.loc["stackoverflow"]
    assert agno.first_period == "2024-10" and so.first_period == "2020-07"  # agno's first issue: November 2024
    # Zeros only inside a group's span: no group starts or ends on an empty period.
    for _, g in long.groupby("group"):
        g = g.sort_values("period")
        assert g.threads.iloc[0] > 0 and g.threads.iloc[-1] > 0
    # No trend read off padding: a significant trend never has a zero slope with a zero interval.
    sig = t[t.trend.isin(["increasing", "decreasing"])]
    assert not ((sig.slope == 0) & (sig.slope_lo == 0) & (sig.slope_hi == 0)).any()
    # Each source drops its own partial last quarter, and says so: agno's 2025Q2, Stack Overflow's 2025Q1.
    partial = {p["period"]: p for p in t.attrs["dropped_partial"]["periods"]}
    assert partial["2025Q2"]["data_end"] == "2025-06-22" and partial["2025Q1"]["sources"] == ["stackoverflow"]
    assert agno.partial_dropped == in_q2 == 344 and agno.threads == 500 - in_q2
    assert so.partial_dropped == partial["2025Q1"]["threads"] > 0 and so.last_period == "2024-10"
    # A repository quiet since 2023 keeps its last quarter: its data go on to December 2023.
    quiet = t.loc["github:hegelai/prompttools"]
    assert quiet.threads == 20 and quiet.partial_dropped == 0 and quiet.last_period == "2023-07"
    assert kept.loc["github:agno-agi/agno", "threads"] == 500
    # The two stray early questions (2010, 2017) are left out, and counted.
    assert t.attrs["left_out_early"] == {"before": "2020Q3", "threads": 2, "groups": {"stackoverflow": 2}}


def test_cli_trends_says_what_it_dropped(so_and_repos):
    proc = run_cli("trends", "--by", "source", "--json", db=so_and_repos)
    assert proc.returncode == 0, proc.stderr
    assert "dropped partial 2025Q2: 347 threads" in proc.stderr  # agno 344, mem0 3
    assert "dropped partial 2025Q1:" in proc.stderr and "stackoverflow" in proc.stderr
    assert "left out 2 stray early threads before 2020Q3" in proc.stderr
    rows = {r["group"]: r for r in json.loads(proc.stdout)}
    assert rows["github:agno-agi/agno"]["first_period"] == "2024-10"
    kept = {r["group"]: r for r in json.loads(run_cli("trends", "--keep-partial", "--json", db=so_and_repos).stdout)}
    assert kept["github:agno-agi/agno"]["threads"] == 500


# Item 8: unknown codebooks are named; hotspots finds the store's codebook.


@pytest.mark.parametrize("command", [["metrics", "--by", "code"], ["trends", "--by", "code"], ["compare"], ["hotspots"]])
def test_unknown_codebook_exits_2_naming_it(demo_db, command):
    proc = run_cli(*command, "--codebook", "nope", db=demo_db)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "'nope'" in proc.stderr and SO_CODES in proc.stderr and "chen2024-forum" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_hotspots_without_codebook_uses_the_stores(demo_db, tmp_path):
    proc = run_cli("hotspots", "--json", db=demo_db)
    assert proc.returncode == 0, proc.stderr
    assert {r["group"] for r in json.loads(proc.stdout)} >= {"chat", "audio", "assistants"}
    assert f"using {SO_CODES}" in proc.stderr and "classify run" in proc.stderr
    # A store with no codebook groups by source, and says so.
    db = tmp_path / "gh.duckdb"
    assert (
        run_cli(
            "ingest",
            "github",
            str(APPS / "agno-agi_agno_labeled_issues.json.gz"),
            str(APPS / "mem0ai_mem0_labeled_issues.json.gz"),
            db=db,
        ).returncode
        == 0
    )
    proc = run_cli("hotspots", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    assert {r["group"] for r in json.loads(proc.stdout)} == {"github:agno-agi/agno", "github:mem0ai/mem0"}
    assert "grouping by source" in proc.stderr
