"""What a newcomer hits in the sources (issue 11): bots' replies counted as first replies, a table
ingested with no --map and no dates, and encoding damage in the bundled corpus's titles."""

import csv
import json
import re

import pandas as pd
import pytest
from conftest import FIXTURES, run_cli

from devquarry import Store, info, ingest_discourse, ingest_github, ingest_stackexchange
from devquarry.bots import bot_replies, count_bots, set_count_bots
from devquarry.demo import demo_corpus
from devquarry.store import SCHEMA_VERSION
from devquarry.text import repair

QUIVR = FIXTURES / "github_quivr_60.json"
DAMAGE = re.compile("¡[®¯°±]|â€|¨C|£¬")


def _quivr_store(tmp_path):
    s = Store(tmp_path / "quivr.duckdb")
    ingest_github(s, [QUIVR])
    return s


def _median_hours(s) -> float:
    return float(info(s).set_index("source").loc["github:QuivrHQ/quivr", "median_hours_to_first_reply"])


# --- 5. bots' replies ---------------------------------------------------------------------------


def test_bot_replies_are_kept_but_not_first_replies(tmp_path):
    with _quivr_store(tmp_path) as s:
        replies = s.replies()
        bots = replies[replies.is_bot]
        # Kept: dosubot, linear and github-actions wrote most of the comments held.
        assert set(bots.author) >= {"dosubot[bot]", "linear[bot]", "github-actions[bot]"}
        assert not replies[~replies.is_bot].author.str.endswith("[bot]").any()
        assert len(bots) > len(replies) / 2
        # Left out: the first human comment came after a median of 17.4 hours, not seconds.
        assert _median_hours(s) == pytest.approx(17.38, abs=0.01)
        t = s.threads().set_index("source_id")
        assert info(s).threads_with_reply_time.iloc[0] == 14
        # Issue 2004: comments_count 14, the export holds 5 of them, 2 by bots: 12 replies.
        assert t.loc["2004", "reply_count"] == 12
        assert int((t.reply_count == 0).sum()) == 46

        # Counting bots is a store setting; it brings the bots' seconds back.
        assert not count_bots(s)
        set_count_bots(s, True)
        assert count_bots(s)
        assert _median_hours(s) < 0.01
        assert s.threads().set_index("source_id").loc["2004", "reply_count"] == 14
        set_count_bots(s, False)
        assert _median_hours(s) == pytest.approx(17.38, abs=0.01)


