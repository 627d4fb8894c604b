"""Hostile input files (issue 13): decompression bombs, huge fields, deep nesting, numbers out of
range, wrong JSON types, comment ids reused across issues, and a huge transcript. Each bad file ends
with exit code 2, one line naming the file, record and field, and the store exactly as it was.

The size caps are lowered through their environment variables so that the bombs stay small."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT, run_cli

from devquarry import Store, ingest_github, ingest_stackexchange

CAPS = {"DEVQUARRY_MAX_INPUT_BYTES": "1M", "DEVQUARRY_MAX_FIELD_BYTES": "64K"}
BIG = "x" * 100_000  # over the 64 KiB field cap, under the 1 MiB input cap
HOST = "forum.example.com"
T0 = "2024-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    db = tmp_path_factory.mktemp("filled") / "store.duckdb"
    with Store(db) as s:
        ingest_stackexchange(s, FIXTURES / "se_small", site="cstheory.meta.stackexchange.com")
        ingest_github(s, [FIXTURES / "github_api_issues.json"])
    return db


@pytest.fixture
def db(filled, tmp_path):
    return shutil.copy(filled, tmp_path / "store.duckdb")


def snapshot(db):
    with Store(db, read_only=True) as s:
        threads = s.con.execute("SELECT count(*), sum(hash(source || source_id || coalesce(title, ''))) FROM thread").fetchone()
        replies = s.con.execute("SELECT count(*), sum(hash(source || reply_id || coalesce(thread_id, ''))) FROM reply").fetchone()
        return s.counts(), threads, replies


def refused(db, args, parts, env=CAPS):
    before = snapshot(db)
    proc = run_cli(*map(str, args), db=db, env=env)
    message = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, message[-2000:])
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, message
    for part in parts:
        assert part in message, message
    assert snapshot(db) == before
    return message


def topic(posts=None, **kw):
    posts = posts or [{"id": 10, "post_number": 1, "cooked": "<p>hi</p>", "created_at": T0}]
    return {"id": 1, "title": "a topic", "slug": "a", "created_at": T0, "post_comments": posts, **kw}


def post(n, **kw):
    return {"id": 10 + n, "post_number": n, "cooked": "<p>hi</p>", "created_at": T0, **kw}


def issue(number=1, comments=(), **kw):
    return {
        "number": number,
        "title": "an issue",
        "body": "b",
        "state": "open",
        "created_at": T0,
        "comments": list(comments),
        **kw,
    }


def comment(cid, **kw):
    return {"id": cid, "body": "c", "created_at": T0, "user": {"login": "u"}, **kw}


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def discourse(tmp_path, data, name="t.json"):
    return ["ingest", "discourse", write(tmp_path / name, data if isinstance(data, str) else json.dumps(data)), "--host", HOST]


def github(tmp_path, issues, name="issues.json"):
    data = issues if isinstance(issues, str) else json.dumps({"repository": "o/r", "issues": issues})
    return ["ingest", "github", write(tmp_path / name, data)]


def table(tmp_path, text, name="t.csv"):
    return ["ingest", "table", write(tmp_path / name, text), "--source", "so"]


def se_dump(tmp_path, rows):
    folder = tmp_path / "se"
    folder.mkdir()
    write(folder / "Posts.xml", '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>\n")
    return ["ingest", "stackexchange", folder, "--site", "cstheory.meta.stackexchange.com"]


def question(**attrs):
    base = {
        "Id": "900001",
        "PostTypeId": "1",
        "CreationDate": "2024-01-01T00:00:00.000",
        "Title": "q",
        "Body": "&lt;p&gt;b&lt;/p&gt;",
    }
    return "<row " + " ".join(f'{k}="{v}"' for k, v in {**base, **attrs}.items()) + " />"


def gz(path, head: bytes, filler: bytes, times: int, tail: bytes = b""):
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(head)
        for _ in range(times):
            fh.write(filler)
        fh.write(tail)
    return path


def deep(n):
    return "[" * n + "]" * n


CSV_HEAD = "url,title,created_at,body,views,reply_count\n"
ROW = "https://stackoverflow.com/questions/{n}/q,t,2024/1/2 3:04,{body},{views},{replies}\n"


def csv_row(n=1, body="b", views="1", replies="0"):
    return ROW.format(n=n, body=body, views=views, replies=replies)


# name -> (build(tmp_path) -> CLI args, parts the one line must hold)
CASES = {
    # 4: decompression bombs (8 MiB once decompressed, from a few KB on disk) and huge fields.
    "json.gz bomb": (
        lambda p: ["ingest", "discourse", gz(p / "bomb.json.gz", b"[", b" " * 2**20, 8, b"]"), "--host", HOST],
        ["bomb.json.gz", "larger than 1 MiB", "DEVQUARRY_MAX_INPUT_BYTES"],
    ),
    "github csv.gz bomb": (
        lambda p: [
            "ingest",
            "github",
            gz(p / "bomb.csv.gz", b"", b"https://github.com/o/r/issues/1,t,2024-01-01,Open issue,,b\n", 150_000),
        ],
        ["bomb.csv.gz", "larger than 1 MiB", "DEVQUARRY_MAX_INPUT_BYTES"],
    ),
    "table csv.gz bomb": (
        lambda p: ["ingest", "table", gz(p / "bomb.csv.gz", CSV_HEAD.encode(), csv_row().encode(), 200_000), "--source", "so"],
        ["bomb.csv.gz", "larger than 1 MiB"],
    ),
    "transcript too big": (
        lambda p: ["ingest", "transcripts", write(p / "talk.txt", "Words here. " * 100_000)],
        ["talk.txt", "larger than 1 MiB"],
    ),
    "discourse huge field": (
        lambda p: discourse(p, [topic([post(1, cooked=BIG)])]),
        ["t.json", "record 0 (topic 1)", "field 'post_comments.0.cooked'", "larger than 64 KiB", "DEVQUARRY_MAX_FIELD_BYTES"],
    ),
    "github huge field": (
        lambda p: github(p, [issue(comments=[comment(5, body=BIG)])]),
        ["issues.json", "record 0 (issue 1)", "field 'comments.0.body'", "larger than 64 KiB"],
    ),
    "stackexchange huge field": (
        lambda p: se_dump(p, [question(Body=BIG)]),
        ["Posts.xml", "line 3", "field 'Body'", "larger than 64 KiB"],
    ),
    "table huge field": (
        lambda p: table(p, CSV_HEAD + csv_row() + csv_row(2, body=BIG)),
        ["t.csv", "line 3", "field 'body'", "larger than 64 KiB"],
    ),
    "jsonl huge field": (
        lambda p: table(p, json.dumps({"url": "https://x/questions/1/a", "title": BIG, "created_at": T0}), "t.jsonl"),
        ["t.jsonl", "line 1", "field 'title'", "larger than 64 KiB"],
    ),
    # 8: deep nesting, numbers out of range, wrong JSON types.
    "deep json file": (
        lambda p: discourse(p, "[" + json.dumps(topic()) + "," + deep(100_000) + "]"),
        ["t.json", "line 1", "record 1", "nest deeper than 64"],
    ),
    "deep value in topic": (
        lambda p: discourse(p, json.dumps([topic(extra=1)]).replace("1}]", deep(900) + "}]")),
        ["t.json", "record 0 (topic 1)", "field 'extra.0.0", "nest deeper than 64"],
    ),
    "deep value in issue": (
        lambda p: github(
            p,
            json.dumps({"repository": "o/r", "issues": [issue(milestone=1)]}).replace(
                '"milestone": 1', '"milestone": ' + deep(900)
            ),
        ),
        ["issues.json", "record 0 (issue 1)", "field 'milestone.0", "nest deeper than 64"],
    ),
    "deep jsonl row": (
        lambda p: table(
            p, '{"url": "https://x/questions/1/a", "title": "t", "created_at": "2024-01-01", "x": ' + deep(5000) + "}", "t.jsonl"
        ),
        ["t.jsonl", "line 1", "nest deeper than 64"],
    ),
    "views 1e400": (
        lambda p: discourse(p, json.dumps([topic(views=1)]).replace('"views": 1', '"views": 1e400')),
        ["t.json", "record 0 (topic 1)", "field 'views'", "out of range"],
    ),
    "views 99999999999999999999999": (
        lambda p: discourse(p, [topic(views=99999999999999999999999)]),
        ["t.json", "record 0 (topic 1)", "field 'views'", "out of range"],
    ),
    "posts_count 3000000000": (
        lambda p: discourse(p, [topic(posts_count=3000000000)]),
        ["t.json", "record 0 (topic 1)", "field 'posts_count'", "out of range"],
    ),
    "github comments_count 3000000000": (
        lambda p: github(p, [issue(comments_count=3000000000)]),
        ["issues.json", "record 0 (issue 1)", "field 'comments_count'", "out of range"],
    ),
    "stackexchange ViewCount overflow": (
        lambda p: se_dump(p, [question(ViewCount="99999999999999999999999")]),
        ["Posts.xml", "line 3", "field 'ViewCount'", "out of range"],
    ),
    "stackexchange AnswerCount overflow": (
        lambda p: se_dump(p, [question(AnswerCount="3000000000")]),
        ["Posts.xml", "line 3", "field 'AnswerCount'", "out of range"],
    ),
    "table reply_count 3000000000": (
        lambda p: table(p, CSV_HEAD + csv_row(replies="3000000000")),
        ["t.csv", "line 2", "field 'reply_count'", "out of range"],
    ),
    "table views 1e400": (
        lambda p: table(p, CSV_HEAD + csv_row(views="1e400")),
        ["t.csv", "line 2", "field 'views'", "out of range"],
    ),
    "like_count lots": (
        lambda p: discourse(p, [topic(like_count="lots")]),
        ["t.json", "record 0 (topic 1)", "field 'like_count'", "not a number"],
    ),
    "like_count object": (
        lambda p: discourse(p, [topic(like_count={"n": 1})]),
        ["t.json", "record 0 (topic 1)", "field 'like_count'", "expected a number, got an object"],
    ),
    "post score list": (
        lambda p: discourse(p, [topic([post(1), post(2, score=[1])])]),
        ["t.json", "record 0 (topic 1)", "field 'post_comments.1.score'", "expected a number, got a list"],
    ),
    "discourse title list": (
        lambda p: discourse(p, [topic(title=["a"])]),
        ["t.json", "record 0 (topic 1)", "field 'title'", "expected text, got a list"],
    ),
    "discourse tags number": (
        lambda p: discourse(p, [topic(tags=5)]),
        ["t.json", "record 0 (topic 1)", "field 'tags'", "expected a list"],
    ),
    "discourse cooked object": (
        lambda p: discourse(p, [topic([post(1), post(2, cooked={"html": 1})])]),
        ["t.json", "record 0 (topic 1)", "field 'post_comments.1.cooked'", "expected text, got an object"],
    ),
    "topic list posters number": (
        lambda p: discourse(p, {"topic_list": {"topics": [{"id": 1, "title": "t", "created_at": T0, "posters": 3}]}}),
        ["t.json", "record 0 (topic 1)", "field 'posters'", "expected a list"],
    ),
    "github title list": (
        lambda p: github(p, [issue(title=["a"])]),
        ["issues.json", "record 0 (issue 1)", "field 'title'", "expected text, got a list"],
    ),
    "github body object": (
        lambda p: github(p, [issue(body={"a": 1})]),
        ["issues.json", "record 0 (issue 1)", "field 'body'", "expected text, got an object"],
    ),
    "github comment body list": (
        lambda p: github(p, [issue(comments=[comment(5, body=["x"])])]),
        ["issues.json", "record 0 (issue 1)", "field 'comments.0.body'", "expected text, got a list"],
    ),
    "github reactions count text": (
        lambda p: github(p, [issue(reactions={"total_count": "lots"})]),
        ["issues.json", "record 0 (issue 1)", "field 'reactions.total_count'", "not a number"],
    ),
    "github list of lists": (
        lambda p: github(p, json.dumps([[issue()]])),
        ["issues.json", "record 0", "expected an issue object"],
    ),
    "jsonl title list": (
        lambda p: table(p, json.dumps({"url": "https://x/questions/1/a", "title": ["a"], "created_at": T0}), "t.jsonl"),
        ["t.jsonl", "line 1", "field 'title'", "expected text, got a list"],
    ),
    "jsonl score object": (
        lambda p: table(
            p, json.dumps({"url": "https://x/questions/1/a", "title": "t", "created_at": T0, "score": {}}), "t.jsonl"
        ),
        ["t.jsonl", "line 1", "field 'score'", "expected a number, got an object"],
    ),
    "jsonl created_at 1e400": (
        lambda p: table(p, '{"url": "https://x/questions/1/a", "title": "t", "created_at": 1e400}', "t.jsonl"),
        ["t.jsonl", "line 1", "field 'created_at'", "out of range"],
    ),
    # 10: a comment id under two issues.
    "github comment id under two issues": (
        lambda p: github(p, [issue(1, [comment(555)]), issue(2, [comment(555)])]),
        ["issues.json", "record 1 (issue 2)", "field 'comments.0.id'", "comment 555", "issue 1"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file_exit_2_one_line_store_untouched(case, db, tmp_path):
    build, parts = CASES[case]
    refused(db, build(tmp_path), parts)


def test_caps_leave_real_sized_input_alone(db, tmp_path):
    """Just under both caps is still read: the limits refuse only what passes them."""
    body = "y" * 60_000
    args = github(tmp_path, [issue(1, [comment(1, body=body)], body=body), issue(2, [comment(2)])])
    proc = run_cli(*map(str, args), db=db, env=CAPS)
    assert proc.returncode == 0, proc.stderr
    with Store(db, read_only=True) as s:
        assert s.con.execute("SELECT length(body_text) FROM reply WHERE reply_id = '1'").fetchone() == (60_000,)


def test_bad_cap_setting_is_named(db, tmp_path):
    args = github(tmp_path, [issue()])
    refused(db, args, ["DEVQUARRY_MAX_INPUT_BYTES", "not a size"], env={"DEVQUARRY_MAX_INPUT_BYTES": "lots"})


def _xlsx(path, rows):
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def test_xlsx_bomb_refused_before_openpyxl_reads_it(db, tmp_path):
    rows = [["url", "title", "created_at"]]
    rows += [[f"https://stackoverflow.com/questions/{n}/q", "same title", "2024-01-02"] for n in range(30_000)]
    book = _xlsx(tmp_path / "bomb.xlsx", rows)
    assert book.stat().st_size < 1_000_000
    refused(db, ["ingest", "table", book, "--source", "so"], ["bomb.xlsx", "xl/worksheets/sheet1.xml", "larger than 1 MiB"])


def test_xlsx_huge_cell(db, tmp_path):
    """openpyxl hands back at most Excel's 32,767 characters a cell: the cap is lowered below that."""
    rows = [["url", "title", "created_at"], ["https://stackoverflow.com/questions/1/q", "z" * 20_000, "2024-01-02"]]
    book = _xlsx(tmp_path / "cell.xlsx", rows)
    args = ["ingest", "table", book, "--source", "so"]
    refused(db, args, ["cell.xlsx", "line 2", "field 'title'", "larger than 16 KiB"], env={"DEVQUARRY_MAX_FIELD_BYTES": "16K"})


