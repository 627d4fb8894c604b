import json

import pandas as pd
import pytest
from conftest import run_cli

from devquarry import Store, ingest_discourse, ingest_github
from devquarry.metrics import metrics


def test_stackoverflow_difficulty_per_api_category(so_labelled_db, shared):
    path = shared / "stackoverflow-openai-api" / "questions_labelled.csv.gz"
    with Store(so_labelled_db, read_only=True) as s:
        m = metrics(s, "code", codebook="chen2025-so-api").set_index("group")
    raw = pd.read_csv(path)
    # Eight rows repeat a question under a duplicate's id (same title and time): counted once.
    raw = raw.sort_values("views", ascending=False).drop_duplicates(["title", "created_time"])
    assert m.attrs["duplicates_dropped"] == 8
    assert m.loc["(all)", "threads"] == 2291
    assert m.loc["(all)", "pct_unresolved"] == pytest.approx(1 - raw.has_accepted_answer.mean())
    assert pd.isna(m.loc["(all)", "pct_no_reply"])  # the export has no reply counts: unknown, not zero
    audio = raw[raw.type == 5]
    assert m.loc["audio", "threads"] == len(audio)
    assert m.loc["audio", "pct_unresolved"] == pytest.approx(1 - audio.has_accepted_answer.mean())
    assert m.loc["(all)", "n_accepted"] == raw.accepted_time.notna().sum()
    # The study's hardest three, in its order: GPT Actions, Assistants, Audio.
    ranked = m.drop("(all)").sort_values("pct_unresolved", ascending=False).index[:3].tolist()
    assert ranked == ["gpt-actions", "assistants", "audio"]
    # Intervals: bootstrap for the small groups, Wilson above 1,000 threads; each holds its estimate.
    assert m.loc["gpt-actions", "ci_method"] == "bootstrap" and m.loc["chat", "ci_method"] == "wilson"
    for g in m.index:
        assert m.loc[g, "pct_unresolved_lo"] <= m.loc[g, "pct_unresolved"] <= m.loc[g, "pct_unresolved_hi"]
    width = m.pct_unresolved_hi - m.pct_unresolved_lo
    assert width["image"] > width["audio"] > width["(all)"]  # 58, 245 and 2,291 threads
    hours = raw.dropna(subset=["accepted_time"])
    hours = (pd.to_datetime(hours.accepted_time) - pd.to_datetime(hours.created_time)).dt.total_seconds() / 3600
    assert m.loc["(all)", "hours_to_accepted_median"] == pytest.approx(hours[hours >= 0].median(), rel=1e-6)
    assert (
        m.loc["(all)", "hours_to_accepted_median_lo"]
        < m.loc["(all)", "hours_to_accepted_median"]
        < m.loc["(all)", "hours_to_accepted_median_hi"]
    )


def test_forum_and_github_difficulty(tmp_path, shared):
    with Store(tmp_path / "s.duckdb") as s:
        ingest_discourse(s, [shared / "discourse-openai-forum" / "topics_with_posts.json"])
        ingest_github(s, [shared / "github-issues-llm-vendors" / "OpenAI_openai-python.csv"])
        m = metrics(s, "source").set_index("group")
    forum = m.loc["discourse:community.openai.com"]
    topics = json.loads((shared / "discourse-openai-forum" / "topics_with_posts.json").read_text())
    replies = [sum(1 for p in t["post_comments"] if p["post_number"] > 1 and p["post_type"] == 1) for t in topics]
    complete = [t for t, r in zip(topics, replies) if len(t["post_comments"]) >= t["posts_count"]]
    assert forum.threads == 163 and forum.n_reply_count == 163
    assert forum.pct_no_reply == pytest.approx(sum(1 for r in replies if r == 0) / 163, abs=0.02)
    assert 0 < forum.hours_to_first_reply_median < forum.hours_to_first_reply_mean
    gh = m.loc["github:openai/openai-python"]
    assert gh.threads == 783 and gh.pct_unresolved == pytest.approx(1 - 528 / 783)
    assert len(complete) >= 159


def test_cli_metrics_by_period(so_copy):
    db = so_copy
    rows = json.loads(run_cli("metrics", "--by", "period", "--period", "year", "--json", db=db).stdout)
    assert rows[0]["group"] == "(all)" and sum(r["threads"] for r in rows[1:]) == 2291
    rows = json.loads(run_cli("metrics", "--by", "period", "--period", "year", "--keep-duplicates", "--json", db=db).stdout)
    assert sum(r["threads"] for r in rows[1:]) == 2299
    bad = run_cli("metrics", "--by", "code", db=db)
    assert bad.returncode == 2 and "needs --codebook" in bad.stderr