def test_bots_command_lists_bots_and_switches_counting(tmp_path):
    db = tmp_path / "q.duckdb"
    assert run_cli("ingest", "github", str(QUIVR), db=db).returncode == 0
    proc = run_cli("ingest", "bots", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    rows = {r["bot"]: r for r in json.loads(proc.stdout)}
    assert rows["linear[bot]"]["first_replies"] > 0 and rows["dosubot[bot]"]["replies"] > 0
    assert run_cli("ingest", "bots", "--count", db=db).returncode == 0
    with Store(db, read_only=True) as s:
        assert count_bots(s) and _median_hours(s) < 0.01
        assert len(bot_replies(s)) == len(rows)


def test_store_of_the_previous_version_gets_the_flag(tmp_path):
    with _quivr_store(tmp_path) as s:
        # Back to what version 7 made: no is_bot column, views that count every reply.
        s.con.execute("CREATE OR REPLACE VIEW threads AS SELECT * FROM thread")
        s.con.execute("CREATE OR REPLACE VIEW replies AS SELECT * FROM reply")
        s.con.execute("ALTER TABLE reply DROP COLUMN is_bot")
        s.con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
        path = s.path
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 9
        assert int(s.query("SELECT count(*) AS n FROM replies WHERE is_bot").n[0]) > 0
        assert _median_hours(s) == pytest.approx(17.38, abs=0.01)
        # Ingesting the same file again changes nothing: the flag is not part of a reply's content.
        counts = ingest_github(s, [QUIVR]).set_index("table")
        assert counts.loc["reply", "new"] == 0 and counts.loc["reply", "updated"] == 0


def test_discourse_system_user_and_stackexchange_community_are_bots(tmp_path):
    topic = json.loads((FIXTURES / "discourse_topic.json").read_text())
    posts = topic["post_stream"]["posts"]
    second = next(p for p in posts if p["post_number"] == 2)
    second.update(username="system", user_id=-1)
    path = tmp_path / "topic.json"
    path.write_text(json.dumps(topic))
    se = tmp_path / "se_small"
    se.mkdir()
    for f in (FIXTURES / "se_small").iterdir():
        (se / f.name).write_bytes(f.read_bytes())
    xml = (se / "Posts.xml").read_text()
    first_answer = re.search(r'<row Id="(\d+)" PostTypeId="2"[^>]*OwnerUserId="(\d+)"', xml)
    (se / "Posts.xml").write_text(
        xml.replace(
            first_answer.group(0), first_answer.group(0).replace(f'OwnerUserId="{first_answer.group(2)}"', 'OwnerUserId="-1"')
        )
    )
    with Store(tmp_path / "s.duckdb") as s:
        ingest_discourse(s, [FIXTURES / "discourse_topic.json"])
        before = s.threads().reply_count.iloc[0]
        ingest_discourse(s, [path])
        r = s.replies()
        assert r.set_index("reply_id").loc[str(second["id"]), "is_bot"]
        assert r.is_bot.sum() == 1
        assert s.threads().reply_count.iloc[0] == before - 1
        ingest_stackexchange(s, se, site="cstheory.meta.stackexchange.com")
        se_replies = s.replies("stackexchange:cstheory.meta.stackexchange.com").set_index("reply_id")
        assert se_replies.loc[first_answer.group(1), "is_bot"] and se_replies.is_bot.sum() == 1


# --- 7. a table with no --map -------------------------------------------------------------------


def _demo_rows(n=30) -> pd.DataFrame:
    return pd.read_csv(demo_corpus(), nrows=n)


def test_table_without_map_and_without_dates_is_refused(tmp_path):
    path = tmp_path / "questions.csv"
    _demo_rows().to_csv(path, index=False)
    proc = run_cli("ingest", "table", str(path), "--source", "so", db=tmp_path / "s.duckdb")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "questions.csv" in lines[0] and "created_at" in lines[0] and "created_time" in lines[0]
    assert "--map created_at=created_time" in lines[0]


def test_table_without_map_maps_columns_named_like_fields(tmp_path):
    rows = _demo_rows()
    path = tmp_path / "named.csv"
    rows.rename(
        columns={"url": "Link", "title": "Title", "created_time": "Creation_Date", "has_accepted_answer": "is_resolved"}
    ).to_csv(path, index=False)
    db = tmp_path / "s.duckdb"
    proc = run_cli("ingest", "table", str(path), "--source", "so", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["new"] == 30
    assert "url=Link" in proc.stderr and "created_at=Creation_Date" in proc.stderr and "title=Title" in proc.stderr
    with Store(db, read_only=True) as s:
        t = s.threads("so")
    assert t.created_at.notna().all()
    expected = pd.to_datetime(rows.created_time, format="%Y/%m/%d %H:%M", utc=True)
    assert sorted(t.created_at) == sorted(expected)
    assert int(t.is_resolved.sum()) == int(rows.has_accepted_answer.sum())


# --- 14. encoding damage ------------------------------------------------------------------------


def test_repair_undoes_gb18030_and_utf8_damage_only():
    assert (
        repair("AttributeError: module ¡®openai¡¯ has no attribute ¡®FineTuneingJob¡¯")
        == "AttributeError: module ‘openai’ has no attribute ‘FineTuneingJob’"
    )
    assert repair("queries ¨C Shard ID None") == "queries – Shard ID None"
    assert repair("al intentar usar m¨¦todo en Python") == "al intentar usar método en Python"
    assert repair("donâ€™t") == "don’t"
    for correct in ("naïve Größe für Bär", "Éxito ¡Hola!", "“quoted” – 中文，标点", "¿Qué? 50 £", "ASCII only"):
        assert repair(correct) == correct


def test_damaged_titles_are_repaired_and_correct_text_kept(tmp_path):
    raw = pd.read_csv(demo_corpus())
    damaged = raw[raw.title.str.contains(DAMAGE)]
    assert len(damaged) >= 15  # the bundled corpus as published
    path = tmp_path / "damaged.csv"
    damaged.to_csv(path, index=False)
    db = tmp_path / "s.duckdb"
    proc = run_cli("ingest", "table", str(path), "--source", "so", "--map", "created_at=created_time", db=db)
    assert proc.returncode == 0, proc.stderr
    with Store(db, read_only=True) as s:
        t = s.threads("so")
    assert len(t) == len(damaged)
    assert not t.title.str.contains(DAMAGE).any() and not t.body_text.str.contains(DAMAGE).any()
    titles = set(t.title)
    assert "AttributeError: module ‘openai’ has no attribute ‘FineTuneingJob’" in titles
    assert "BUG: “Error: 413 The data value transmitted exceeds the capacity limit.” when calling v1/images/edits" in titles

    # Correct non-ASCII titles (Chinese, Spanish, Portuguese, Vietnamese) come through as they were.
    with open(FIXTURES / "vendors_non_ascii.csv", encoding="utf-8", newline="") as fh:
        expected = {re.search(r"/(\d+)$", row[0]).group(1): row[1] for row in csv.reader(fh)}
    with Store(db) as s:
        ingest_github(s, [FIXTURES / "vendors_non_ascii.csv"])
        vendors = s.query("SELECT source_id, title FROM threads WHERE source LIKE 'github:%'")
    got = dict(zip(vendors.source_id, vendors.title))
    assert got == expected
    assert "我想找一个女朋友，怎么找" in got.values() and "La educación en la Edad Media (Escolástica)" in got.values()
    assert any("PROGRAMAÇÃO" in v for v in got.values())


def test_demo_store_has_no_damaged_title(demo_db):
    with Store(demo_db, read_only=True) as s:
        t = s.threads("stackoverflow")
    assert len(t) == 4081
    assert not t.title.str.contains(DAMAGE).any()
    assert not t.title.str.contains("[\u00a1-\u00a9][\u00a1-\u00fe]").any()
