"""CSV, JSONL and XLSX exports, with a mapping from our fields to the file's columns."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devquarry.errors import InputError
from devquarry.model import Record, Thread
from devquarry.sources.base import Source, decode, float_field, int_field, read_bytes, text_field, time_field
from devquarry.sources.expressions import evaluate, is_bare_name
from devquarry.sources.limits import (
    INT32_MAX,
    INT64_MAX,
    MAX_DEPTH,
    allow_csv_fields,
    check_value,
    human,
    max_input_bytes,
    too_big,
)
from devquarry.text import html_to_text, repair

FIELDS = {
    "source_id": "the thread's id in its source (default: taken from url)",
    "url": "link to the thread",
    "title": "title",
    "body": "body as plain text",
    "body_html": "body as HTML (converted to text, code kept apart)",
    "tags": "tags, separated by , ; | or written <a><b>",
    "category": "forum category",
    "author": "author",
    "created_at": "creation time",
    "updated_at": "last activity time",
    "accepted_at": "time of the accepted answer",
    "first_reply_at": "time of the first reply",
    "closed_at": "time the thread was closed",
    "is_resolved": "resolved flag (1/0, true/false, yes/no)",
    "views": "view count",
    "score": "score, votes or likes",
    "reply_count": "number of replies",
    "state": "state text",
    "label": "a hand label, kept for the taxonomy step",
}
# Column names that mean one of our fields, besides the field's own name (matched ignoring case).
ALIASES = {
    "id": "source_id",
    "link": "url",
    "created": "created_at",
    "creation_date": "created_at",
    "creationdate": "created_at",
    "body_text": "body",
}
# What a file must give when no --map is passed (require_dates): without a date a thread falls
# out of every trend and time figure, which is easy to miss when nothing was mapped by hand.
REQUIRED = (("source_id", "url"), ("title", "body", "body_html"), ("created_at",))
_HINTS = {
    "source_id": ("id", "url", "link"),
    "url": ("url", "link"),
    "title": ("title", "subject", "name"),
    "body": ("body", "text", "content"),
    "body_html": ("body", "html"),
    "created_at": ("creat", "date", "time", "posted"),
}
_ID_IN_URL = re.compile(r"/(?:questions|q|t/[^/]+|issues|pull)/(\d+)")
_ENTRY = re.compile(r"\s*(?:\w+\s*=(?!=)|,|$)")  # what follows a comma that ends an entry
_TRUE = {"1", "true", "yes", "y", "t", "solved", "resolved"}
_FALSE = {"0", "false", "no", "n", "f", "unsolved", "", "none", "nan"}


def parse_mapping(spec: str | dict[str, str] | None) -> dict[str, str]:
    """``"title=Title,url=Link"`` -> {"title": "Title", "url": "Link"}; unknown fields are errors.

    A value is a column or a DuckDB SQL expression over the columns (``reply_count=post_count - 1``);
    a comma inside brackets or quotes belongs to the expression (``views=coalesce(views, 0)``)."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        pairs = list(spec.items())
    else:
        pairs = []
        for part in _split_entries(spec):
            if not part.strip():
                continue
            if "=" not in part:
                raise InputError(None, f"--map entry {part.strip()!r} is not field=column")
            field, column = part.split("=", 1)
            pairs.append((field.strip(), column.strip()))
    mapping = {}
    for field, column in pairs:
        if field not in FIELDS:
            raise InputError(None, f"unknown --map field {field!r}; known fields: {', '.join(FIELDS)}", field=field)
        mapping[field] = column
    return mapping


def _split_entries(spec: str) -> list[str]:
    """``spec`` cut at each comma outside brackets that starts a new ``name=`` entry: a comma inside
    ``coalesce(views, 0)`` belongs to the expression, and a column name with a quote in it reads as
    it always did (quotes are not tracked: a comma inside a quoted literal must be in brackets)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(spec):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0 and _ENTRY.match(spec, i + 1):
            parts.append(spec[start:i])
            start = i + 1
    parts.append(spec[start:])
    return parts


def auto_mapping(columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """The mapping in use: ``mapping`` plus every column named like a field (or an alias of
    one), ignoring case, for the fields ``mapping`` leaves out; a field's own name wins."""
    found: dict[str, str] = {}
    for lookup in (lambda key: key if key in FIELDS else None, ALIASES.get):
        for column in columns:
            field = lookup(str(column).strip().lower())
            if field and field not in mapping and field not in found:
                found[field] = column
    return {**found, **mapping}


def _suggest(field: str, columns: list[str], taken: set[str]) -> str:
    for hint in _HINTS.get(field, ()):
        for column in columns:
            if column not in taken and hint in str(column).lower():
                return column
    return "COLUMN"


