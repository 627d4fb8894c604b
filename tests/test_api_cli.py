"""The library API (dq.<step>, lazy), the version, a light CLI start, uniform output flags, export."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from io import StringIO

import duckdb
import pandas as pd
import pytest
from conftest import run_cli

import devquarry as dq

HEAVY = (
    "pandas",
    "numpy",
    "duckdb",
    "sklearn",
    "scipy",
    "pyarrow",
    "rich",
    "torch",
    "sentence_transformers",
    "bertopic",
    "umap",
    "hdbscan",
    "model2vec",
    "jinja2",
    "devquarry.store",
)

# The steps a notebook reaches as dq.<name>; each is a function or a class.
STEPS = [
    "Store",
    "InputError",
    "Thread",
    "Reply",
    "Link",
    "info",
    "ingest",
    "ingest_stackexchange",
    "ingest_discourse",
    "ingest_github",
    "ingest_table",
    "ingest_transcripts",
    "metrics",
    "trends",
    "series",
    "compare",
    "side_by_side",
    "hotspots",
    "fit_topics",
    "topic_table",
    "theme_table",
    "topics_over_time",
    "classify",
    "evaluate",
    "agreement",
    "import_labels",
    "sample_size",
    "stratified_sample",
    "write_sheet",
    "label_shares",
    "load_codebook",
    "ask",
    "build_report",
    "report_data",
    "run_demo",
    "export",
]


def _loaded_after(code: str) -> list[str]:
    """The heavy modules loaded once ``code`` ran in a fresh interpreter."""
    probe = code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_version_flag_and_attribute():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"devquarry {metadata.version('devquarry')}\n"
    assert dq.__version__ == metadata.version("devquarry")


def test_import_devquarry_loads_nothing_heavy():
    assert _loaded_after("import devquarry as dq\nassert callable(dq.__getattr__)") == []


def test_cli_help_loads_nothing_heavy():
    code = (
        "import sys\nsys.argv = ['devquarry', '--help']\nfrom devquarry.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None)\n"
    )
    assert _loaded_after(code) == []


def test_every_step_is_reachable_and_listed():
    for name in STEPS:
        assert callable(getattr(dq, name)), name
        assert name in dir(dq) and name in dq.__all__, name
    with pytest.raises(AttributeError):
        dq.no_such_step  # noqa: B018


def test_step_named_like_its_module_stays_the_function():
    # hotspots imports devquarry.metrics, compare and ask import their packages: the package
    # attribute must still be the step function, in whichever order a notebook touches them.
    code = (
        "import devquarry.hotspots, devquarry.ask.answer, devquarry.export\nimport devquarry as dq\n"
        "assert [getattr(dq, n).__class__.__name__ for n in ('metrics', 'hotspots', 'export', 'info')] == ['function'] * 4\n"
        # a sub-package stays importable by dotted path and is callable as its step
        "import devquarry.ask.answer as a\nassert a.__name__ == 'devquarry.ask.answer' and callable(dq.ask)\n"
        "from devquarry.metrics import code_grouping\nassert callable(code_grouping)"
    )
    assert "pandas" in _loaded_after(code)


def test_steps_return_frames_on_the_demo_store(demo_db):
    store = dq.Store(demo_db, read_only=True)
    try:
        m = dq.metrics(store, "source")
        assert isinstance(m, pd.DataFrame)
        assert m.set_index("group").loc["stackoverflow", "threads"] == 4072  # 4,081 less 9 duplicated questions
        assert dq.info(store).set_index("source").loc["stackoverflow", "threads"] == 4081
        t = dq.trends(store, "source")
        assert t.set_index("group").loc["stackoverflow", "first_period"] == "2020-07"
        h = dq.hotspots(store, "code", codebook="chen2025-so-api")
        # Popular and hard by the stacked coder's codes (README "What the real data say").
        assert set(h[h.is_hotspot].group) == {"audio", "embeddings", "assistants", "others"}
        run = int(dq.topic_runs(store).run_id.iloc[0])
        assert len(dq.topic_table(store, run)) == 40 and len(dq.theme_table(store, run)) == 8
        assert dq.topics_over_time(store, run, period="year").columns[0]
        long = dq.compare(store, "chen2025-so-api")
        assert isinstance(long, pd.DataFrame) and "chat" in set(dq.side_by_side(long).group)
        assert isinstance(dq.label_shares(store, "chen2025-so-api"), pd.DataFrame)
        assert isinstance(dq.series(store, "source"), pd.DataFrame)
    finally:
        store.close()


def test_table_flag_is_honoured_and_flags_exclude_each_other(demo_db):
    table = run_cli("info", "--table", db=demo_db)
    assert table.returncode == 0, table.stderr
    assert "stackoverflow" in table.stdout and "4081" in table.stdout and "┃ source" in table.stdout
    as_csv = run_cli("info", "--csv", db=demo_db)
    assert pd.read_csv(StringIO(as_csv.stdout)).set_index("source").loc["stackoverflow", "threads"] == 4081
    metrics = run_cli("metrics", "--table", db=demo_db)
    assert metrics.returncode == 0 and "4072" in metrics.stdout
    both = run_cli("metrics", "--json", "--csv", db=demo_db)
    assert both.returncode == 2 and both.stdout == ""
    assert both.stderr.count("\n") == 1 and "--json and --csv" in both.stderr


def test_every_row_printing_command_takes_the_three_flags():
    fields = run_cli("ingest", "fields", "--csv")
    assert fields.returncode == 0, fields.stderr
    assert "created_at" in set(pd.read_csv(StringIO(fields.stdout)).field)
    books = run_cli("codebooks", "list", "--table")
    assert books.returncode == 0 and "chen2025-so-api" in books.stdout
    for command in (
        ["ask", "q"],
        ["agreement", "--codebook", "x"],
        ["evaluate", "--codebook", "x"],
        ["labels", "import", "--codebook", "x"],
        ["ingest", "github", "f.json"],
        ["crawl", "github", "a/b"],
        ["export", "--out", "x"],
        ["topics"],
        ["runs"],
    ):
        helptext = run_cli(*command, "--help").stdout
        assert all(flag in helptext for flag in ("--json", "--csv", "--table")), command


def test_export_parquet_reads_back_in_pandas_and_duckdb(demo_db, tmp_path):
    out = tmp_path / "export"
    proc = run_cli("export", "--format", "parquet", "--out", str(out), db=demo_db)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith(str(out / "threads.parquet")) and "4,081 rows" in line for line in lines)
    assert len(lines) == len(list(out.glob("*.parquet")))  # one line per file written
    assert len(pd.read_parquet(out / "threads.parquet")) == 4081
    assert duckdb.execute(f"SELECT count(*) FROM '{out / 'threads.parquet'}'").fetchone()[0] == 4081
    assert len(pd.read_parquet(out / "topic.parquet")) == 40
    con = duckdb.connect()  # EXPORT DATABASE's schema.sql and load.sql rebuild the store
    con.execute(f"IMPORT DATABASE '{out}'")
    assert con.execute("SELECT count(*) FROM threads").fetchone()[0] == 4081

    again = run_cli("export", "--out", str(out), db=demo_db)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert str(out) in again.stderr and "--force" in again.stderr
    assert run_cli("export", "--out", str(out), "--force", db=demo_db).returncode == 0


def test_export_csv_from_the_library(demo_db, tmp_path):
    store = dq.Store(demo_db, read_only=True)
    try:
        written = dq.export(store, tmp_path / "csv", "csv")
    finally:
        store.close()
    rows = written.set_index("name")
    assert rows.loc["threads", "kind"] == "view" and rows.loc["threads", "rows"] == 4081
    assert rows.loc["thread", "kind"] == "table" and rows.loc["replies", "rows"] == 0
    path = tmp_path / "csv" / "threads.csv"
    assert rows.loc["threads", "path"] == str(path)
    assert len(pd.read_csv(path)) == 4081
    assert duckdb.execute(f"SELECT count(*) FROM '{path}'").fetchone()[0] == 4081
    with pytest.raises(dq.InputError, match="format"):
        dq.export(dq.Store(tmp_path / "empty.duckdb"), tmp_path / "x", "xlsx")
