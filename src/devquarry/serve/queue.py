"""The coding queue and the label writes: every label goes to the store at once, in its own
transaction, as the same ``label`` rows ``labels import`` writes (so agreement, evaluate and
classify read them unchanged)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd

from devquarry.codebooks import Codebook, keep_codebook, load_codebook
from devquarry.errors import InputError
from devquarry.serve.queries import Filter, latest_run, thread_detail
from devquarry.store import Store

RATER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
ORDERS = ("sample", "newest", "oldest", "uncertainty")
MAX_QUEUE = 5000
NOTE_TABLE = """CREATE TABLE IF NOT EXISTS label_note (
  codebook VARCHAR NOT NULL, source VARCHAR NOT NULL, source_id VARCHAR NOT NULL, rater VARCHAR NOT NULL,
  note VARCHAR, noted_at TIMESTAMPTZ, PRIMARY KEY (codebook, source, source_id, rater))"""


def read_sheets(paths: list) -> dict[str, pd.DataFrame]:
    """Each label sheet's threads (its ``source`` and ``source_id`` columns, in the sheet's row
    order), by queue name ``sheet:<file stem>``; read once, when the server starts."""
    from pathlib import Path

    out: dict[str, pd.DataFrame] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(path, "no such sheet")
        try:
            frame = (
                pd.read_excel(path, sheet_name=0, dtype=str) if path.suffix.lower() == ".xlsx" else pd.read_csv(path, dtype=str)
            )
        except Exception as exc:  # a damaged or foreign file: one line naming it
            raise InputError(path, f"cannot read as a label sheet ({exc.__class__.__name__})") from None
        missing = [c for c in ("source", "source_id") if c not in frame.columns]
        if missing:
            raise InputError(
                path,
                "a label sheet needs the columns source and source_id (as `devquarry sample --out` writes)",
                field=missing[0],
            )
        keys = frame[["source", "source_id"]].dropna().drop_duplicates().reset_index(drop=True)
        name = f"sheet:{path.stem}"
        if name in out:
            raise InputError(path, f"two sheets named {path.stem}: rename one", field="sheet")
        out[name] = keys
    return out


def check_rater(rater: str | None) -> str:
    if not rater or not RATER.match(rater):
        raise InputError(None, "name the rater: letters, digits and . _ @ - (up to 64), e.g. ?rater=ana", field="rater")
    return rater


def queue_keys(
    store: Store,
    flt: Filter,
    n: int,
    seed: int = 42,
    order: str = "sample",
    table: str = "threads",
    sheets: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The queue: the first ``n`` threads of the filter in a fixed order (``sample``: a seeded
    shuffle, the same for every rater who opens the same queue; ``newest``; ``oldest``;
    ``uncertainty``: the unlabelled threads the coder trained on the hand labels is least sure of,
    as `devquarry sample --strategy uncertainty` picks them; ``sheet:NAME``: a label sheet's threads
    in its order, the filter aside); ``table``:
    the ``threads`` view or its summary (``queries.summarize``)."""
    if order.startswith("sheet:"):
        return _sheet_queue(store, order, sheets or {}, table, n)
    if order not in ORDERS:
        raise InputError(None, f"unknown order {order!r}; use one of {', '.join(ORDERS)}", field="order")
    n = max(1, min(int(n), MAX_QUEUE))
    values = {k: v for k, v in flt.values.items() if k != "rater"}
    where, params = Filter(flt.codebook, values).sql(store)
    if order == "uncertainty":
        return _least_sure(store, flt.codebook, table, where, params, n, seed)
    by = {
        "sample": "hash(t.source || '|' || t.source_id || ?::VARCHAR), t.source, t.source_id",
        "newest": "t.created_at DESC NULLS LAST, t.source, t.source_id",
        "oldest": "t.created_at NULLS LAST, t.source, t.source_id",
    }[order]
    extra = [str(seed)] if order == "sample" else []
    return store.query(
        f"SELECT t.source, t.source_id FROM {table} t WHERE {where} ORDER BY {by} LIMIT ?", [*params, *extra, n]
    ).reset_index(names="position")


def _sheet_queue(store: Store, order: str, sheets: dict[str, pd.DataFrame], table: str, n: int) -> pd.DataFrame:
    if order not in sheets:
        known = ", ".join(sheets) or "none (start the server with --sheet FILE)"
        raise InputError(None, f"no sheet queue {order!r}; sheets: {known}", field="order")
    keys = sheets[order].reset_index(names="position")
    held = store.query(f"SELECT source, source_id FROM {table}")
    # The sheet's threads that the store holds, in the sheet's order.
    keys = keys.merge(held, on=["source", "source_id"], how="inner").sort_values("position")
    return keys[["source", "source_id"]].head(n).reset_index(drop=True).reset_index(names="position")


def _least_sure(store: Store, codebook: str, table: str, where: str, params: list, n: int, seed: int) -> pd.DataFrame:
    from devquarry.active import pick

    wanted = store.query(f"SELECT t.source, t.source_id FROM {table} t WHERE {where}", params)
    # Every unlabelled thread ranked (least sure first), then the filter's threads kept in that order.
    ranked = pick(store, codebook, 10**9, strategy="uncertainty", seed=seed)  # n is capped at the pool
    keys = ranked[["source", "source_id"]].merge(wanted, on=["source", "source_id"], how="inner")
    return keys.head(n).reset_index(drop=True).reset_index(names="position")


