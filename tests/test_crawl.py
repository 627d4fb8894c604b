"""Crawlers against a real HTTP server on 127.0.0.1 that serves the shared corpora in the APIs'
own shapes and injects faults (tests/crawl_server.py)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED, run_cli
from crawl_server import CrawlServer

from devquarry import Store, ingest_discourse, ingest_stackexchange
from devquarry.crawl import Archive, CrawlError, DiscourseCrawler, GitHubCrawler, HttpClient, StackExchangeCrawler

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="real corpora not found")
FORUM = SHARED / "discourse-openai-forum" / "topics_with_posts.json"


@pytest.fixture
def server():
    with CrawlServer(SHARED) as srv:
        yield srv


def _client(tmp_path, **kw):
    return HttpClient(**{"rate": 6000, "timeout": 1.0, "backoff": 0.05, "archive": Archive(tmp_path / "archive"), **kw})


def _snapshot(db) -> tuple[set, set]:
    with Store(db, read_only=True) as s:
        threads = set(s.con.execute("SELECT source_id, content_hash FROM thread").fetchall())
        replies = set(s.con.execute("SELECT reply_id, thread_id, content_hash FROM reply").fetchall())
    return threads, replies


def test_discourse_crawl_survives_faults_and_matches_the_file(tmp_path, server):
    ordered = server.forum.ordered()
    deleted, flaky, slow = ordered[3]["id"], ordered[40]["id"], ordered[70]["id"]
    server.gone.add(deleted)
    server.faults.update(
        {
            "/latest.json": ["429"],
            f"/t/{flaky}.json": ["500", "truncate"],
            f"/t/{slow}.json": ["slow"],
            f"/t/{ordered[100]['id']}/posts.json": ["500"],
        }
    )
    server.slow_seconds = 2.0
    with Store(tmp_path / "c.duckdb") as s, _client(tmp_path) as client:
        counts = DiscourseCrawler(s, client, server.base).run()
        crawled = s.query("SELECT source_id, count(*) n FROM thread GROUP BY 1")
        replies = s.query("SELECT thread_id, reply_id, is_accepted FROM reply")
    assert counts["threads"] == 162 and counts["gone"] == 1 and len(crawled) == 162 and (crawled.n == 1).all()
    assert str(deleted) not in set(crawled.source_id)
    assert client.waited >= 1.0  # the 429's wait_seconds was honoured
    assert server.paths().count(f"/t/{flaky}.json") == 3 and server.paths().count(f"/t/{slow}.json") == 2
    # The same topics and replies as importing the published file (the deleted topic aside).
    with Store(tmp_path / "f.duckdb") as f:
        ingest_discourse(f, [FORUM])
        expected = f.query("SELECT thread_id, reply_id, is_accepted FROM reply WHERE thread_id <> ?", [str(deleted)])
    assert set(map(tuple, replies.values.tolist())) == set(map(tuple, expected.values.tolist()))
    assert len(expected) > 300 and expected.is_accepted.sum() >= 10


def test_rate_limit_and_user_agent(tmp_path, server):
    with Store(tmp_path / "c.duckdb") as s, _client(tmp_path, rate=600) as client:
        DiscourseCrawler(s, client, server.base, max_topics=25).run()
    times = [t for t, _ in server.requests]
    assert len(times) >= 30
    # No 3-second window holds more than 30 requests (600 a minute), as the server counted them.
    assert max(sum(1 for u in times if t <= u < t + 3.0) for t in times) <= 30
    assert (len(times) - 1) / (times[-1] - times[0]) <= 10
    assert all(h.get("User-Agent", "").startswith("devquarry/") for h in server.headers_seen)


def test_second_crawl_fetches_only_what_changed(tmp_path, server):
    db = tmp_path / "c.duckdb"
    with Store(db) as s, _client(tmp_path) as client:
        DiscourseCrawler(s, client, server.base).run()
    busy = next(t for t in server.forum.ordered()[50:] if len(t["post_comments"]) > 10)
    server.forum.bump(busy["id"], "2030-01-01T00:00:00.000Z", "<p>Fixed by rotating the key.</p>")
    server.requests.clear()
    with Store(db) as s, _client(tmp_path) as client:
        counts = DiscourseCrawler(s, client, server.base).run()
        new = s.query("SELECT body_text FROM reply WHERE thread_id = ? ORDER BY created_at DESC LIMIT 1", [str(busy["id"])])
    tid = busy["id"]
    chunks = -(-(len(busy["post_comments"]) - 5) // 20)
    assert server.paths() == ["/latest.json?page=0", f"/t/{tid}.json"] + [
        p for p in server.paths()[2:] if p.startswith(f"/t/{tid}/posts.json")
    ]
    assert len(server.paths()) == 2 + chunks and counts["threads"] == 1
    assert new.body_text[0] == "Fixed by rotating the key."
    server.requests.clear()
    with Store(db) as s, _client(tmp_path) as client:
        assert DiscourseCrawler(s, client, server.base).run()["threads"] == 0
    assert server.paths() == ["/latest.json?page=0"]


@pytest.mark.slow
def test_killed_crawl_resumes_to_the_same_store(tmp_path, server):
    full = tmp_path / "full.duckdb"
    proc = run_cli("crawl", "discourse", server.base, "--rate", "6000", db=full)
    assert proc.returncode == 0, proc.stderr
    server.requests.clear()
    server.delay = 0.01
    killed = tmp_path / "killed.duckdb"
    cmd = [sys.executable, "-m", "devquarry", "crawl", "discourse", server.base, "--rate", "6000", "--db", str(killed)]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "DEVQUARRY_DB": ""})
    deadline = time.time() + 120
    while len(server.requests) < 90 and time.time() < deadline:  # in the middle of the third page
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Store(killed, read_only=True) as s:
        partial = s.con.execute("SELECT count(*) FROM thread").fetchone()[0]
        state = s.crawl_state("discourse", f"{server.base}|latest")
    assert 0 < partial < 163 and state["cursor"]["page"] >= 1
    again = run_cli("crawl", "discourse", server.base, "--rate", "6000", db=killed)
    assert again.returncode == 0, again.stderr
    assert _snapshot(killed) == _snapshot(full)
    with Store(killed, read_only=True) as s:
        runs = s.runs()
        assert list(runs.command) == ["crawl discourse"]  # the resumed crawl finished the interrupted run
        assert s.crawl_state("discourse", f"{server.base}|latest")["cursor"] is None


def test_replay_from_the_archive_needs_no_server(tmp_path, server):
    with Store(tmp_path / "live.duckdb") as s, _client(tmp_path) as client:
        DiscourseCrawler(s, client, server.base, max_topics=40).run()
    server.requests.clear()
    with Store(tmp_path / "replayed.duckdb") as s, _client(tmp_path, replay=True) as client:
        DiscourseCrawler(s, client, server.base, max_topics=40).run()
    assert server.requests == [] and client.requests == 0
    assert _snapshot(tmp_path / "replayed.duckdb") == _snapshot(tmp_path / "live.duckdb")
    with Store(tmp_path / "other.duckdb") as s, _client(tmp_path, replay=True) as client:
        with pytest.raises(CrawlError, match="not in the archive"):
            DiscourseCrawler(s, client, server.base, category="general/9").run()


def test_github_issues_with_comments_paging_and_rate_limit(tmp_path, server):
    repo = server.issues.repo
    server.faults[f"/repos/{repo}/issues"] = ["ratelimit", "429-retry-after"]
    db = tmp_path / "g.duckdb"
    with Store(db) as s, _client(tmp_path) as client:
        counts = GitHubCrawler(s, client, repo, api_url=server.base).run()
        issues = s.query("SELECT source_id, reply_count, is_resolved, closed_at FROM threads")
        replies = s.query("SELECT thread_id, count(*) n FROM reply GROUP BY 1")
    assert client.waited >= 1.0  # waited for the quota to reset, then for Retry-After
    expected = {str(i["number"]): i["comments"] for i in server.issues.issues if "pull_request" not in i}
    assert counts["threads"] == len(issues) == len(expected) == 20 and "999999" not in set(issues.source_id)
    assert dict(zip(replies.thread_id, replies.n)) == {k: v for k, v in expected.items() if v}
    assert counts["pages"] == 3  # 21 items incl. the pull request, 8 a page, by the Link headers
    assert issues.is_resolved.sum() == sum(1 for i in server.issues.issues if i["state"] == "closed" and "pull_request" not in i)
    server.requests.clear()
    with Store(db) as s, _client(tmp_path) as client:
        assert GitHubCrawler(s, client, repo, api_url=server.base).run()["threads"] == 0
    assert len(server.requests) == 1 and "since=" in server.requests[0][1]


def test_stackexchange_api_into_the_dump_tables(tmp_path, server):
    db = tmp_path / "se.duckdb"
    server.faults["/2.3/questions"] = [None, "backoff"]
    with Store(db) as s, _client(tmp_path, params={"key": "SECRETKEY123"}) as client:
        StackExchangeCrawler(s, client, "meta.cstheory", api_url=server.base + "/2.3").run()
        api = s.query("SELECT source, source_id, accepted_reply_id, reply_count FROM threads ORDER BY source_id")
        answers = s.query("SELECT reply_id, thread_id FROM reply WHERE kind = 'answer' ORDER BY reply_id")
    with Store(tmp_path / "dump.duckdb") as d:
        ingest_stackexchange(d, SHARED / "stackexchange-dump-cstheory-meta")
        dump = d.query("SELECT source, source_id, accepted_reply_id, reply_count FROM threads ORDER BY source_id")
        dump_answers = d.query("SELECT reply_id, thread_id FROM reply WHERE kind = 'answer' ORDER BY reply_id")
    assert len(api) == 589 and api.equals(dump)
    # The backoff in the second page's answer held the next call back for a second.
    second = [i for i, (_, p) in enumerate(server.requests) if p.startswith("/2.3/questions?")][1]
    assert server.requests[second + 1][0] - server.requests[second][0] >= 1.0
    assert len(answers) == 1322 and answers.equals(dump_answers)
    assert all("key=SECRETKEY123" in (q.split("?")[1] if "?" in q else "") for _, q in server.requests if q.startswith("/2.3/"))
    # The key reached the server and nothing else: not the archive, not the store.
    blobs = [p.read_bytes() for p in (tmp_path / "archive").iterdir()]
    import gzip

    assert blobs and not any(b"SECRETKEY123" in gzip.decompress(b) for b in blobs)
    assert b"SECRETKEY123" not in db.read_bytes()


def test_cli_github_token_never_written(tmp_path, server):
    db = tmp_path / "g.duckdb"
    proc = run_cli(
        "crawl",
        "github",
        server.issues.repo,
        "--api-url",
        server.base,
        "--rate",
        "6000",
        "--token-env",
        "DQ_TOKEN",
        db=db,
        env={"DQ_TOKEN": "ghp_TOPSECRET"},
    )
    assert proc.returncode == 0, proc.stderr
    assert any(h.get("Authorization") == "Bearer ghp_TOPSECRET" for h in server.headers_seen)
    assert "TOPSECRET" not in proc.stdout + proc.stderr and b"TOPSECRET" not in db.read_bytes()
    import gzip

    archive = Path(f"{db}.archive")
    assert not any(b"TOPSECRET" in gzip.decompress(p.read_bytes()) for p in archive.iterdir())
    server.requests.clear()
    since = run_cli("crawl", "github", server.issues.repo, "--api-url", server.base, "--since", "2024-05-01", db=db)
    assert since.returncode == 0 and "since=2024-05-01T00%3A00%3A01Z" in server.requests[0][1]
    bad = run_cli("crawl", "github", "not-a-repo", db=db)
    assert bad.returncode == 2 and "OWNER/REPO" in bad.stderr
