"""Hostile servers on 127.0.0.1 (tests/hostile_server.py) against the crawlers, the chat client and the
embeddings client: secrets that must not reach another origin, answers too large or too slow, pages
without end, and answers of the wrong shape. Each ends in one line naming the url, exit 2, the store
as it was."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from hostile_server import HostileServer, listing, topic

from devquarry import Store
from devquarry.ask.draft import chat
from devquarry.crawl import CrawlError, HttpClient
from devquarry.embeddings.openai_api import OpenAIEmbedder
from devquarry.errors import InputError
from devquarry.http_policy import RetryPolicy

KEY = "SEKRIT-KEY-0123456789"


@pytest.fixture
def a():
    with HostileServer() as srv:
        yield srv


@pytest.fixture
def b():  # another origin: another port on 127.0.0.1
    with HostileServer() as srv:
        yield srv


def _leaked(server: HostileServer) -> list:
    return [r for r in server.seen if KEY in json.dumps(r)]


def _one_line_exit_2(proc, *words) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _untouched(db: Path) -> None:
    """A failed first page leaves no thread, no run, no checkpoint."""
    if not db.exists():
        return
    with Store(db, read_only=True) as s:
        assert s.counts()["thread"] == 0 and s.counts()["run"] == 0
        assert s.con.execute("SELECT count(*) FROM crawl_state").fetchone()[0] == 0


def _discourse(base: str, db: Path, *extra: str, env: dict | None = None):
    return run_cli("crawl", "discourse", base, "--rate", "60000", *extra, db=db, env=env)


# 1. Credentials go only to the origin the user named.


def test_discourse_api_key_not_sent_across_a_redirect(tmp_path, a, b):
    a.routes["/latest.json"] = lambda h, q, _: h.redirect(f"{b.base}/latest.json?page=0")
    b.routes["/latest.json"] = lambda h, q, _: h.send_json(200, listing([], False))
    db = tmp_path / "d.duckdb"
    proc = _discourse(a.base, db, "--api-key-env", "DQ_KEY", env={"DQ_KEY": KEY, "DISCOURSE_API_USERNAME": KEY})
    line = _one_line_exit_2(proc, "another origin", "latest.json")
    assert KEY not in proc.stderr + proc.stdout and not _leaked(b) and b.seen == [] and line
    assert any(r["headers"].get("Api-Key") == KEY for r in a.seen)  # the named origin did get it
    _untouched(db)
    # Without credentials the same redirect is followed: nothing secret can leak.
    ok = _discourse(a.base, tmp_path / "plain.duckdb")
    assert ok.returncode == 0, ok.stderr
    assert b.hits("/latest.json") == 1


def test_github_token_not_sent_to_a_link_or_comments_url_of_another_origin(tmp_path, a, b):
    issue = {
        "number": 1,
        "title": "t",
        "body": "b",
        "state": "open",
        "user": {"login": "x"},
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:00:00Z",
        "labels": [],
        "comments": 1,
        "html_url": "https://github.com/o/r/issues/1",
        "comments_url": f"{b.base}/repos/o/r/issues/1/comments",
    }
    a.routes["/repos/o/r/issues"] = lambda h, q, _: h.send_json(200, [issue])
    b.routes["/repos/o/r/issues/1/comments"] = lambda h, q, _: h.send_json(200, [])
    env = {"DQ_TOKEN": KEY}
    db = tmp_path / "g.duckdb"
    proc = run_cli("crawl", "github", "o/r", "--api-url", a.base, "--rate", "60000", "--token-env", "DQ_TOKEN", db=db, env=env)
    _one_line_exit_2(proc, "another origin", "comments")
    assert not _leaked(b) and KEY not in proc.stderr
    _untouched(db)
    # The Link header's next page on another origin.
    quiet = dict(issue, comments=0)
    a.routes["/repos/o/r/issues"] = lambda h, q, _: h.send_json(
        200, [quiet], {"Link": f'<{b.base}/repos/o/r/issues?page=2>; rel="next"'}
    )
    b.routes["/repos/o/r/issues"] = lambda h, q, _: h.send_json(200, [])
    proc = run_cli("crawl", "github", "o/r", "--api-url", a.base, "--rate", "60000", "--token-env", "DQ_TOKEN", db=db, env=env)
    _one_line_exit_2(proc, "another origin")
    assert not _leaked(b) and b.seen == []
    # An origin the user trusts gets it.
    trusted = run_cli(
        "crawl", "github", "o/r", "--api-url", a.base, "--rate", "60000", "--token-env", "DQ_TOKEN",
        db=tmp_path / "t.duckdb", env={**env, "DEVQUARRY_TRUSTED_ORIGINS": b.base},
    )  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    assert any(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in b.seen)


def test_stackexchange_key_not_sent_across_a_redirect(tmp_path, a, b):
    # The hostile server even echoes the key in its Location.
    a.routes["/2.3/questions"] = lambda h, q, _: h.redirect(f"{b.base}/2.3/questions?key={q['key'][0]}&page=1")
    b.routes["/2.3/questions"] = lambda h, q, _: h.send_json(200, {"items": [], "has_more": False})
    db = tmp_path / "se.duckdb"
    proc = run_cli("crawl", "stackexchange", "--site", "x", "--api-url", a.base + "/2.3", "--key", KEY, db=db)
    _one_line_exit_2(proc, "another origin")
    assert not _leaked(b) and KEY not in proc.stderr and any(KEY in r["query"] for r in a.seen)
    _untouched(db)


def test_a_body_that_echoes_the_key_is_redacted(a):
    def echo(h, q, body):
        h.send_json(401, {"error": f"bad key {h.headers.get('Authorization')}", "ctl": "\x1b[31m"})

    a.routes["/v1/chat/completions"] = echo
    a.routes["/v1/embeddings"] = echo
    fast = RetryPolicy(timeout=5, retries=0)
    with pytest.raises(InputError) as err:
        chat([{"role": "user", "content": "hi"}], base_url=a.base + "/v1", model="m", key=KEY, max_tokens=8, policy=fast)
    assert "HTTP 401" in str(err.value) and KEY not in str(err.value) and "[redacted]" in str(err.value)
    assert "\x1b" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError) as err:
        OpenAIEmbedder("m", base_url=a.base + "/v1", api_key=KEY, policy=fast).encode(["x"])
    assert "HTTP 401" in str(err.value) and KEY not in str(err.value)


# 4. Answers too large: capped while decoding, not retried, nothing kept.


def test_a_gzip_bomb_and_a_huge_body_stop_at_the_cap_once(tmp_path, a):
    a.routes["/latest.json"] = lambda h, q, _: h.gzip_bomb(20 * 2**20)
    db = tmp_path / "d.duckdb"
    proc = _discourse(a.base, db, "--max-response-mb", "1")
    _one_line_exit_2(proc, "latest.json", "larger than the limit of 1048576 bytes")
    assert a.hits("/latest.json") == 1
    _untouched(db)
    assert not any(Path(f"{db}.archive").glob("*.json.gz"))
    a.routes["/latest.json"] = lambda h, q, _: h.send_raw(200, b"[" + b"0," * 2**20 + b"0]")
    proc = _discourse(a.base, db, env={"DEVQUARRY_MAX_RESPONSE_MB": "1"})
    _one_line_exit_2(proc, "latest.json", "more than the limit of 1048576")
    assert a.hits("/latest.json") == 2  # one request each: a too-large answer is not fetched again
    _untouched(db)


# 5. Work that never ends.


def test_a_trickle_stops_at_the_deadline(a):
    a.routes["/latest.json"] = lambda h, q, _: h.trickle(20)
    started = time.monotonic()
    with HttpClient(rate=60000, timeout=1.0, retries=1, backoff=0.05) as client:
        with pytest.raises(CrawlError, match="latest.json: gave up after 2 attempts \\(no full answer within 1 s\\)"):
            client.get_json(a.base + "/latest.json")
    assert time.monotonic() - started < 6


def test_the_chat_client_caps_the_answer_the_wait_and_the_time(a):
    messages = [{"role": "user", "content": "hi"}]
    a.routes["/v1/chat/completions"] = lambda h, q, _: h.send_json(200, {"choices": [{"message": {"content": "x" * 3_000_000}}]})
    fast = RetryPolicy(timeout=1.0, retries=1, backoff=0.05, max_wait=5)
    with pytest.raises(InputError, match="answered more than 66048 bytes, too much for --answer-tokens 16"):
        chat(messages, base_url=a.base + "/v1", model="m", key=None, max_tokens=16, policy=fast)
    a.routes["/v1/chat/completions"] = lambda h, q, _: h.trickle(20)
    started = time.monotonic()
    with pytest.raises(InputError, match="failed after 2 attempts \\(no full answer in time\\)"):
        chat(messages, base_url=a.base + "/v1", model="m", key=None, max_tokens=16, policy=fast)
    assert time.monotonic() - started < 6
    a.routes["/v1/chat/completions"] = lambda h, q, _: h.send_json(429, {}, {"Retry-After": "999999"})
    with pytest.raises(InputError, match="asks to wait 999999 s, more than the limit of 5 s"):
        chat(messages, base_url=a.base + "/v1", model="m", key=None, max_tokens=16, policy=fast)


def test_discourse_the_same_page_forever_or_new_topics_forever(tmp_path, a):
    a.routes["/latest.json"] = lambda h, q, _: h.send_json(200, listing([1, 2], True))
    for t in (1, 2, 3, 4, 5, 6):
        a.routes[f"/t/{t}.json"] = lambda h, q, _, t=t: h.send_json(200, topic(t))
    db = tmp_path / "same.duckdb"
    _one_line_exit_2(_discourse(a.base, db), "page=1", "page 2 of the topic list repeats page 1")
    assert a.hits("/latest.json") == 2
    # New topics on every page, without end: --max-pages stops it, and a second run resumes.
    a.routes["/latest.json"] = lambda h, q, _: h.send_json(200, listing([int(q["page"][0]) + 1], True))
    db = tmp_path / "endless.duckdb"
    _one_line_exit_2(_discourse(a.base, db, "--max-pages", "3"), "stopped after 3 pages of the topic list (--max-pages)")
    with Store(db, read_only=True) as s:
        assert s.counts()["thread"] == 3 and s.crawl_state("discourse", f"{a.base}|latest")["cursor"]["page"] == 3


def test_github_the_same_link_forever(tmp_path, a):
    a.routes["/repos/o/r/issues"] = lambda h, q, _: h.send_json(
        200, [], {"Link": f'<{a.base}/repos/o/r/issues?page=2>; rel="next"'}
    )
    db = tmp_path / "g.duckdb"
    proc = run_cli("crawl", "github", "o/r", "--api-url", a.base, "--rate", "60000", db=db)
    _one_line_exit_2(proc, "page=2", "page 3 of the issue list repeats page 2")
    assert a.hits("/repos/o/r/issues") == 3


def test_stackexchange_has_more_forever(tmp_path, a):
    a.routes["/2.3/questions"] = lambda h, q, _: h.send_json(200, {"items": [], "has_more": True})
    db = tmp_path / "se.duckdb"
    proc = run_cli("crawl", "stackexchange", "--site", "x", "--api-url", a.base + "/2.3", "--rate", "60000", db=db)
    _one_line_exit_2(proc, "page=2", "repeats page 1")
    assert a.hits("/2.3/questions") == 2


# 8. Answers of the wrong kind: one line with the url and what was wrong.


def test_wrong_answers_end_in_one_line(tmp_path, a):
    db = tmp_path / "d.duckdb"
    a.routes["/latest.json"] = lambda h, q, _: h.redirect("/latest.json")
    _one_line_exit_2(_discourse(a.base, db), "latest.json", "more than 5 redirects")
    a.routes["/latest.json"] = lambda h, q, _: h.send_json(200, [1, 2, 3])
    _one_line_exit_2(_discourse(a.base, db), "latest.json", "expected a JSON object, got list")
    a.routes["/latest.json"] = lambda h, q, _: h.send_json(200, {"topic_list": {"topics": [{"title": "no id"}]}})
    _one_line_exit_2(_discourse(a.base, db), "latest.json", "field 'id' missing")
    a.routes["/latest.json"] = lambda h, q, _: h.send_raw(200, b"<html>maintenance</html>", {"Content-Type": "text/html"})
    _one_line_exit_2(_discourse(a.base, db), "latest.json", "not JSON (Content-Type 'text/html')")
    assert a.hits("/latest.json") == 6 + 1 + 1 + 1  # 1 + 5 redirects; the HTML page was not asked for again
    _untouched(db)
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "tomorrow"}
    a.routes["/repos/o/r/issues"] = lambda h, q, _: h.send_json(200, [], reset)
    proc = run_cli("crawl", "github", "o/r", "--api-url", a.base, "--rate", "60000", db=db)
    _one_line_exit_2(proc, "issues", "unreadable X-RateLimit-Reset header 'tomorrow'")
    a.routes["/2.3/questions"] = lambda h, q, _: h.send_json(200, {"items": [], "has_more": False, "backoff": "1e12"})
    proc = run_cli("crawl", "stackexchange", "--site", "x", "--api-url", a.base + "/2.3", db=db)
    _one_line_exit_2(proc, "questions", "backoff in 1000000000000 s, more than the limit of 900 s")
    _untouched(db)


def test_an_unreadable_retry_after_is_named_in_the_final_error(a):
    a.routes["/latest.json"] = lambda h, q, _: h.send_json(429, {}, {"Retry-After": "soon"})
    with HttpClient(rate=60000, retries=2, backoff=0.01) as client:
        with pytest.raises(
            CrawlError, match="latest.json: gave up after 3 attempts \\(HTTP 429, unreadable Retry-After 'soon'\\)"
        ):
            client.get_json(a.base + "/latest.json")


# 10. A crawl killed before its first page leaves no run behind.


def test_a_crawl_killed_before_its_first_page_records_no_run(tmp_path, a):
    a.routes["/latest.json"] = lambda h, q, _: h.trickle(30, every=0.5)
    db = tmp_path / "k.duckdb"
    cmd = [sys.executable, "-m", "devquarry", "crawl", "discourse", a.base, "--db", str(db)]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "DEVQUARRY_DB": ""})
    deadline = time.time() + 60
    while not a.seen and time.time() < deadline:
        time.sleep(0.05)
    assert a.seen
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    _untouched(db)
    runs = run_cli("runs", "--json", db=db)
    assert runs.returncode == 0 and json.loads(runs.stdout or "[]") == []