def progress(store: Store, keys: pd.DataFrame, codebook: str, rater: str) -> tuple[pd.DataFrame, int]:
    """The queue with a ``done`` flag per thread (this rater labelled it) and the count done."""
    if keys.empty:
        return keys.assign(done=[]), 0
    done = store.query("SELECT DISTINCT source, source_id FROM label WHERE codebook = ? AND rater = ?", [codebook, rater]).assign(
        done=True
    )
    out = keys.merge(done, on=["source", "source_id"], how="left")
    out["done"] = out["done"].astype("boolean").fillna(False).astype(bool)
    return out.sort_values("position", ignore_index=True), int(out.done.sum())


def card(store: Store, source: str, source_id: str, codebook: str, *, assisted: bool, summary: str = "threads") -> dict:
    """What the coder sees of a thread: title, question, accepted answer; in assisted mode the machine's codes."""
    runs = {codebook: latest_run(store, codebook) or -1} if assisted else {}
    d = thread_detail(store, source, source_id, summary=summary, runs=runs, full=False)
    if d is None:
        raise InputError(store.path, f"no thread {source}/{source_id}")
    out = d["thread"]
    out["answer"] = next((r["body_text"] for r in d["replies"] if r["is_accepted"]), None)
    out["suggestions"] = [{"code": m["code"], "score": m["score"]} for m in d["machine"]] if assisted else []
    return out


def parse_codes(cb: Codebook, codes: list[str]) -> list[str]:
    known = {c.id for c in cb.codes}
    out = []
    for c in codes:
        c = c.strip()
        if not c:
            continue
        if c not in known:
            raise InputError(None, f"code {c!r} is not in codebook {cb.id}", field="code")
        if c not in out:
            out.append(c)
    return out


def write_label(
    store: Store,
    runs: dict,
    codebook: str | Codebook,
    source: str,
    source_id: str,
    rater: str,
    codes: list[str],
    *,
    irrelevant: bool = False,
    uncertain: bool = False,
    note: str | None = None,
) -> int:
    """Replace this rater's label of one thread: one row per code (the first is primary, rank 0), or
    one ``irrelevant`` row with an empty code, as ``labels import`` writes them. One transaction;
    the labels of one server session and rater share a ``labels serve`` run. Returns the rows written."""
    cb = load_codebook(codebook, store=store)
    check_rater(rater)
    codes = [] if irrelevant else parse_codes(cb, codes)
    if not codes and not irrelevant:
        raise InputError(None, "pick a code (or x: not about the subject)", field="code")
    rows = [(c, i, cb.code(c).level, "coded") for i, c in enumerate(codes)] or [("", 0, None, "irrelevant")]
    started = datetime.now(UTC)
    with store.transaction() as con:
        if not con.execute("SELECT count(*) FROM thread WHERE source = ? AND source_id = ?", [source, source_id]).fetchone()[0]:
            raise InputError(store.path, f"no thread {source}/{source_id}")
        key = (cb.id, rater)
        run_id = runs.get(key)
        if run_id is None or not con.execute("SELECT count(*) FROM run WHERE run_id = ?", [run_id]).fetchone()[0]:
            run_id = store.next_run_id()
            store.record_run(run_id, "labels serve", {"codebook": cb.id, "rater": rater}, {"labels": 0}, started)
        con.execute(
            "DELETE FROM label WHERE codebook = ? AND source = ? AND source_id = ? AND rater = ?",
            [cb.id, source, source_id, rater],
        )
        con.executemany(
            "INSERT INTO label VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [cb.id, source, source_id, rater, code, rank, level, status, bool(uncertain), run_id]
                for code, rank, level, status in rows
            ],
        )
        keep_codebook(con, cb)
        con.execute(NOTE_TABLE)
        if note and note.strip():
            con.execute(
                "INSERT OR REPLACE INTO label_note VALUES (?, ?, ?, ?, ?, ?)",
                [cb.id, source, source_id, rater, note.strip()[:2000], started],
            )
        else:
            con.execute(
                "DELETE FROM label_note WHERE codebook = ? AND source = ? AND source_id = ? AND rater = ?",
                [cb.id, source, source_id, rater],
            )
        store.add_run_counts(run_id, {"labels": 1})
    runs[key] = run_id
    return len(rows)


def undo_label(store: Store, codebook: str, source: str, source_id: str, rater: str) -> int:
    """Remove this rater's label of one thread (the coder's ``z``); returns the rows removed."""
    check_rater(rater)
    with store.transaction() as con:
        n = con.execute(
            "SELECT count(*) FROM label WHERE codebook = ? AND source = ? AND source_id = ? AND rater = ?",
            [codebook, source, source_id, rater],
        ).fetchone()[0]
        con.execute(
            "DELETE FROM label WHERE codebook = ? AND source = ? AND source_id = ? AND rater = ?",
            [codebook, source, source_id, rater],
        )
        con.execute(NOTE_TABLE)
        con.execute(
            "DELETE FROM label_note WHERE codebook = ? AND source = ? AND source_id = ? AND rater = ?",
            [codebook, source, source_id, rater],
        )
    return int(n)


def key_map(cb: Codebook) -> dict:
    """Keys for the codes: 1-9 then 0 for the categories, and 1-9 for the subcategories of a category."""
    keys = list("1234567890") + list("abcdefghijklmopqrstvwy")  # n, u, x and z are the coder's own keys
    top = cb.at_level(0)
    out = {"top": [{"key": keys[i], "code": c.id, "name": c.name} for i, c in enumerate(top[: len(keys)])], "sub": {}}
    for c in top:
        kids = [k for k in cb.codes if k.parent == c.id]
        out["sub"][c.id] = [{"key": keys[i], "code": k.id, "name": k.name} for i, k in enumerate(kids[: len(keys)])]
    return out
