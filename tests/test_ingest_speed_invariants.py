"""The fast paths of dump ingestion give what the plain code gave, and a killed ingest loses nothing.

Reading a dump was made faster (issue 17) by shortcuts in text.py (normalise, repair, the HTML walk),
in the field parsers (time_field, int_field) and in the ingest's last-line checks. Each shortcut must
give exactly what the plain code gave: the plain code is kept here as the reference and both are run
over every text of the real data and over random text made of the characters that matter.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import ftfy
import pytest
from conftest import FIXTURES, SHARED
from ftfy.badness import is_bad
from lxml import etree

from devquarry import Store, ingest_stackexchange, text
from devquarry.errors import InputError
from devquarry.sources.base import int_field, time_field
from devquarry.timeparse import parse_time

# ---- the reference: text.py as it was before the fast paths (its behaviour is the contract) ----

_REF_BLOCK = text._BLOCK_TAGS
_REF_DROP = {"script", "style", "svg", "noscript"}
_REF_SPACES = re.compile(r"[ \t\r\f\v]+")
_REF_BLANKS = re.compile(r"\n\s*\n+")
_REF_FTFY = ftfy.TextFixerConfig(replace_lossy_sequences=False)


def ref_normalise(s: str) -> str:
    s = _REF_SPACES.sub(" ", s.replace("\xa0", " "))
    s = "\n".join(line.strip() for line in s.split("\n"))
    return _REF_BLANKS.sub("\n\n", s).strip()


def ref_repair(s: str | None) -> str:
    if not s or s.isascii():
        return s or ""
    return ftfy.fix_encoding(text.repair_gb18030(s), _REF_FTFY)


def _ref_walk(el, parts: list[str]) -> None:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in _REF_DROP or tag == "pre":
        if el.tail:
            parts.append(el.tail)
        return
    block = tag in _REF_BLOCK
    if block:
        parts.append("\n")
    if tag == "img" and el.get("alt"):
        parts.append(f"[{el.get('alt')}]")
    if el.text and tag:
        parts.append(el.text)
    for child in el:
        _ref_walk(child, parts)
    if block:
        parts.append("\n")
    if el.tail:
        parts.append(el.tail)


def ref_html_to_text(html: str | None) -> tuple[str, str]:
    if not html or not html.strip():
        return "", ""
    try:
        root = etree.fromstring(html, text._PARSER)
    except (etree.ParserError, ValueError):
        return ref_repair(ref_normalise(html)), ""
    if root is None:
        return "", ""
    code = ["".join(pre.itertext()).strip("\n") for pre in root.iter("pre")]
    parts: list[str] = []
    _ref_walk(root, parts)
    return ref_repair(ref_normalise("".join(parts))), "\n\n".join(c for c in code if c)


# ---- every text of the real data ----


def _strings(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)


def _real_texts() -> tuple[list[str], list[str]]:
    """(HTML, all): every attribute of every dump row and every string of the forum JSON (the sources
    whose bodies are HTML); then also every string of the GitHub issue exports and every cell of the
    CSV exports (real data and fixtures), which go through normalise and repair only."""
    out: list[str] = []
    for xml in [*SHARED.glob("stackexchange-*/*.xml"), *FIXTURES.glob("se_*/*.xml")]:
        try:
            for _, el in etree.iterparse(str(xml), tag="row", recover=True):
                out.extend(el.attrib.values())
                el.clear()
        except etree.XMLSyntaxError:
            pass  # a malformed fixture: the rows before the damage were read
    for path in [*SHARED.glob("discourse-*/*.json"), *FIXTURES.glob("discourse*.json")]:
        try:
            _strings(json.loads(path.read_bytes()), out)
        except ValueError:
            pass  # a truncated fixture
    html = list(out)
    for path in [*SHARED.glob("github-*/*.json.gz"), *FIXTURES.glob("github*.json")]:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        try:
            _strings(json.loads(raw), out)
        except ValueError:
            pass
    for path in [*SHARED.glob("*/*.csv"), *SHARED.glob("*/*.csv.gz"), *FIXTURES.glob("*.csv")]:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for enc in ("utf-8-sig", "gb18030", "latin-1"):
            try:
                out.extend(raw.decode(enc).split(","))
                break
            except UnicodeDecodeError:
                pass
    return html, out


@pytest.fixture(scope="module")
def real_texts() -> tuple[list[str], list[str]]:
    if not (SHARED / "stackexchange-dump-cstheory-meta").exists():
        pytest.skip(f"needs the real data in {SHARED}")
    return _real_texts()


def test_html_to_text_is_unchanged_on_every_real_text(real_texts):
    html = real_texts[0]
    assert len(html) > 20_000
    differ = [t[:80] for t in html if text.html_to_text(t) != ref_html_to_text(t)]
    assert not differ, differ[:3]


@pytest.mark.slow  # ~10 s of CPU: ftfy (the reference) over every non-ASCII text of all the data
def test_normalise_and_repair_are_unchanged_on_every_real_text(real_texts):
    real_texts = sorted(set(real_texts[1]))
    assert len(real_texts) > 50_000
    assert not [t[:80] for t in real_texts if text.normalise(t) != ref_normalise(t)][:3]
    assert not [t[:80] for t in real_texts if text.repair(t) != ref_repair(t)][:3]
    non_ascii = [t for t in real_texts if not t.isascii()]
    assert len(non_ascii) > 1000
    assert [text._looks_bad(t) for t in non_ascii] == [is_bad(t) for t in non_ascii]
    assert sum(map(is_bad, non_ascii)) > 0  # the data does hold mojibake: the test sees both sides


# ---- random text made of the characters the shortcuts turn on ----

_ALPHABET = (
    list("ab Z.,?!1<>&;/")
    + [" ", " ", "\t", "\n", "\n", "\r", "\f", "\v", "\xa0", "\x1c", "\x1f", "\x85", "\u2003", "\u2028", "\u3000"]
    + list("ÃÂâ€™œ¢£°·»«éÉŒœ×²ØÙà√≈‚ВГРСЂΒΓ¡®¯°¨CDĀā")
    + ["\ufffd", "\x80", "\x9d", "”", "“", "’", "–"]
)
_TAGS = ["<p>", "</p>", "<pre>", "</pre>", "<br>", "<img alt='x'>", "<li>", "<script>", "</script>", "<b>", "</b>"]


def _random_texts(n: int, seed: int = 17) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pieces = rng.choices(_ALPHABET + _TAGS, k=rng.randint(0, 60))
        out.append("".join(pieces))
    return out


def test_shortcuts_match_the_reference_on_random_text():
    for t in _random_texts(6000):
        assert text.normalise(t) == ref_normalise(t), repr(t)
        assert text.repair(t) == ref_repair(t), repr(t)
        assert text._looks_bad(t) == is_bad(t), repr(t)
        assert text.html_to_text(t) == ref_html_to_text(t), repr(t)


def test_the_odd_whitespace_class_holds_all_of_pythons_whitespace():
    # normalise's fast path relies on it: any other whitespace sends a text down the regex path.
    odd = {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()} - set(" \t\n\r\f\v")
    assert {c for c in odd if text._ODD_SPACES.match(c)} == odd


# ---- the field parsers' fast paths ----


@pytest.mark.parametrize(
    "value",
    ["2010-08-16T20:20:28.943", "2010-08-16T20:20:28", "2010-08-16", "2024-02-29T23:59:59.999999", "2010-08-16T20:20:28+02:00",
     "2010-08-16 20:20 UTC", "2025/1/21 18:30", " 2010-08-16T20:20:28 ", "2010-13-01T00:00:00", "1", "0001-01-01T00:00:00+01:00"],
)  # fmt: skip
def test_time_field_gives_what_parse_time_gives(value):
    try:
        want = parse_time(value)
    except ValueError as exc:
        with pytest.raises(InputError, match=re.escape(str(exc))) as got:
            time_field(value, Path("Posts.xml"), "CreationDate", line=7)
        assert got.value.field == "CreationDate" and got.value.line == 7
    else:
        assert time_field(value, Path("Posts.xml"), "CreationDate", line=7) == want


@pytest.mark.parametrize(
    "value, want",
    [("0", 0), ("17", 17), ("0042", 42), ("2147483647", 2147483647), ("2147483648", "out of range"),
     ("999999999999999999", "out of range"), ("٣", 3), ("²", "not a number"), ("-5", -5), ("+5", 5), (" 7", 7),
     ("1e3", 1000), ("x", "not a number"), ("", None)],
)  # fmt: skip
def test_int_field_fast_path_keeps_limits_and_errors(value, want):
    path = Path("Posts.xml")
    if isinstance(want, str):
        with pytest.raises(InputError, match=want) as got:
            int_field(value, path, "AnswerCount", line=3, limit=2**31 - 1)
        assert got.value.field == "AnswerCount" and got.value.line == 3
    else:
        assert int_field(value, path, "AnswerCount", line=3, limit=2**31 - 1) == want


# ---- the store: the same rows as before the fast paths ----

# md5 over each table's rows (cast to text, in key order) after ingesting the cstheory excerpt into a
# fresh store, as computed with the code before the fast paths (commit 8c2a421). A change here means
# the stored data changed: that needs a reason, a note, and new figures here.
_GOLDEN = {
    "thread": (589, "4520d74dd576582754ea16c9d044d487"),
    "reply": (1322, "5ffe6191bf21f55de86fa8d5cee34b0c"),
    "link": (461, "02a3d174020d52e588d0f71bb8e10223"),
}
_KEYS = {"thread": "source, source_id", "reply": "source, reply_id", "link": "source, from_id, to_id, link_type"}


def _table_digests(store: Store) -> dict[str, tuple[int, str]]:
    return {
        t: tuple(
            store.con.execute(f"SELECT count(*), md5(string_agg(CAST(x AS VARCHAR), chr(10) ORDER BY {k})) FROM {t} x").fetchone()
        )
        for t, k in _KEYS.items()
    }


def test_the_excerpt_is_stored_exactly_as_before(store, shared):
    ingest_stackexchange(store, shared / "stackexchange-dump-cstheory-meta")
    assert _table_digests(store) == _GOLDEN


# ---- a killed ingest ----

_IDS = re.compile(rb'( (?:Id|ParentId|AcceptedAnswerId|PostId|RelatedPostId)=")(\d+)(")')


def _shift(m: re.Match, off: int) -> bytes:
    return m.group(1) + str(int(m.group(2)) + off).encode() + m.group(3)


def _big_dump(folder: Path, copies: int) -> Path:
    """The excerpt's rows repeated with new ids (the bench's way), Posts and PostLinks."""
    src = SHARED / "stackexchange-dump-cstheory-meta"
    folder.mkdir()
    for name, root in (("Posts.xml", "posts"), ("PostLinks.xml", "postlinks")):
        lines = [ln for ln in (src / name).read_bytes().splitlines() if ln.lstrip().startswith(b"<row ")]
        with open(folder / name, "wb") as out:
            out.write(b'<?xml version="1.0" encoding="utf-8"?>\n<' + root.encode() + b">\n")
            for k in range(copies):
                out.write(b"\n".join(_IDS.sub(lambda m, off=k * 10**6: _shift(m, off), ln) for ln in lines) + b"\n")
            out.write(b"</" + root.encode() + b">\n")
    return folder


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "devquarry", *args]


@pytest.mark.slow
def test_a_killed_ingest_leaves_the_store_as_it_was_and_a_rerun_completes_it(tmp_path, shared):
    """The whole ingest is one transaction: SIGKILL midway leaves the store as before it began (DuckDB
    drops the uncommitted transaction when it next opens the file); running it again gives the same
    store as an ingest that was never interrupted."""
    dump = _big_dump(tmp_path / "cstheory.meta.stackexchange.com", copies=6)
    env = {**os.environ}
    env.pop("DEVQUARRY_DB", None)

    def ingest_cli(db: Path, what: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            _cli("ingest", "stackexchange", str(what), "--db", str(db)), capture_output=True, text=True, env=env, timeout=300
        )

    killed_db, clean_db = tmp_path / "killed.duckdb", tmp_path / "clean.duckdb"
    for db in (killed_db, clean_db):
        assert ingest_cli(db, shared / "stackexchange-dump-cstheory-meta").returncode == 0
    with Store(killed_db, read_only=True) as st:
        before, before_runs = _table_digests(st), st.counts()["run"]

    proc = subprocess.Popen(
        _cli("ingest", "stackexchange", str(dump), "--db", str(killed_db)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    import psutil

    # Kill once it has done real work (a second of CPU), well before it can finish (it needs several).
    p = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and sum(p.cpu_times()[:2]) < 1.5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the ingest ended before it could be killed: make the dump bigger"

    with Store(killed_db, read_only=True) as st:
        assert _table_digests(st) == before
        assert st.counts()["run"] == before_runs  # no run recorded for the killed ingest

    assert ingest_cli(killed_db, dump).returncode == 0
    assert ingest_cli(clean_db, dump).returncode == 0
    with Store(killed_db, read_only=True) as a, Store(clean_db, read_only=True) as b:
        assert _table_digests(a) == _table_digests(b)
        # The first copy keeps the excerpt's ids (already held, unchanged): five copies are new.
        assert _table_digests(a)["thread"][0] == 589 * 6
        assert a.query("SELECT counts FROM run ORDER BY run_id").equals(b.query("SELECT counts FROM run ORDER BY run_id"))
