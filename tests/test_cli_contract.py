"""The command line's contract with a newcomer: exit codes, stores, progress and help (issue 11)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from conftest import ROOT, run_cli

from devquarry import Store
from devquarry.crawl import CrawlError, HttpClient


@pytest.mark.parametrize(
    "args, says",
    [
        (["ingets"], "No such command 'ingets'"),
        (["metrics", "--bogus"], "No such option: --bogus"),
        (["topics", "--min-topic-size", "abc"], "Invalid value for '--min-topic-size'"),
        (["ingest", "table"], "Missing argument"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, says, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr
    assert "Error" not in lines[0].split(":")[0] and "UsageError" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["metrics"],
        ["topics"],
        ["classify", "--codebook", "chen2025-so-api"],
        ["report"],
        ["ask", "rate limit"],
        ["labels", "shares", "--codebook", "chen2025-so-api"],
    ],
)
def test_commands_on_a_missing_store_exit_2_and_create_nothing(args, tmp_path):
    db = tmp_path / "missing.duckdb"
    proc = run_cli(*args, db=db, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert str(db) in proc.stderr and "no such store" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_failed_first_ingest_leaves_no_file(tmp_path):
    db = tmp_path / "new.duckdb"
    proc = run_cli("ingest", "stackexchange", str(ROOT / "tests" / "fixtures" / "se_truncated"), db=db)
    assert proc.returncode == 2 and "malformed XML" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_exits_130_and_leaves_the_store_as_it_was(tmp_path, shared):
    db = tmp_path / "s.duckdb"
    assert run_cli("ingest", "discourse", str(shared / "discourse-openai-forum" / "latest.json"), db=db).returncode == 0
    files = sorted((shared / "github-issues-llm-apps").glob("*.json.gz"))
    files += sorted((shared / "github-issues-llm-vendors").glob("*.csv"))
    # Each file three times (links under other names): about 9 s of CPU, not 4.5, so that the
    # interrupt at 2.5 s lands mid-ingest on a busy machine too (it once landed as the process exited).
    links = tmp_path / "links"
    links.mkdir()
    for copy in "abc":
        for f in files:
            (links / f"{copy}-{f.name}").symlink_to(f)
    files = sorted(str(p) for p in links.iterdir())
    proc = subprocess.Popen(
        [sys.executable, "-m", "devquarry", "ingest", "github", *files, "--encoding", "utf-8,gb18030", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupt once imports are done and parsing has begun (CPU time, not wall time: the machine may be busy).
    watched = psutil.Process(proc.pid)
    while proc.poll() is None and watched.cpu_times().user < 2.5:
        time.sleep(0.05)
    assert proc.poll() is None, "the ingest ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error: interrupted") and "Traceback" not in stderr
    with Store(db, read_only=True) as s:
        assert s.counts()["thread"] == 30 and s.counts()["reply"] == 0
        assert list(s.runs().command) == ["ingest discourse"]


def test_demo_shows_every_step_with_a_summary(demo_db):
    lines = (demo_db.parent / "demo.stderr").read_text().splitlines()
    steps = [ln.split(":")[0].lstrip("✓ ") for ln in lines if ln.startswith("✓ ")]
    assert steps == ["ingest", "topics", "labels", "coding", "metrics", "report"]
    text = "\n".join(lines)
    assert "4,081 new threads" in text and "in 8 themes" in text
    assert "2,299 questions coded and 1,782 off-subject" in text
    assert "4,081 threads coded into chen2025-so-api" in text


def test_runs_show_times_and_topics_help_names_the_real_default(demo_db):
    proc = run_cli("runs", db=demo_db)
    assert proc.returncode == 0
    assert " UTC" in proc.stdout and ":" in proc.stdout.split("UTC")[0][-9:]
    from devquarry.embeddings.base import DEFAULT_EMBEDDING

    help_text = run_cli("topics", "--help").stdout
    assert f"{DEFAULT_EMBEDDING} (default)" in " ".join(help_text.split())


def test_replay_of_an_empty_archive_does_not_promise_a_resume(tmp_path):
    (tmp_path / "arch").mkdir()
    proc = run_cli(
        "crawl", "discourse", "http://127.0.0.1:9", "--replay", "--archive", str(tmp_path / "arch"), db=tmp_path / "c.duckdb"
    )
    assert proc.returncode == 2 and "not in the archive" in proc.stderr
    assert "run the same command again" not in proc.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_crawl_of_an_unreachable_host_fails_on_the_first_request(tmp_path):
    port = _closed_port()
    client = HttpClient(rate=6000, backoff=5.0)
    with pytest.raises(CrawlError, match="cannot connect to 127.0.0.1"):
        client.get_json(f"http://127.0.0.1:{port}/latest.json")
    assert client.requests == 1 and client.waited == 0
    proc = run_cli("crawl", "discourse", f"http://127.0.0.1:{port}", db=tmp_path / "c.duckdb")
    assert proc.returncode == 2 and "crawl not started" in proc.stderr and "Connection refused" in proc.stderr
    assert not (tmp_path / "c.duckdb").exists()


def test_gitignore_keeps_store_side_folders_out():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "*.duckdb.index/" in ignored and "*.duckdb.archive/" in ignored
