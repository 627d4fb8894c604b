"""The hand-labelling workflow: sample size, stratified label sheets, importing labels, agreement.

Label strings are read as the forum study's coders typed them (``openai-forum-labelled``):

- several codes joined by ``--`` (or ``///``, ``,``, ``;``, ``|``): all of them, the first is
  the primary code (the one a single-label share or kappa uses);
- ``C--``: a bare category, coded at category level only (no subcategory);
- a ``*`` suffix: the coder was unsure; the codes are kept and flagged ``uncertain``;
- ``///`` alone: the coder found no code of the taxonomy (irrelevant): kept as status
  ``irrelevant``, left out of shares and of agreement on codes;
- blank: not labelled, skipped.
Codes match case-insensitively, and a codebook's ``source_values`` are accepted as aliases
(``1`` for ``chat`` in ``chen2025-so-api``).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from devquarry.codebooks import Codebook, keep_codebook, load_codebook
from devquarry.errors import InputError
from devquarry.store import Store

_SPLIT = re.compile(r"--|///|[,;|+]")


def sample_size(population: int, confidence: float = 0.95, margin: float = 0.05, p: float = 0.5) -> dict:
    """Cochran's sample size with the finite-population correction.

    n0 = z^2 p (1 - p) / e^2 and n = n0 / (1 + (n0 - 1) / N), rounded up.
    """
    from scipy.stats import norm

    if population < 1 or not 0 < confidence < 1 or not 0 < margin < 1:
        raise InputError(None, "population must be positive; confidence and margin between 0 and 1")
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    n0 = z * z * p * (1 - p) / (margin * margin)
    n = n0 / (1 + (n0 - 1) / population)
    return {
        "population": population,
        "confidence": confidence,
        "margin": margin,
        "p": p,
        "z": round(z, 4),
        "n0": round(n0, 2),
        "n": int(math.ceil(n)),
        "formula": "n0 = z^2 p(1-p) / e^2;  n = n0 / (1 + (n0 - 1) / N)",
    }


def stratified_sample(threads: pd.DataFrame, n: int, strata: str = "source", seed: int = 42) -> pd.DataFrame:
    """Proportional stratified sample (largest remainders), reproducible by seed."""
    n = min(n, len(threads))
    groups = threads.groupby(threads[strata].fillna("(none)"), sort=True)
    sizes = groups.size()
    exact = sizes / sizes.sum() * n
    take = np.floor(exact).astype(int)
    short = n - int(take.sum())
    for key in (exact - take).sort_values(ascending=False, kind="stable").index[:short]:
        take[key] += 1
    parts = [grp.sample(n=int(take[key]), random_state=seed) for key, grp in groups if take[key] > 0]
    return pd.concat(parts).sort_values(["source", "source_id"]).reset_index(drop=True)


def write_sheet(sample: pd.DataFrame, out: str | Path, raters: list[str], codebook: Codebook) -> Path:
    """A label sheet: one row per thread, its link and text, one empty column per rater."""
    out = Path(out)
    sheet = pd.DataFrame(
        {
            "source": sample.source,
            "source_id": sample.source_id,
            "url": sample.url,
            "title": sample.title,
            "body": sample.body_text.fillna("").str.slice(0, 1500),
        }
    )
    for r in raters:
        sheet[f"label_{r}"] = ""
    sheet["notes"] = ""
    # Titles such as '=HYPERLINK(...)' would be live formulas: every text cell is made inert.
    from devquarry.safe_text import sheet_frame

    sheet = sheet_frame(sheet)
    if out.suffix.lower() == ".xlsx":
        with pd.ExcelWriter(out) as xl:
            sheet.to_excel(xl, sheet_name="labels", index=False)
            book = sheet_frame(codebook.frame()[["code", "name", "level", "description"]])
            book.to_excel(xl, sheet_name="codebook", index=False)
    elif out.suffix.lower() == ".csv":
        sheet.to_csv(out, index=False)
    else:
        raise InputError(out, "write the sheet as .csv or .xlsx")
    return out


@dataclass(frozen=True)
class ParsedLabel:
    codes: tuple[str, ...]
    status: str  # coded | irrelevant | blank
    uncertain: bool = False


def parse_label(text, codebook: Codebook) -> ParsedLabel:
    """Read one label cell; raises KeyError naming a code the codebook lacks."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ParsedLabel((), "blank")
    raw = str(text).strip()
    if isinstance(text, float) and text.is_integer():
        raw = str(int(text))
    if not raw:
        return ParsedLabel((), "blank")
    if raw in codebook.irrelevant_values:
        return ParsedLabel((), "irrelevant")
    uncertain = raw.endswith("*")
    raw = raw.rstrip("*").strip()
    parts = [p.strip() for p in _SPLIT.split(raw) if p.strip()]
    if not parts:
        return ParsedLabel((), "irrelevant", uncertain)
    known = {c.id.lower(): c.id for c in codebook.codes}
    aliases = {k.lower(): v for k, v in codebook.by_source_value().items()}
    codes = []
    for p in parts:
        key = p.lower().rstrip(".")
        code = known.get(key) or aliases.get(key)
        if code is None:
            raise KeyError(p)
        if code not in codes:
            codes.append(code)
    return ParsedLabel(tuple(codes), "coded", uncertain)


