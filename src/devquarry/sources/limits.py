"""Bounds on what one input file may make us hold: its decompressed size, the size of one
field, and how deeply its values nest. A hostile file (a gzip or xlsx bomb, a 200 MB field,
JSON nested ten thousand deep) is refused with one line naming the file, record and field,
before it can exhaust memory or the interpreter's stack.

The defaults leave ample headroom over the largest real inputs seen (a 9.8 MB decompressed
GitHub export, a 65 KB issue body: GitHub caps bodies at 65,536 characters, Stack Overflow
at 30,000); raise them with the environment variables for bigger exports.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

from devquarry.errors import InputError

MAX_INPUT_ENV = "DEVQUARRY_MAX_INPUT_BYTES"
MAX_FIELD_ENV = "DEVQUARRY_MAX_FIELD_BYTES"
DEFAULT_MAX_INPUT_BYTES = 256 * 2**20
DEFAULT_MAX_FIELD_BYTES = 4 * 2**20
# Real records nest 3-6 deep; Python's JSON encoder and decoder recurse, so depth is a stack risk.
MAX_DEPTH = 64
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_CHUNK = 1 << 20
_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?)?", re.I)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def _env_bytes(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    m = _SIZE.fullmatch(raw)
    if not m or int(m.group(1)) <= 0:
        raise InputError(None, f"{name}={raw!r} is not a size in bytes (e.g. 268435456 or 256M)", field=name)
    return int(m.group(1)) * _UNITS[(m.group(2) or "")[:1].lower()]


def max_input_bytes() -> int:
    """The most bytes one input file may hold once decompressed (``DEVQUARRY_MAX_INPUT_BYTES``)."""
    return _env_bytes(MAX_INPUT_ENV, DEFAULT_MAX_INPUT_BYTES)


def max_field_bytes() -> int:
    """The most bytes (UTF-8) one field of one record may hold (``DEVQUARRY_MAX_FIELD_BYTES``)."""
    return _env_bytes(MAX_FIELD_ENV, DEFAULT_MAX_FIELD_BYTES)


def human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def too_big(path: Path | str, what: str, cap: int, env: str = MAX_INPUT_ENV, **where) -> InputError:
    return InputError(path, f"{what} is larger than {human(cap)} (raise {env} to read it)", **where)


def read_capped(fh, path: Path | str, cap: int | None = None, what: str = "file once decompressed") -> bytes:
    """Read a (possibly decompressing) stream in chunks, stopping as soon as it passes ``cap``."""
    cap = max_input_bytes() if cap is None else cap
    chunks, total = [], 0
    while True:
        chunk = fh.read(min(_CHUNK, cap + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > cap:
            raise too_big(path, what, cap)
        chunks.append(chunk)


def allow_csv_fields() -> None:
    """Let the csv module read any field of a file already in memory: its own cap (131,072
    characters) is below ours and its error cannot name the column; fields are checked by name after."""
    if csv.field_size_limit() < max_input_bytes():
        csv.field_size_limit(min(max_input_bytes(), 2**62))


def field_too_big(value: str, cap: int) -> bool:
    # UTF-8 takes 1-4 bytes a character: only a string near the cap needs encoding to tell.
    n = len(value)
    return n > cap or (n * 4 > cap and len(value.encode("utf-8", "surrogatepass")) > cap)


def check_value(value: Any, path: Path | str, *, record=None, line=None, field: str | None = None) -> None:
    """Refuse a parsed record whose strings are over the field cap or whose values nest too deep;
    the error names the field by its path inside the record (``post_stream.posts.3.cooked``)."""
    cap = max_field_bytes()
    stack: list[tuple[Any, tuple, int]] = [(value, (field,) if field else (), 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if field_too_big(item, cap):
                raise too_big(path, "field", cap, MAX_FIELD_ENV, record=record, line=line, field=_name(where))
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise InputError(
                    path, f"values nest deeper than {MAX_DEPTH} levels", record=record, line=line, field=_name(where)
                )
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, (*where, k), depth + 1) for k, v in pairs if isinstance(v, (str, dict, list)))


def _name(where: tuple) -> str | None:
    parts = [str(k) for k in where]
    return ".".join(parts[:8]) + (".…" if len(parts) > 8 else "") if parts else None


def json_depth_error(text: str, path: Path | str) -> InputError:
    """Where JSON first nests deeper than MAX_DEPTH (after the decoder ran out of stack)."""
    depth, record = 0, -1
    in_list = text.lstrip()[:1] == "["
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        tok = m.group(0)
        if tok in "[{":
            depth += 1
            if depth == 2 and in_list:
                record += 1
            if depth > MAX_DEPTH:
                pos = m.start()
                line = text.count("\n", 0, pos) + 1
                col = pos - text.rfind("\n", 0, pos)
                return InputError(
                    path,
                    f"values nest deeper than {MAX_DEPTH} levels (column {col})",
                    line=line,
                    record=record if record >= 0 else None,
                )
        elif tok in "]}":
            depth -= 1
    return InputError(path, "values nest too deeply")
