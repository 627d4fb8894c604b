"""Bad input ends with exit code 2, one message naming the file, the place and the problem,
and the store exactly as it was."""

import pytest
from conftest import FIXTURES, run_cli

from devquarry import InputError, Store, ingest_github, ingest_stackexchange

F = FIXTURES
CASES = {
    "truncated xml": (
        ["ingest", "stackexchange", str(F / "se_truncated")],
        ["se_truncated/Posts.xml", "line 24", "malformed XML"],
    ),
    "malformed xml": (
        ["ingest", "stackexchange", str(F / "se_malformed")],
        ["se_malformed/Posts.xml", "line 5", "malformed XML"],
    ),
    "invalid json": (
        ["ingest", "discourse", str(F / "discourse_truncated.json")],
        ["discourse_truncated.json", "line ", "invalid JSON"],
    ),
    "wrong encoding": (
        ["ingest", "github", str(F / "vendors_gb18030.csv")],
        ["vendors_gb18030.csv", "line 21", "not valid utf-8"],
    ),
    "wrong encoding table": (
        [
            "ingest",
            "table",
            str(F / "so_latin1.csv"),
            "--source",
            "so",
            "--map",
            "created_at=created_time",
            "--encoding",
            "utf-8",
        ],
        ["so_latin1.csv", "line ", "not valid utf-8"],
    ),
    "missing column": (
        ["ingest", "table", str(F / "so_missing_url.csv"), "--source", "so", "--map", "url=url,created_at=created_time"],
        ["so_missing_url.csv", "field 'url'", "not in the file"],
    ),
    "unknown map field": (
        ["ingest", "table", str(F / "so_latin1.csv"), "--source", "so", "--map", "titel=title"],
        ["field 'titel'", "unknown --map field"],
    ),
    "empty json": (["ingest", "discourse", str(F / "empty.json")], ["empty.json", "file is empty"]),
    "empty csv": (["ingest", "github", str(F / "empty.csv")], ["empty.csv", "file is empty"]),
    "no Posts.xml": (["ingest", "stackexchange", str(F)], ["fixtures", "no Posts.xml"]),
    "missing file": (["ingest", "discourse", str(F / "nope.json")], ["nope.json", "no such file"]),
    "bad date": (
        ["ingest", "table", "BAD_DATE", "--source", "so", "--map", "created_at=created_time"],
        ["bad_date.csv", "line 3", "field 'created_time'", "not a date"],
    ),
}


@pytest.fixture
def filled_db(tmp_path):
    db = tmp_path / "store.duckdb"
    with Store(db) as s:
        ingest_stackexchange(s, F / "se_small", site="cstheory.meta.stackexchange.com")
        ingest_github(s, [F / "github_api_issues.json"])
    return db


def _snapshot(db):
    with Store(db, read_only=True) as s:
        counts = s.counts()
        checksum = s.con.execute("SELECT sum(hash(source || source_id || coalesce(title, ''))) FROM thread").fetchone()[0]
    return counts, checksum


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exit_2_and_store_untouched(case, filled_db, tmp_path):
    args, expected = CASES[case]
    if "BAD_DATE" in args:
        bad = tmp_path / "bad_date.csv"
        bad.write_text(
            "url,title,created_time\nhttps://stackoverflow.com/questions/1/a,ok,2024/1/2 3:04\nhttps://stackoverflow.com/questions/2/b,bad,yesterday\n"
        )
        args = [str(bad) if a == "BAD_DATE" else a for a in args]
    before = _snapshot(filled_db)
    proc = run_cli(*args, db=filled_db)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, message
    for part in expected:
        assert part in message, message
    assert _snapshot(filled_db) == before


def test_failure_after_many_records_rolls_back(tmp_path, shared):
    """The truncated dump yields valid rows first; none of them may stay behind."""
    posts = (shared / "stackexchange-dump-cstheory-meta" / "Posts.xml").read_bytes()
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "Posts.xml").write_bytes(posts[: len(posts) // 2])
    with Store(tmp_path / "s.duckdb") as s:
        with pytest.raises(InputError) as err:
            ingest_stackexchange(s, cut, batch_size=50)
        assert "Posts.xml" in str(err.value) and err.value.line is not None
        assert s.counts() == {"thread": 0, "reply": 0, "link": 0, "run": 0}