def test_comment_id_moving_to_another_issue_across_runs(db, tmp_path):
    """Comment ids are unique per repository: one that turns up under another issue is refused, not moved."""
    first = github(tmp_path, [issue(1, [comment(777)])], "a.json")
    assert run_cli(*map(str, first), db=db).returncode == 0
    second = github(tmp_path, [issue(2, [comment(777)])], "b.json")
    refused(db, second, ["b.json", "issue 2", "comment 777", "issue 1"])
    with Store(db, read_only=True) as s:
        assert s.con.execute("SELECT thread_id FROM reply WHERE reply_id = '777'").fetchall() == [("1",)]


def test_same_issue_again_keeps_its_comments(db, tmp_path):
    """Ingesting an issue again (the same comment ids under the same issue) is an update, not a conflict."""
    args = github(tmp_path, [issue(1, [comment(777)])])
    assert run_cli(*map(str, args), db=db).returncode == 0
    args = github(tmp_path, [issue(1, [comment(777, body="edited")], updated_at="2024-02-01T00:00:00Z")], "again.json")
    proc = run_cli(*map(str, args), db=db)
    assert proc.returncode == 0, proc.stderr
    with Store(db, read_only=True) as s:
        assert s.con.execute("SELECT body_text FROM reply WHERE reply_id = '777'").fetchall() == [("edited",)]


def test_transcript_of_40k_cues_is_linear(tmp_path):
    """40,000 cues (2.6 MB): quadratic matching of sentences to cues took minutes; now seconds."""
    lines = ["WEBVTT", ""]
    for i in range(40_000):
        s = 2 * i
        lines += [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000 --> {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.900"]
        lines += [f"Sentence number {i} is here.", ""]
    vtt = write(tmp_path / "long.vtt", "\n".join(lines))
    db = tmp_path / "t.duckdb"
    cmd = [sys.executable, "-m", "devquarry", "ingest", "transcripts", str(vtt), "--db", str(db)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    with Store(db, read_only=True) as s:
        rows = s.con.execute(
            "SELECT source_id, raw->>'start_seconds', raw->>'tokens' FROM thread ORDER BY (raw->>'paragraph')::INT"
        ).fetchall()
    # Six tokens a sentence, 300 a paragraph: 50 sentences (100 s of cues) each.
    assert len(rows) == 800
    assert rows[0] == ("long.vtt#1", "0.0", "300")
    assert rows[123] == ("long.vtt#124", str(123 * 100.0), "300")