def read_sheet(path: str | Path, encoding: str = "utf-8", header: bool = True) -> pd.DataFrame:
    """A label sheet as text cells. Without a header row (``header=False``) its columns are named by
    number from 1; a header cell holding a number (an xlsx year, say) is named as text too."""
    from devquarry.sources.base import decode, read_bytes

    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        read_bytes(path)
        df = pd.read_excel(path, sheet_name=0, dtype=str, header=0 if header else None)
    else:
        text = decode(read_bytes(path), path, encoding)
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], header=0 if header else None)
    df.columns = [str(c) for c in df.columns] if header else [str(i + 1) for i in range(df.shape[1])]
    return df


def import_labels_from_threads(store: Store, codebook: str | Codebook, source: str, rater: str = "source") -> pd.DataFrame:
    """Hand labels that came with the threads themselves (the ``label`` field of an imported table)."""
    df = store.query("SELECT source, source_id, label FROM thread WHERE source = ? AND label IS NOT NULL", [source])
    if df.empty:
        raise InputError(
            store.path, f"no thread of source {source!r} carries a label (map one with `ingest table --map label=COLUMN`)"
        )
    return import_labels(store, df.rename(columns={"label": f"label_{rater}"}), codebook, rater=rater)


def import_labels(
    store: Store,
    sheet: str | Path | pd.DataFrame,
    codebook: str | Codebook,
    *,
    rater: str | None = None,
    label_column: str | None = None,
    source: str | None = None,
    id_column: str | None = None,
    encoding: str = "utf-8",
    header: bool = True,
) -> pd.DataFrame:
    """Read hand labels from a sheet into the store; return counts per rater.

    The sheet names its threads with ``source`` and ``source_id`` columns (devquarry's own
    sheets), or ``--source`` plus ``--id-column``. Labels come from every ``label_<rater>``
    column, or from ``label_column`` for ``rater``. Re-importing replaces that rater's labels
    of those threads. Unknown codes are errors naming the line and the column.
    """
    cb = load_codebook(codebook, store=store)
    if isinstance(sheet, pd.DataFrame):
        path, df = Path("(threads)"), sheet
    else:
        path = Path(sheet)
        df = read_sheet(path, encoding, header)
    if label_column:
        if label_column not in df.columns:
            raise InputError(path, f"no column {label_column!r}; columns: {', '.join(df.columns)}", field=label_column)
        columns = {rater or "rater1": label_column}
    else:
        columns = {c[len("label_") :]: c for c in df.columns if c.startswith("label_")}
        if rater:
            columns = {rater: f"label_{rater}"} if f"label_{rater}" in df.columns else {}
        if not columns:
            raise InputError(path, "no label column: name one with --label-column, or use label_<rater> columns", field="label")
    if source is not None or id_column is not None:
        if not (source and id_column):
            raise InputError(path, "give both --source and --id-column", field="source")
        if id_column not in df.columns:
            raise InputError(path, f"no column {id_column!r}", field=id_column)
        keys = pd.DataFrame({"source": source, "source_id": df[id_column].astype(str).str.strip()})
    else:
        for col in ("source", "source_id"):
            if col not in df.columns:
                raise InputError(path, "the sheet needs source and source_id columns (or --source and --id-column)", field=col)
        keys = df[["source", "source_id"]].astype(str)
    # A key that looked like a formula was written to the sheet as '=..., and is read back as it was.
    from devquarry.safe_text import unescape_cell

    keys = keys.map(unescape_cell)
    rows, counts = [], []
    for r, col in columns.items():
        n = {"rater": r, "coded": 0, "irrelevant": 0, "blank": 0, "uncertain": 0}
        for i, value in enumerate(df[col].tolist()):
            try:
                parsed = parse_label(value, cb)
            except KeyError as exc:
                raise InputError(path, f"code {exc.args[0]!r} is not in codebook {cb.id}", line=i + 2, field=col) from None
            n[parsed.status] += 1
            n["uncertain"] += parsed.uncertain
            if parsed.status == "blank":
                continue
            for rank, code in enumerate(parsed.codes or ("",)):
                rows.append(
                    {
                        "codebook": cb.id,
                        "source": keys.source.iat[i],
                        "source_id": keys.source_id.iat[i],
                        "rater": r,
                        "code": code,
                        "rank": rank,
                        "level": cb.code(code).level if code else None,
                        "status": parsed.status,
                        "uncertain": parsed.uncertain,
                    }
                )
        counts.append(n)
    labels = pd.DataFrame(
        rows, columns=["codebook", "source", "source_id", "rater", "code", "rank", "level", "status", "uncertain"]
    )
    started = datetime.now(UTC)
    with store.transaction() as con:
        known = con.execute("SELECT source, source_id FROM thread").df()
        merged = labels.merge(known.assign(_k=1), on=["source", "source_id"], how="left")
        unknown = merged[merged._k.isna()][["source", "source_id"]].drop_duplicates()
        labels = merged[merged._k.notna()].drop(columns="_k")
        if len(labels) == 0 and len(unknown):
            raise InputError(
                path,
                f"none of the {len(unknown)} labelled threads is in the store (first: {unknown.iloc[0].source}/{unknown.iloc[0].source_id}); ingest them first",
            )
        run_id = store.next_run_id()
        batch = pa.Table.from_pandas(labels.assign(run_id=run_id), preserve_index=False)  # noqa: F841
        con.execute(
            """DELETE FROM label WHERE codebook = ? AND (source, source_id, rater) IN
                       (SELECT DISTINCT source, source_id, rater FROM batch)""",
            [cb.id],
        )
        con.execute("""INSERT INTO label SELECT codebook, source, source_id, rater, code, rank::INTEGER, level::INTEGER,
                       status, uncertain, run_id::INTEGER FROM batch""")
        keep_codebook(con, cb)  # later runs need the codebook of these labels after its file is gone
        out = pd.DataFrame(counts)
        out["threads_not_in_store"] = len(unknown)
        store.record_run(
            run_id, "labels import", {"sheet": str(path), "codebook": cb.id, "columns": columns}, out.to_dict("records"), started
        )
    return out


