"""Trends, the cross-platform table and hotspots on the real corpora."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from devquarry import Store, ingest_discourse, ingest_github
from devquarry.compare import compare, side_by_side
from devquarry.hotspots import fix_for, hotspots
from devquarry.stats import bootstrap_ci, mann_kendall, median_ci, wilson_ci
from devquarry.trends import series, trends


@pytest.fixture(scope="module")
def three_platforms(so_labelled_db, tmp_path_factory):
    """Stack Overflow (hand-labelled), the forum topics and openai-python issues, all coded into the
    nine API categories by the supervised coder trained on the Stack Overflow labels."""
    from conftest import SHARED, copy_store

    from devquarry.classify import classify

    db = copy_store(so_labelled_db, tmp_path_factory.mktemp("three"))
    with Store(db) as s:
        ingest_discourse(s, [SHARED / "discourse-openai-forum" / "topics_with_posts.json"])
        ingest_github(s, [SHARED / "github-issues-llm-vendors" / "OpenAI_openai-python.csv"])
        classify(s, "chen2025-so-api", method="supervised")
    return db


def test_stats_against_known_values():
    assert wilson_ci(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Wilson (1927) score interval, z = 1.96
    lo, hi = median_ci(np.arange(1, 101))
    assert (lo, hi) == (40.0, 61.0)  # the 40th and 61st of 100 ordered values, the textbook interval
    assert bootstrap_ci([1, 0, 1, 1], seed=0) == bootstrap_ci([1, 0, 1, 1], seed=0)
    up = mann_kendall([1, 3, 2, 5, 8, 9, 12])
    assert up["trend"] == "increasing" and up["slope_lo"] > 0
    assert mann_kendall([5, 4, 5, 4, 5, 4])["trend"] == "no trend"
    assert mann_kendall([3, 3, 3])["trend"] == "flat"


def test_trends_on_stack_overflow(three_platforms):
    with Store(three_platforms, read_only=True) as s:
        t = trends(s, "code", codebook="chen2025-so-api", sources=["stackoverflow"]).set_index("group")
        long = series(s, "source", sources=["stackoverflow"])
        u = trends(s, "source", sources=["stackoverflow"], measure="pct_unresolved").set_index("group")
    # Questions on every API category grew quarter on quarter after ChatGPT's release; code
    # generation's 39 questions grew too, but not significantly (p 0.06, by the hand labels as well).
    assert (t.drop(index="code").trend == "increasing").all() and (t.slope > 0).all()
    assert t.loc["code", "trend"] == "no trend" and t.loc["code", "threads"] < 50 and t.loc["code", "p_value"] < 0.1
    assert t.loc["chat", "slope"] > t.loc["gpt-actions", "slope"]
    # The series is the last unbroken run of quarters (the labelled questions: 2021 Q1 on); stray earlier ones stay out.
    assert long.period.min() == pd.Timestamp("2021-01-01") and (long.threads > 0).all()
    # And the share left without an accepted answer rose too.
    assert (
        u.loc["stackoverflow", "trend"] == "increasing"
        and u.loc["stackoverflow", "last_value"] > u.loc["stackoverflow", "first_value"]
    )


def test_cross_platform_side_by_side(three_platforms):
    with Store(three_platforms, read_only=True) as s:
        long = compare(s, "chen2025-so-api")
    wide = side_by_side(long).set_index("group")
    assert set(long.source) == {"stackoverflow", "discourse:community.openai.com", "github:openai/openai-python"}
    assert wide.loc["(all)", "stackoverflow: threads"] == 2291
    assert wide.loc["(all)", "discourse:community.openai.com: threads"] == 163
    assert wide.loc["(all)", "github:openai/openai-python: threads"] == 783
    for src in long.source.unique():  # each platform's shares add up to one
        assert wide.drop("(all)")[f"{src}: share"].sum() == pytest.approx(1.0)
    # Issues are far more often resolved than questions on either forum.
    assert (
        wide.loc["(all)", "github:openai/openai-python: pct_unresolved"]
        < 0.4
        < wide.loc["(all)", "stackoverflow: pct_unresolved"]
    )
    assert wide.loc["chat", "name"] == "Chat API"


def test_hotspots_with_fix_limit_and_examples(three_platforms):
    with Store(three_platforms, read_only=True) as s:
        h = hotspots(s, "code", codebook="chen2025-so-api", sources=["stackoverflow"]).set_index("group")
    assert (h.score == np.sqrt(h.popularity * h.difficulty)).all()
    assert h.is_hotspot.equals((h.popularity >= 0.5) & (h.difficulty >= 0.5))
    assert h.index[0] in h[h.is_hotspot].index
    assert h.loc["embeddings", "fix"] == "rag" and h.loc["fine-tuning", "fix"] == "fine-tuning"
    assert h.loc["chat", "limit"] == "context-limits"  # token limits are the chat questions' most named limit
    ex = h.loc["assistants", "examples"]
    assert len(ex) == 3 and all(e["url"].startswith("https://stackoverflow.com/questions/") for e in ex)
    assert ex[0]["views"] >= ex[1]["views"] >= ex[2]["views"]
    assert fix_for("chen2024-forum", "A") == "provider" and fix_for("chen2024-forum", "C.4") == "rag"


def test_cli_trends_compare_hotspots(three_platforms):
    rows = json.loads(run_cli("trends", "--by", "source", "--json", db=three_platforms).stdout)
    assert {r["group"] for r in rows} == {"stackoverflow", "discourse:community.openai.com", "github:openai/openai-python"}
    proc = run_cli("compare", "--codebook", "chen2025-so-api", "--csv", db=three_platforms)
    wide = pd.read_csv(__import__("io").StringIO(proc.stdout))
    assert wide.group.iloc[0] == "(all)" and "stackoverflow: pct_unresolved" in wide.columns
    hot = json.loads(
        run_cli("hotspots", "--codebook", "chen2025-so-api", "--source", "stackoverflow", "--json", db=three_platforms).stdout
    )
    assert hot[0]["is_hotspot"] and hot[0]["fix"] in {"prompt-engineering", "rag", "fine-tuning", "provider"}
    table = run_cli("hotspots", "--codebook", "chen2025-so-api", "--table", db=three_platforms)
    assert table.returncode == 0 and "score" in table.stdout
    bad = run_cli("trends", "--measure", "likes", db=three_platforms)
    assert bad.returncode == 2 and "likes" in bad.stderr
