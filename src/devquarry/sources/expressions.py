"""``ingest table --map field=EXPRESSION``: DuckDB SQL expressions over a file's columns.

A statistics-only file rarely holds our fields as they are (``post_count`` counts the first
post, ``reply_count=post_count - 1`` does not). The rows already parsed are handed to a private
in-memory DuckDB (no access to files or the network, nothing of the store) as a typed frame, and
each expression is parsed as one expression by DuckDB and selected over it: the file's column
names never enter SQL text, so no name can break out of it.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from devquarry.errors import InputError

# A bare name that is not a column is a misspelt column, and gets the message it always had.
_BARE_NAME = re.compile(r"[^\W\d][\w .]*")
_INT = re.compile(r"[+-]?\d+")


def is_bare_name(spec: str) -> bool:
    return bool(_BARE_NAME.fullmatch(spec.strip()))


def _typed(values: list) -> pd.Series:
    """A column as the expression sees it: empty cells NULL; text that is all whole numbers
    BIGINT, all numbers DOUBLE (CSV cells are all text, and ``post_count - 1`` must be arithmetic);
    objects and lists as JSON text."""
    cells = [None if v is None or (isinstance(v, str) and not v.strip()) else v for v in values]
    present = [v for v in cells if v is not None]
    if present and all(isinstance(v, str) for v in present):
        stripped = [v.strip() for v in present]
        if all(_INT.fullmatch(v) for v in stripped):
            try:
                return pd.Series([None if v is None else int(v) for v in cells], dtype="Int64")
            except (OverflowError, TypeError):
                pass  # beyond 64 bits: left as text
        numbers = pd.to_numeric(pd.Series(stripped), errors="coerce")
        if numbers.notna().all():
            return pd.Series([None if v is None else float(v) for v in cells], dtype="float64")
        return pd.Series(cells, dtype=object)
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(cells, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        try:
            return pd.Series(cells, dtype="Int64")
        except (OverflowError, TypeError):
            return pd.Series([None if v is None else str(v) for v in cells], dtype=object)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([None if v is None else float(v) for v in cells], dtype="float64")
    if any(isinstance(v, (dict, list)) for v in present) or len({type(v) for v in present}) > 1:
        return pd.Series(
            [v if v is None or isinstance(v, str) else json.dumps(v, default=str) for v in cells],
            dtype=object,
        )
    return pd.Series(cells)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def evaluate(path: Path, rows: list[dict], expressions: dict[str, str]) -> dict[str, list]:
    """Each field's expression evaluated over ``rows`` (dicts of one file, in order): field -> values."""
    import duckdb

    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    folded = {}
    for c in columns:
        if str(c).lower() in folded:
            raise InputError(
                path,
                f"columns {folded[str(c).lower()]!r} and {c!r} differ only in case, which SQL expressions "
                "cannot tell apart; rename one",
                field=str(c),
            )
        folded[str(c).lower()] = c
    frame = pd.DataFrame({str(c): _typed([r.get(c) for r in rows]) for c in columns}, index=range(len(rows)))
    # Nothing but this frame is reachable: no files, no network, no store. One thread and insertion
    # order kept: a projection hands the values back in the rows' order.
    con = duckdb.connect(":memory:", config={"enable_external_access": False, "threads": 1, "preserve_insertion_order": True})
    out: dict[str, list] = {}
    try:
        con.register("rows", frame)
        table = con.table("rows")
        for field, spec in expressions.items():
            try:
                values = [_plain(v) for (v,) in table.select(duckdb.SQLExpression(spec).alias("value")).fetchall()]
            except duckdb.Error as exc:
                why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise InputError(path, f"--map {field}={spec} is not a usable expression: {why}", field=field) from None
            if len(values) != len(rows):
                raise InputError(
                    path,
                    f"--map {field}={spec} gives {len(values)} values for {len(rows)} rows (an aggregate?); "
                    "give one value per row",
                    field=field,
                )
            out[field] = values
    finally:
        con.close()
    return out
