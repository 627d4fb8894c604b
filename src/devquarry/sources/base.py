"""The contract every source follows, and the file helpers they share."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devquarry.errors import InputError
from devquarry.model import Record
from devquarry.sources.limits import INT64_MAX, json_depth_error, max_input_bytes, read_capped, too_big
from devquarry.timeparse import parse_time

_fromisoformat = datetime.fromisoformat

ProgressFn = Callable[[int], None]


class Source(ABC):
    """A source turns input files into a stream of Thread, Reply and Link records.

    Subclasses set ``kind`` (the name recorded for the run) and implement ``records``.
    ``progress`` is called with the number of input bytes consumed since the last call,
    so that a caller can draw one bar over all files.
    """

    kind: str = "source"
    # The file being read, named by ingest's last-resort checks on the records yielded.
    current: Path | None = None

    def __init__(self, paths: list[str | Path] | str | Path) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError(None, "no input files given")
        self.progress: ProgressFn = lambda n: None

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.input_files() if p.is_file())

    def input_files(self) -> list[Path]:
        return self.paths

    def params(self) -> dict[str, Any]:
        """What the run record keeps about this source's options."""
        return {"paths": [str(p) for p in self.paths]}

    @abstractmethod
    def records(self) -> Iterator[Record]:
        """Yield records; raise InputError on bad input."""


class _CountingReader(io.RawIOBase):
    def __init__(self, raw, progress: ProgressFn) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = self._raw.readinto(buf)
        if n:
            self._progress(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path, progress: ProgressFn | None = None):
    """Open a file (gzip-compressed when it ends in .gz) for streaming, counting bytes."""
    check_file(path)
    raw = open(path, "rb", buffering=0)
    stream = io.BufferedReader(_CountingReader(raw, progress or (lambda n: None)), 1 << 20)
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")


def read_bytes(path: Path, progress: ProgressFn | None = None) -> bytes:
    """The whole file, decompressed; refused once it passes DEVQUARRY_MAX_INPUT_BYTES."""
    cap = max_input_bytes()
    check_file(path)
    if path.suffix != ".gz" and path.stat().st_size > cap:
        raise too_big(path, "file", cap)
    with open_binary(path, progress) as fh:
        try:
            data = read_capped(fh, path, cap)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(path, f"cannot read compressed data ({exc})") from None
    if not data.strip():
        raise InputError(path, "file is empty")
    return data


def decode(data: bytes, path: Path, encoding: str) -> str:
    """Decode strictly; a wrong encoding is reported with the line of the first bad byte.

    ``encoding`` may list fallbacks, tried in order: ``"utf-8,gb18030"``. Put UTF-8
    first: single-byte encodings decode any bytes at all, so they must come last.
    """
    names = [e.strip() for e in encoding.split(",") if e.strip()] or ["utf-8"]
    first_error = None
    for name in names:
        try:
            return data.decode(name).lstrip("\ufeff")
        except LookupError:
            raise InputError(path, f"unknown encoding {name!r}") from None
        except UnicodeDecodeError as exc:
            first_error = first_error or (name, exc)
    name, exc = first_error
    line = data.count(b"\n", 0, exc.start) + 1
    bad = data[exc.start : exc.start + 1].hex()
    tried = " or ".join(names)
    raise InputError(
        path,
        f"byte 0x{bad} is not valid {tried} (pass --encoding with the file's encoding, e.g. latin-1 or gb18030)",
        line=data.count(b"\n", 0, exc.start) + 1 if len(names) == 1 else line,
    )


def load_json(path: Path, progress: ProgressFn | None = None, encoding: str = "utf-8") -> Any:
    text = decode(read_bytes(path, progress), path, encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    except RecursionError:
        raise json_depth_error(text, path) from None
    except ValueError as exc:  # an integer literal of thousands of digits
        raise InputError(path, f"invalid JSON: {str(exc)[:80]}") from None


def time_field(value, path: Path, field: str, *, record=None, line=None, formats=()):
    if value.__class__ is str and not formats and value[-1:].isdigit() and value[:1].isdigit() and " UTC" not in value:
        # The common case (every date of a Stack Exchange dump: 2010-08-16T20:20:28.943) without
        # parse_time's round of checks: what it would do with such a value (nothing to strip,
        # nothing to rewrite, no formats to try first) is this, fromisoformat, naive taken as UTC.
        try:
            dt = _fromisoformat(value)
        except ValueError:
            pass  # parse_time tries the other formats, and words the error
        else:
            if dt.tzinfo is None:
                return dt.replace(tzinfo=UTC)
    try:
        return parse_time(value, formats)
    except ValueError as exc:
        raise InputError(path, str(exc), record=record, line=line, field=field) from None


def _kind(value) -> str:
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def int_field(value, path: Path, field: str, *, record=None, line=None, limit: int = INT64_MAX) -> int | None:
    """A whole number that fits the column (``limit``: INT64_MAX for BIGINT, INT32_MAX for INTEGER)."""
    if value.__class__ is str and len(value) < 19 and value.isdigit() and value.isascii():
        # The common case (a count in a dump) without the checks below, which would come to this.
        number = int(value)
        if number <= limit:
            return number
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (dict, list)):
        raise InputError(path, f"expected a number, got {_kind(value)}", record=record, line=line, field=field)
    if isinstance(value, (int, float)):
        number = value
    else:
        text = str(value).strip()
        if text.lower() in {"none", "null", "nan"}:
            return None
        try:
            number = int(text) if text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise InputError(path, f"not a number: {text[:40]!r}", record=record, line=line, field=field) from None
    if isinstance(number, float) and number != number:
        return None
    if number in (float("inf"), float("-inf")) or abs(number) > limit:
        shown = str(value)[:40]
        raise InputError(path, f"number out of range: {shown} (at most {limit})", record=record, line=line, field=field)
    return int(number)


def float_field(value, path: Path, field: str, *, record=None, line=None) -> float | int | None:
    """A finite number (a score, likes); text that reads as a number is accepted."""
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        raise InputError(path, f"expected a number, got {_kind(value)}", record=record, line=line, field=field)
    if isinstance(value, int) and abs(value) <= INT64_MAX:
        return int(value)  # kept whole, as sources have always handed it on (and content hashes saw it)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError):
        raise InputError(path, f"not a number: {str(value)[:40]!r}", record=record, line=line, field=field) from None
    except OverflowError:
        number = float("inf")
    if number != number:
        return None
    if number in (float("inf"), float("-inf")):
        raise InputError(path, f"number out of range: {str(value)[:40]}", record=record, line=line, field=field)
    return number


def list_field(value, path: Path, field: str, *, record=None, line=None) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    raise InputError(path, f"expected a list, got {_kind(value)}", record=record, line=line, field=field)


def text_field(value, path: Path, field: str, *, record=None, line=None) -> str | None:
    """Text; a number is written out, but an object or list where text belongs is an error."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(path, f"expected text, got {_kind(value)}", record=record, line=line, field=field)
