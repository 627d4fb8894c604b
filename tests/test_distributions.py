"""Distributions (`devquarry metrics --bins`, `dq.distribution`) on the forum study's own per-topic
statistics (../shared/data/openai-forum-topic-stats: 29,574 topics), beside the 1,183 hand-labelled
forum questions, which carry no reply counts: counts checked against pandas, unknown values left out
and counted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FORUM_MAP, SHARED, built_once, copy_store

from devquarry import Store, ingest_table
from devquarry.distributions import distribution, parse_bins
from devquarry.errors import InputError

STATS = SHARED / "openai-forum-topic-stats" / "topic_post_counts.csv"
BINS = "0,1-2,3-5,6-10,>10"
LABELS = ["0", "1-2", "3-5", "6-10", ">10"]
EDGES = [-1, 0, 2, 5, 10, np.inf]  # (a, b] intervals: the same bins over whole numbers


def topic_stats() -> pd.DataFrame:
    """The statistics with replies = posts after the first."""
    if not STATS.is_file():
        pytest.skip(f"forum topic statistics not found at {STATS}")
    return pd.read_csv(STATS).assign(reply_count=lambda d: d.post_count - 1)


@pytest.fixture(scope="session")
def stats_db(tmp_path_factory) -> Path:
    """The forum study's topic statistics alone (no views, no resolution, no labels), imported once
    per session from a CSV with the replies devquarry can take as they are. Open it read-only."""
    df = topic_stats()

    def build(folder: Path) -> None:
        df.to_csv(folder / "topic_stats.csv", index=False)
        with Store(folder / "stats.duckdb") as s:
            ingest_table(
                s,
                [folder / "topic_stats.csv"],
                source="forum-stats",
                mapping="source_id=topic_id,reply_count=reply_count,title=topic_id,category=category_id",
            )

    return built_once(tmp_path_factory, "forum-topic-stats", build) / "stats.duckdb"


@pytest.fixture(scope="module")
def mixed(stats_db, tmp_path_factory):
    """The topic statistics and the 1,183 hand-labelled forum questions (no reply counts) in one store."""
    db = copy_store(stats_db, tmp_path_factory.mktemp("dist"))
    with Store(db) as s:
        ingest_table(
            s,
            [SHARED / "openai-forum-labelled" / "annotated_questions.csv.gz"],
            source="openai-forum-labelled",
            mapping=FORUM_MAP,
        )
    return db, topic_stats()


def cli(capsys, *args: str, db) -> tuple[int, str, str]:
    """The command line in this process (a fresh interpreter per call costs seconds): exit code,
    stdout, stderr, as `devquarry ...` gives them."""
    from devquarry.cli import main

    capsys.readouterr()
    argv, sys.argv = sys.argv, ["devquarry", *args, "--db", str(db)]
    try:
        main()
        rc = 0
    except SystemExit as exc:
        rc = exc.code or 0
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return rc, out.out, out.err


def expected_counts(replies: pd.Series) -> list[int]:
    return pd.cut(replies, EDGES, labels=LABELS).value_counts().reindex(LABELS).astype(int).tolist()


def test_reply_bins_match_pandas_and_the_hand_count(mixed):
    db, stats = mixed
    with Store(db, read_only=True) as s:
        df = distribution(s, "replies", BINS, by="source")
    every = df[df.group == "(all)"].set_index("bin")
    # The 1,183 labelled questions have no reply count: left out of n, counted as unknown.
    assert every.n.iloc[0] == 29_574 and every.unknown.iloc[0] == 1_183 and every.threads.iloc[0] == 30_757
    assert every["count"].tolist() == expected_counts(stats.reply_count) == [6_330, 9_712, 6_871, 3_819, 2_842]
    assert (every.share * 100).round(1).tolist() == [21.4, 32.8, 23.2, 12.9, 9.6]  # as the issue measured by hand
    assert every.share.sum() == pytest.approx(1.0)
    assert (every.share_lo < every.share).all() and (every.share < every.share_hi).all()
    assert set(every.ci_method) == {"wilson"}  # 29,574 values: the closed form
    lone = df[df.group == "forum-stats"].set_index("bin")
    assert lone["count"].tolist() == every["count"].tolist() and lone.unknown.iloc[0] == 0
    labelled = df[df.group == "openai-forum-labelled"]
    assert labelled.n.eq(0).all() and labelled.unknown.eq(1_183).all() and labelled.share.isna().all()


def test_per_forum_category_with_bootstrap_for_small_groups(mixed):
    db, stats = mixed
    with Store(db, read_only=True) as s:
        df = distribution(s, "replies", BINS, by="category", sources=["forum-stats"])
    for cat, g in stats.groupby("category_id"):
        rows = df[df.group == str(cat)]
        assert rows["count"].tolist() == expected_counts(g.reply_count), cat
        assert rows.n.iloc[0] == len(g)
    small = df[df.group == "27"]  # 69 topics: bootstrap interval
    assert set(small.ci_method) == {"bootstrap"} and small.n.iloc[0] == 69
    biggest = df[df.group != "(all)"].group.iloc[0]
    assert biggest == "7"  # groups by size, as metrics orders them


def test_metrics_bins_on_the_command_line(mixed, capsys):
    db, stats = mixed
    rc, out, err = cli(
        capsys, "metrics", "--bins", f"replies={BINS}", "--bins", "views", "--source", "forum-stats", "--json", db=db
    )
    assert rc == 0, err
    rows = pd.DataFrame(json.loads(out))
    replies = rows[(rows.measure == "replies") & (rows.group == "(all)")]
    assert replies["count"].tolist() == expected_counts(stats.reply_count)
    views = rows[(rows.measure == "views") & (rows.group == "(all)")]
    assert views.bin.tolist()[0] == "<=200" and views.n.eq(0).all() and views.unknown.eq(29_574).all()
    assert "views per thread: 0 of 29,574 threads have a value; 29,574 without one are left out" in err
    rc, out, _ = cli(capsys, "metrics", "--bins", f"replies={BINS}", db=db)
    assert rc == 0
    assert "29,574 of 30,757 threads have a value; 1,183 without one are left out" in out
    assert "6330" in out and "0.214" in out


def test_bins_as_a_paper_writes_them():
    bins = parse_bins("<=200,201-500,>10000")
    assert [(b.lo, b.hi) for b in bins] == [(-np.inf, 200), (201, 500), (10000, np.inf)]
    assert not bins[2].contains(np.array([10000.0]))[0] and bins[2].contains(np.array([10001.0]))[0]
    # A shared end goes to the first bin: hours cut at round numbers.
    from devquarry.distributions import assign

    assert assign([0.5, 1.0, 1.5, 24.0, 30.0, np.nan], parse_bins("0-1,1-24,>24")).tolist() == [0, 0, 1, 1, 2, -2]
    for bad, said in [("1-2,0", "out of order"), ("5-1", "runs backwards"), ("a", "not a bin"), ("0,,1", "empty bin")]:
        with pytest.raises(InputError, match=said):
            parse_bins(bad)


def test_bad_bins_exit_2_with_one_line(mixed, capsys):
    db, _ = mixed
    rc, _, err = cli(capsys, "metrics", "--bins", "replies=3-1", db=db)
    assert rc == 2 and err.count("\n") == 1 and "runs backwards" in err
    rc, _, err = cli(capsys, "metrics", "--bins", "likes=0,>0", db=db)
    assert rc == 2 and "unknown measure 'likes'" in err
