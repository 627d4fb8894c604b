"""Published studies' figures as data: one YAML file per study, shipped with devquarry.

A study file::

    id: chen2024-forum              # required
    title: ...                      # required
    source: arXiv 2408.05002        # required: where the figures are published
    url: https://arxiv.org/abs/...  # optional
    codebook: chen2024-forum        # the codebook its code shares refer to (optional)
    population: 29057               # optional: the study's number of questions
    sources: [discourse:community.openai.com]  # optional: the store sources (shell patterns) its
                                    # kind of data comes under; the report compares a study on
                                    # them, or on a store coded with its codebook
    note: ...                       # which values are the paper's, and what is not given
    figures:
      - id: replies-per-question    # required, unique
        ref: RQ2 (difficulty)       # the paper's table, figure or question it answers
        definition: ...             # required: the figure in words
        measure: distribution       # required: one of MEASURES (what reproduce computes)
        origin: paper               # required: paper (printed in it) or study-data (computed
                                    # by devquarry from the study's own published data)
        n: 29057                    # what the figure is counted over, where stated
        ...                         # the values, by measure (see MEASURES)

Values by measure: ``distribution``: ``of`` (replies, views, ...), ``bins`` and ``counts`` (or
``shares`` in %); a share (``pct_*``): ``value`` in % or ``count`` (with ``n``); hours: ``value``;
``code_shares``: ``level`` and ``shares_from: codebook`` (the codebook's published shares) or
``items``; ``unresolved_by_code``: ``level`` and ``items`` (``code``, ``count``, ``n``);
``unresolved_rank``: ``level`` and ``ranking`` (code ids, hardest first). Scalar measures take
``over: coded`` to count only the threads coded with one of the codebook's codes.

Errors name the file, the figure and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from devquarry.errors import InputError

# measure -> what its figure must give (besides id, definition, measure, origin)
MEASURES = {
    "distribution": "of, bins and counts (or shares in %)",
    "pct_no_reply": "value (%) or count and n",
    "pct_under_3_replies": "value (%) or count and n",
    "pct_accepted": "value (%) or count and n",
    "pct_unresolved": "value (%) or count and n",
    "hours_to_first_reply_mean": "value (hours)",
    "hours_to_first_reply_median": "value (hours)",
    "code_shares": "level and shares_from: codebook, or items",
    "unresolved_by_code": "level and items",
    "unresolved_rank": "level and ranking",
}
ORIGINS = ("paper", "study-data")
_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_TOP = {"id", "title", "source", "url", "codebook", "population", "sources", "note", "figures"}
_FIGURE = {
    "id",
    "ref",
    "definition",
    "text",
    "measure",
    "origin",
    "n",
    "value",
    "count",
    "unit",
    "of",
    "bins",
    "counts",
    "shares",
    "level",
    "shares_from",
    "items",
    "ranking",
    "over",
    "note",
}


@dataclass(frozen=True)
class Figure:
    id: str
    definition: str
    measure: str
    origin: str
    ref: str = ""
    text: str = ""
    n: int | None = None
    value: float | None = None
    count: int | None = None
    unit: str = ""
    of: str = ""
    bins: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()
    shares: tuple[float, ...] = ()
    level: int = 0
    shares_from: str = ""
    items: tuple[dict, ...] = field(default=(), hash=False, compare=False)
    ranking: tuple[str, ...] = ()
    over: str = ""
    note: str = ""


@dataclass(frozen=True)
class Study:
    id: str
    title: str
    source: str
    figures: tuple[Figure, ...]
    url: str = ""
    codebook: str | None = None
    population: int | None = None
    sources: tuple[str, ...] = ()
    note: str = ""
    path: str = ""

    def figure(self, figure_id: str) -> Figure:
        for f in self.figures:
            if f.id == figure_id:
                return f
        raise KeyError(figure_id)


def _shipped() -> dict[str, Path]:
    folder = resources.files("devquarry.studies") / "data"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith((".yaml", ".yml"))}


def list_studies() -> pd.DataFrame:
    """The studies shipped with devquarry: id, title, source, figures."""
    rows = []
    for _name, path in sorted(_shipped().items()):
        s = load_study(path)
        rows.append({"id": s.id, "title": s.title, "source": s.source, "figures": len(s.figures), "codebook": s.codebook})
    return pd.DataFrame(rows)


def load_study(name_or_path: str | Path | Study) -> Study:
    """A shipped study by id, or a YAML file of the user's."""
    if isinstance(name_or_path, Study):
        return name_or_path
    shipped = _shipped()
    path = shipped.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise InputError(str(name_or_path), f"no such study; shipped: {', '.join(sorted(shipped))}, or give a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(path, f"invalid YAML: {getattr(exc, 'problem', exc)}", line=mark.line + 1 if mark else None) from None
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text") from None
    return _validate(data, path)


def _validate(data: Any, path: Path) -> Study:
    if not isinstance(data, dict):
        raise InputError(path, "a study is a mapping with id, title, source and figures")
    unknown = set(data) - _TOP
    if unknown:
        raise InputError(path, f"unknown key(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    for key in ("id", "title", "source", "figures"):
        if not data.get(key):
            raise InputError(path, "required", field=key)
    if not _ID.match(str(data["id"])):
        raise InputError(path, "use letters, digits, '.', '_' and '-'", field="id")
    if not isinstance(data["figures"], list):
        raise InputError(path, "must be a list of figures", field="figures")
    figures, seen = [], set()
    for i, item in enumerate(data["figures"]):
        fig = _figure(item, path, f"figure {i + 1}")
        if fig.id in seen:
            raise InputError(path, "duplicate figure id", record=f"figure {fig.id}", field="id")
        seen.add(fig.id)
        figures.append(fig)
    return Study(
        id=str(data["id"]),
        title=str(data["title"]),
        source=str(data["source"]),
        url=str(data.get("url") or ""),
        codebook=str(data["codebook"]) if data.get("codebook") else None,
        population=_int(data.get("population"), path, None, "population"),
        sources=_strings(data.get("sources"), path, "sources"),
        note=str(data.get("note") or "").strip(),
        figures=tuple(figures),
        path=str(path),
    )


def _strings(v, path, name) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise InputError(path, "must be a list of names", field=name)
    return tuple(v)


def _int(v, path, where, name) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(path, f"must be a whole number >= 0, not {v!r}", record=where, field=name)
    return v


def _num(v, path, where, name) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(path, f"must be a number, not {v!r}", record=where, field=name)
    return float(v)


def _figure(item: Any, path: Path, where: str) -> Figure:
    if not isinstance(item, dict):
        raise InputError(path, "each figure is a mapping", record=where)
    fid = str(item.get("id") or "").strip()
    if not fid:
        raise InputError(path, "required", record=where, field="id")
    where = f"figure {fid}"
    if not _ID.match(fid):
        raise InputError(path, "use letters, digits, '.', '_' and '-'", record=where, field="id")
    unknown = set(item) - _FIGURE
    if unknown:
        raise InputError(path, f"unknown key(s): {', '.join(sorted(unknown))}", record=where, field=sorted(unknown)[0])
    for key in ("definition", "measure", "origin"):
        if not item.get(key):
            raise InputError(path, "required", record=where, field=key)
    measure = str(item["measure"])
    if measure not in MEASURES:
        raise InputError(path, f"unknown measure {measure!r}; measures: {', '.join(MEASURES)}", record=where, field="measure")
    if item["origin"] not in ORIGINS:
        raise InputError(path, f"use {' or '.join(ORIGINS)}", record=where, field="origin")
    fig = Figure(
        id=fid,
        definition=" ".join(str(item["definition"]).split()),
        measure=measure,
        origin=str(item["origin"]),
        ref=str(item.get("ref") or ""),
        text=str(item.get("text") or ""),
        n=_int(item.get("n"), path, where, "n"),
        value=_num(item.get("value"), path, where, "value"),
        count=_int(item.get("count"), path, where, "count"),
        unit=str(item.get("unit") or ""),
        of=str(item.get("of") or ""),
        bins=tuple(str(b) for b in item.get("bins") or ()),
        counts=tuple(_int(c, path, where, "counts") for c in item.get("counts") or ()),
        shares=tuple(_num(c, path, where, "shares") for c in item.get("shares") or ()),
        level=_int(item.get("level"), path, where, "level") or 0,
        shares_from=str(item.get("shares_from") or ""),
        items=tuple(_items(item.get("items"), path, where)),
        ranking=tuple(str(c) for c in item.get("ranking") or ()),
        over=str(item.get("over") or ""),
        note=str(item.get("note") or ""),
    )
    _check_values(fig, path, where)
    return fig


def _items(items: Any, path: Path, where: str) -> list[dict]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("code") for i in items):
        raise InputError(path, "a list of mappings, each with a code", record=where, field="items")
    out = []
    for i in items:
        extra = set(i) - {"code", "count", "n", "value"}
        if extra:
            raise InputError(path, f"unknown key(s) in an item: {', '.join(sorted(extra))}", record=where, field="items")
        out.append(
            {
                "code": str(i["code"]),
                "count": _int(i.get("count"), path, where, "items"),
                "n": _int(i.get("n"), path, where, "items"),
                "value": _num(i.get("value"), path, where, "items"),
            }
        )
    return out


def _check_values(f: Figure, path: Path, where: str) -> None:
    def need(ok: bool, field_name: str) -> None:
        if not ok:
            raise InputError(path, f"measure {f.measure} needs {MEASURES[f.measure]}", record=where, field=field_name)

    if f.over not in ("", "coded"):
        raise InputError(path, "use coded (or leave it out)", record=where, field="over")
    if f.measure == "distribution":
        from devquarry.distributions import MEASURES as DIST
        from devquarry.distributions import parse_bins

        if f.of not in DIST:
            raise InputError(path, f"unknown distribution {f.of!r}; use one of {', '.join(DIST)}", record=where, field="of")
        need(bool(f.bins), "bins")
        parse_bins(list(f.bins), where=f"{path}: {where}")
        values = f.counts or f.shares
        need(bool(values), "counts")
        if len(values) != len(f.bins):
            raise InputError(path, f"{len(values)} values for {len(f.bins)} bins", record=where, field="counts")
        if f.counts and f.n is not None and sum(f.counts) > f.n:
            raise InputError(path, f"counts add up to {sum(f.counts):,}, more than n {f.n:,}", record=where, field="counts")
    elif f.measure.startswith("pct_"):
        need(f.value is not None or (f.count is not None and f.n), "value")
    elif f.measure.startswith("hours_"):
        need(f.value is not None, "value")
    elif f.measure == "code_shares":
        need(f.shares_from == "codebook" or bool(f.items), "shares_from")
    elif f.measure == "unresolved_by_code":
        need(bool(f.items), "items")
    elif f.measure == "unresolved_rank":
        need(bool(f.ranking), "ranking")


__all__ = ["MEASURES", "Figure", "Study", "list_studies", "load_study"]
