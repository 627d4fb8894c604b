import json
import re

import lxml.html
import pandas as pd
from conftest import run_cli

from devquarry import Store, build_report, ingest_table
from devquarry.demo import demo_corpus
from devquarry.store import SCHEMA_VERSION

EVIL_TITLE = '<script>alert("x")</script> How do I stop <img src=x onerror=alert(1)> in replies?'


def test_report_escapes_every_post_string(tmp_path):
    csv = tmp_path / "evil.csv"
    pd.DataFrame(
        [
            {
                "url": "https://stackoverflow.com/questions/1/x",
                "title": EVIL_TITLE,
                "body": "<script>document.write(1)</script>",
                "views": 999,
            },
            {"url": "javascript:alert(2)", "title": "a javascript link", "body": "b", "views": 5},
        ]
    ).to_csv(csv, index=False)
    with Store(tmp_path / "s.duckdb") as s:
        ingest_table(s, [csv], source="so-evil")
        html = build_report(s, tmp_path / "r.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript:' not in html
    # Self-contained: no script, style or image is fetched from anywhere.
    doc = lxml.html.fromstring(html)
    assert not doc.xpath("//script[@src] | //link[@href] | //img[@src] | //iframe")
    assert len(doc.xpath("//script")) >= 2  # plotly.js inline, then one per figure


def test_demo_then_info_and_report(demo_db):
    info = json.loads(run_cli("info", "--json", db=demo_db).stdout)
    assert len(info) == 1
    so = info[0]
    raw = pd.read_csv(demo_corpus())
    assert so["source"] == "stackoverflow" and so["threads"] == len(raw) == 4081
    assert abs(so["share_resolved"] - raw.has_accepted_answer.mean()) < 1e-9
    assert so["first_date"].startswith("2010-") and so["last_date"].startswith("2025-01")
    report = demo_db.with_name("report.html")
    assert report.stat().st_size > 100_000
    html = report.read_text()
    assert "4,081" in html and "New threads per month" in html
    assert "Threads per quarter" in html and "<h3>Themes</h3>" in html
    assert "Challenge categories" in html and "Audio API" in html


def test_second_demo_adds_nothing_keeps_the_fitted_runs_and_records_its_runs(demo_db, demo_copy, tmp_path):
    again = run_cli("demo", "--out", str(tmp_path / "second.html"), db=demo_copy)
    assert again.returncode == 0, again.stderr
    assert "0 new threads" in again.stderr and "run 2 kept" in again.stderr and "run 4 kept" in again.stderr
    runs = json.loads(run_cli("runs", "--json", db=demo_copy).stdout)
    steps = ["demo", "topics", "labels import", "classify"]
    # Nothing changed, so the second demo fits nothing: the latest topic and coding runs are the first demo's.
    assert [r["command"] for r in runs] == steps + ["demo", "labels import"]
    counts = json.loads(runs[4]["counts"])
    assert counts["threads_new"] == 0 and counts["threads_unchanged"] == 4081
    versions = json.loads(runs[0]["versions"])
    assert {"python", "duckdb", "devquarry"} <= versions.keys()

    # The same report up to the list of runs, but for plotly's random ids of its figures and the time it was written.
    def figures(path):
        html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", path.read_text())
        html = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "TIME", html)
        return html[: html.index('<h2 id="runs">')]

    assert figures(tmp_path / "second.html") == figures(demo_db.with_name("report.html"))


def test_db_from_environment(tmp_path, shared):
    db = tmp_path / "env.duckdb"
    proc = run_cli(
        "ingest", "discourse", str(shared / "discourse-openai-forum" / "latest.json"), "--json", env={"DEVQUARRY_DB": str(db)}
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["table"]: r for r in json.loads(proc.stdout)}
    assert rows["thread"]["new"] == 30
    with Store(db, read_only=True) as s:
        assert s.counts()["thread"] == 30 and s.schema_version == SCHEMA_VERSION


def test_info_on_missing_store_is_bad_input(tmp_path):
    proc = run_cli("info", db=tmp_path / "none.duckdb")
    assert proc.returncode == 2 and "no such store" in proc.stderr
