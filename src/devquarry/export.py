"""Export a store: every table and view as Parquet or CSV files, for pandas, R, Spark or DuckDB.

Tables go through DuckDB's own ``EXPORT DATABASE``, which also writes ``schema.sql`` and
``load.sql``: ``IMPORT DATABASE 'DIR'`` rebuilds the store from the folder. The views
(``threads``, ``replies``: the tables with the derived fields filled in) are what most readers
want, so each is written as a file of its own beside them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from devquarry.errors import InputError
from devquarry.store import Store

FORMATS = ("parquet", "csv")

# load.sql holds one line per table: COPY "name" FROM 'path' (FORMAT ...);
_LOAD_LINE = re.compile(r"""^COPY\s+("?)(?P<name>[^"\s]+)\1\s+FROM\s+'(?P<path>(?:[^']|'')+)'""", re.MULTILINE)


def export(store: Store, out_dir: str | Path, format: str = "parquet", *, force: bool = False) -> pd.DataFrame:
    """Write every table and view of ``store`` into ``out_dir`` as ``format`` (parquet or csv).

    Returns one row per data file written: name, kind (table or view), rows, path. A folder that
    exists and holds anything is refused unless ``force`` (its files of the same name are then
    overwritten)."""
    fmt = format.lower()
    if fmt not in FORMATS:
        raise InputError(None, f"unknown export format {format!r}; use one of {', '.join(FORMATS)}", field="format")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder", field="out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(out, "folder exists and is not empty; pass --force to write into it", field="out")
    out.mkdir(parents=True, exist_ok=True)

    con = store.con
    copy_opts = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
    con.execute(f"EXPORT DATABASE {_literal(out)} ({copy_opts})")
    rows = []
    for name, path in _exported_tables(out):
        count = con.execute(f"SELECT count(*) FROM {_ident(name)}").fetchone()[0]
        rows.append({"name": name, "kind": "table", "rows": int(count), "path": str(path)})
    views = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name = current_database() "
        "AND schema_name = 'main' ORDER BY view_name"
    ).fetchall()
    for (name,) in views:
        path = out / f"{name}.{fmt}"
        if any(r["name"] == name for r in rows):  # a table and a view never share a name in one schema
            raise InputError(path, "would be written twice", field="name")
        con.execute(f"COPY (SELECT * FROM {_ident(name)}) TO {_literal(path)} ({copy_opts})")
        count = con.execute(f"SELECT count(*) FROM {_ident(name)}").fetchone()[0]
        rows.append({"name": name, "kind": "view", "rows": int(count), "path": str(path)})
    return pd.DataFrame(rows, columns=["name", "kind", "rows", "path"])


def _exported_tables(out: Path) -> list[tuple[str, Path]]:
    """The (table, file) pairs that EXPORT DATABASE wrote, read from its load.sql (it picks the
    file names, so they are read back rather than guessed; its paths are as the folder was named)."""
    load = (out / "load.sql").read_text(encoding="utf-8")
    return [(m.group("name"), out / Path(m.group("path").replace("''", "'")).name) for m in _LOAD_LINE.finditer(load)]


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