def labels_frame(store: Store, codebook: str, level: int | None = None) -> pd.DataFrame:
    """One row per (thread, rater): the primary code (at ``level``), all codes, status."""
    cb = load_codebook(codebook, store=store)
    df = store.query("SELECT * FROM label WHERE codebook = ? ORDER BY source, source_id, rater, rank", [cb.id])
    if df.empty:
        raise InputError(store.path, f"no labels for codebook {cb.id}; import a sheet with `devquarry labels import`")
    df["code_at_level"] = [cb.ancestor(c, level) if (c and level is not None) else (c or None) for c in df.code]
    df["code_at_level"] = df["code_at_level"].astype(object).where(df["code_at_level"].notna(), None)
    g = df.groupby(["source", "source_id", "rater"], sort=False)
    out = g.agg(
        status=("status", "first"),
        uncertain=("uncertain", "max"),
        primary=("code_at_level", "first"),
        codes=("code_at_level", lambda s: sorted({c for c in s if isinstance(c, str) and c})),
    ).reset_index()
    if level is not None:
        # A bare category cannot be compared at a deeper level.
        too_shallow = [isinstance(c, str) and bool(c) and cb.code(c).level < level for c in out.primary]
        out.loc[too_shallow, "primary"] = None
    return out


def label_shares(store: Store, codebook: str, level: int = 0, rater: str | None = None) -> pd.DataFrame:
    """Share of coded threads per code (primary code), beside the share the codebook publishes."""
    cb = load_codebook(codebook, store=store)
    df = labels_frame(store, codebook, level)
    if rater:
        df = df[df.rater == rater]
    coded = df[(df.status == "coded") & df.primary.notna()]
    counts = coded.primary.value_counts()
    any_counts = coded.explode("codes").codes.value_counts()
    rows = []
    for c in cb.at_level(level):
        rows.append(
            {
                "code": c.id,
                "name": c.name,
                "threads": int(counts.get(c.id, 0)),
                "share": counts.get(c.id, 0) / len(coded) if len(coded) else float("nan"),
                "share_any_mention": any_counts.get(c.id, 0) / len(coded) if len(coded) else float("nan"),
                "published_share": c.share / 100 if c.share is not None else None,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update(coded=len(coded), irrelevant=int((df.status == "irrelevant").sum()), raters=sorted(df.rater.unique()))
    return out


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa of a subjects x categories table of rater counts (equal raters per subject)."""
    table = np.asarray(table, dtype=float)
    n = table.sum(axis=1)[0]
    p_j = table.sum(axis=0) / table.sum()
    p_i = ((table * table).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), (p_j * p_j).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else 1.0


def agreement(store: Store, codebook: str, level: int = 0, raters: list[str] | None = None) -> dict:
    """Agreement between raters on the primary code at a level, over threads every rater coded;
    ``raters`` picks them (other raters' labels, training labels say, are then left out).

    Returns kappa (Cohen's for two raters, Fleiss' for more), percent agreement, the number of
    threads compared, a confusion matrix (two raters) and the disagreements.
    """
    from sklearn.metrics import cohen_kappa_score

    cb = load_codebook(codebook, store=store)
    df = labels_frame(store, codebook, level)
    df = df[(df.status == "coded") & df.primary.notna()]
    if raters:
        known = sorted(set(df.rater))
        missing = [r for r in raters if r not in known]
        if missing:
            raise InputError(
                store.path,
                f"no coded labels by {', '.join(missing)} in {cb.id}; raters: {', '.join(known) or 'none'}",
                field="raters",
            )
        df = df[df.rater.isin(raters)]
    wide = df.pivot_table(index=["source", "source_id"], columns="rater", values="primary", aggfunc="first").dropna()
    raters = list(wide.columns)
    if len(raters) < 2:
        raise InputError(store.path, f"agreement needs two raters; codebook {cb.id} has {len(raters)} ({', '.join(raters)})")
    result = {
        "codebook": cb.id,
        "level": cb.levels[level] if level < len(cb.levels) else level,
        "raters": raters,
        "threads": len(wide),
        "human_kappa_published": cb.human_kappa,
    }
    if len(wide) == 0:
        raise InputError(store.path, "no thread was coded by every rater")
    values = wide.to_numpy()
    result["percent_agreement"] = float(np.mean([len(set(row)) == 1 for row in values]))
    if len(raters) == 2:
        result["kappa"] = float(cohen_kappa_score(values[:, 0], values[:, 1]))
        result["method"] = "Cohen"
        result["confusion"] = pd.crosstab(wide[raters[0]], wide[raters[1]])
    else:
        cats = sorted(set(values.ravel()))
        table = np.array([[list(row).count(c) for c in cats] for row in values])
        result["kappa"] = fleiss_kappa(table)
        result["method"] = "Fleiss"
        result["pairwise"] = {f"{a}~{b}": float(cohen_kappa_score(wide[a], wide[b])) for a, b in combinations(raters, 2)}
    result["disagreements"] = wide[[len(set(r)) > 1 for r in values]].reset_index()
    return result