class TableSource(Source):
    """Rows of a CSV, TSV, JSONL or XLSX file as threads.

    ``mapping`` names the column for each field; columns named like a field are mapped too.
    ``require_dates``: refuse a file that gives no created_at (the CLI asks for it when no
    ``--map`` is passed); the mapping used for each file is in ``mappings``.
    """

    kind = "table"

    def __init__(
        self,
        paths,
        *,
        source: str,
        mapping: str | dict | None = None,
        encoding: str = "utf-8",
        sheet: str | None = None,
        require_dates: bool = False,
    ) -> None:
        super().__init__(paths)
        if not source or not re.fullmatch(r"[\w.:/@-]+", source):
            raise InputError(None, f"--source must be a short name (letters, digits, . : / - _), got {source!r}")
        self.source = source
        self.mapping = parse_mapping(mapping)
        self.encoding = encoding
        self.sheet = sheet
        self.require_dates = require_dates
        self.mappings: dict[str, dict[str, str]] = {}
        self._expressions: dict[str, str] = {}

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "source": self.source,
            "map": self.mapping,
            "encoding": self.encoding,
            "mapping_used": self.mappings,
        }

    def records(self) -> Iterator[Record]:
        for path in self.paths:
            self.current = path
            rows = self._rows(path)
            header = None
            pending: list[tuple[int, dict]] = []
            for line, row in rows:
                check_value(row, path, line=line)
                if header is None:
                    header = list(row)
                    self._check_header(path, header)
                if self._expressions:
                    pending.append((line, row))  # expressions are evaluated over the whole file at once
                else:
                    yield self._thread(path, line, row)
            if pending:
                computed = evaluate(path, [row for _, row in pending], self._expressions)
                for i, (line, row) in enumerate(pending):
                    yield self._thread(path, line, row, {field: values[i] for field, values in computed.items()})

    def _check_header(self, path: Path, columns: list[str]) -> None:
        header = set(columns)
        mapping = auto_mapping(columns, self.mapping)
        # A value that is no column is an expression over the columns; a bare name that is no
        # column is a misspelt one.
        self._expressions = {}
        for field, column in mapping.items():
            if column in header:
                continue
            if is_bare_name(column) and column.lower() not in {str(c).lower() for c in header}:
                raise InputError(
                    path,
                    f"column {column!r} (mapped to {field}) is not in the file; columns: {', '.join(sorted(header))}",
                    field=column,
                )
            self._expressions[field] = column
        if self.require_dates:
            missing = [group for group in REQUIRED if not set(group) & mapping.keys()]
            if missing:
                taken = set(mapping.values())
                hint = ",".join(f"{g[0]}={_suggest(g[0], columns, taken)}" for g in missing)
                names = " and ".join(" or ".join(g) for g in missing)
                raise InputError(
                    path,
                    f"no column maps to {names} (needed: an id or url, a title or body, and created_at); "
                    f"columns found: {', '.join(map(str, columns))}; pass e.g. --map {hint}",
                    field=missing[0][0],
                )
        if not ({"source_id", "url"} & mapping.keys()):
            raise InputError(path, "map a column to source_id or url (e.g. --map url=Link)", field="source_id")
        # Title and body are optional once a mapping is given: a file of per-thread statistics has neither.
        self._effective = mapping
        self.mappings[str(path)] = dict(sorted(mapping.items(), key=lambda kv: list(FIELDS).index(kv[0])))

    def _rows(self, path: Path) -> Iterator[tuple[int, dict]]:
        name = path.name.lower()
        if name.endswith((".xlsx", ".xlsm")):
            yield from self._xlsx(path)
            return
        text = decode(read_bytes(path, self.progress), path, self.encoding)
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=n) from None
                except RecursionError:
                    raise InputError(path, f"values nest deeper than {MAX_DEPTH} levels", line=n) from None
                except ValueError as exc:  # an integer literal of thousands of digits
                    raise InputError(path, f"invalid JSON: {str(exc)[:80]}", line=n) from None
                if not isinstance(obj, dict):
                    raise InputError(path, "expected a JSON object per line", line=n)
                yield n, obj
            return
        delimiter = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
        allow_csv_fields()
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            if not reader.fieldnames:
                raise InputError(path, "no header row")
            for row in reader:
                if None in row:
                    raise InputError(
                        path,
                        f"row has {len(reader.fieldnames) + len(row[None])} cells, header has {len(reader.fieldnames)}",
                        line=reader.line_num,
                    )
                yield reader.line_num, row
        except csv.Error as exc:
            raise InputError(path, f"malformed CSV: {exc}", line=reader.line_num) from None

    def _xlsx(self, path: Path) -> Iterator[tuple[int, dict]]:
        from openpyxl import load_workbook

        read_bytes(path)  # the same checks as for other files (exists, not empty, not over the cap)
        _check_zip(path)
        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a corrupt workbook
            raise InputError(path, f"not a readable XLSX workbook ({exc.__class__.__name__})") from None
        ws = wb[self.sheet] if self.sheet else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = next(it, None)
        if not header:
            raise InputError(path, "no header row")
        names = [str(h) if h is not None else f"column{i + 1}" for i, h in enumerate(header)]
        for n, values in enumerate(it, 2):
            if values is None or all(v is None for v in values):
                continue
            yield n, {k: ("" if v is None else v) for k, v in zip(names, values)}
        self.progress(path.stat().st_size)

    def _thread(self, path: Path, line: int, row: dict, computed: dict | None = None) -> Thread:
        m = self._effective
        computed = computed or {}

        def name(field):
            # Errors name the column, or for an expression the field and the expression.
            return f"{field}={m[field]}" if field in computed else m.get(field, field)

        def get(field):
            col = m.get(field)
            if col is None:
                return None
            value = computed[field] if field in computed else row.get(col)
            if value is None:
                return None
            if isinstance(value, str):
                value = value.strip()
                return value or None
            return value

        def text(field):
            return text_field(get(field), path, name(field), line=line)

        url = text("url")
        source_id = get("source_id")
        if source_id is not None:
            source_id = text_field(_whole(source_id), path, name("source_id"), line=line)
        if source_id is None:
            if url is None:
                raise InputError(path, "row has neither an id nor a url", line=line, field=m.get("url") or m.get("source_id"))
            found = _ID_IN_URL.search(str(url))
            source_id = found.group(1) if found else str(url)
        body_html = text("body_html")
        body, code = html_to_text(body_html) if body_html else (repair(text("body") or ""), "")

        def ts(field):
            return time_field(get(field), path, name(field), line=line)

        def num(field, limit=INT64_MAX):
            return int_field(get(field), path, name(field), line=line, limit=limit)

        resolved = get("is_resolved")
        if resolved is not None:
            key = str(resolved).strip().lower()
            if key.endswith(".0"):
                key = key[:-2]
            if key in _TRUE:
                resolved = True
            elif key in _FALSE:
                resolved = False
            else:
                raise InputError(path, f"not a yes/no value: {resolved!r}", line=line, field=name("is_resolved"))
        accepted_at = ts("accepted_at")
        if resolved is None and accepted_at is not None:
            resolved = True
        if resolved is None and ({"is_resolved", "accepted_at"} & m.keys()):
            # An empty cell in a resolution column says "not resolved"; without such a column
            # resolution stays unknown (None), and the figures leave the thread out of % unresolved.
            resolved = False
        tags = get("tags")
        if isinstance(tags, list):
            tags = [text_field(t, path, name("tags"), line=line) for t in tags if t is not None]
        else:
            tags = [t for t in re.split(r"[,;|<>]+", text("tags") or "") if t.strip()]
        label = text("label")
        return Thread(
            source=self.source,
            source_id=source_id,
            title=repair(text("title") or "") if "title" in m else None,
            url=url,
            body_text=body,
            body_html=body_html,
            code=code,
            tags=[t.strip() for t in tags],
            category=text("category"),
            author=text("author"),
            created_at=ts("created_at"),
            updated_at=ts("updated_at"),
            accepted_at=accepted_at,
            first_reply_at=ts("first_reply_at"),
            closed_at=ts("closed_at"),
            views=num("views"),
            score=_score(get("score"), path, name("score"), line),
            reply_count=num("reply_count", INT32_MAX),
            is_resolved=resolved,
            state=text("state"),
            label=label,
            raw={k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in row.items()},
        )


def _check_zip(path: Path) -> None:
    """An xlsx is a zip: refuse one whose members would inflate past the input cap before openpyxl
    inflates them. Python's zipfile stops each member at its declared size, so the sizes can be trusted."""
    import zipfile

    cap = max_input_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(path, f"not a readable XLSX workbook ({exc.__class__.__name__})") from None
    total = sum(m.file_size for m in members)
    if total > cap:
        biggest = max(members, key=lambda m: m.file_size)
        raise too_big(path, f"workbook once unzipped ({human(total)}; biggest member {biggest.filename})", cap)


def _score(value, path: Path, field: str, line: int):
    """A score may be an average (avg_score 21762.8): kept as it is; a whole one stays an int, as
    it was read before (so that content hashes, and re-imports, see no change)."""
    if isinstance(value, str) and value.strip().lower() in {"none", "null", "nan"}:
        return None
    number = float_field(value, path, field, line=line)
    if isinstance(number, float) and number.is_integer() and abs(number) <= INT64_MAX:
        return int(number)
    return number


def _whole(value):
    # Spreadsheets hand numeric ids back as floats (20178.0).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
