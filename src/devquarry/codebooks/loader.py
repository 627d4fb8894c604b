"""Load and validate codebooks.

A codebook is a YAML file::

    id: my-codebook            # required, letters, digits, . _ -
    name: What it codes        # required
    multi_label: true          # a thread may carry several codes (default false)
    primary_code: true         # with multi_label: the first code is the primary one, coded and
                               # counted by default (default true for single-label codebooks)
    levels: [category, subcategory]
    human_kappa: 0.81          # optional: the agreement of the human coders it came with
    codes:
      - id: A                  # required, unique
        name: General          # required
        parent: null           # the id of a code above it (one level deeper per parent)
        share: 26.3            # optional: the published share, in %
        description: ...       # what belongs here
        excludes: ...          # what does not
        keywords: [..]
        examples: [..]
        source_values: [..]    # optional: how the code is written in a source's own labels
    irrelevant_values: [..]    # optional: label values meaning "none of these codes"

Errors name the file, the code and the field.

A user's codebook is kept in the store (its YAML text) when labels are imported for it, so that
later runs find it by id or by its old path after the file has gone: ``load_codebook(name,
store=...)``, or inside ``with codebooks_of(store):``.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from devquarry.errors import InputError

_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_CODE_KEYS = {"id", "name", "parent", "share", "description", "excludes", "keywords", "examples", "source_values", "applies_to"}
_TOP_KEYS = {
    "id",
    "name",
    "reference",
    "multi_label",
    "primary_code",
    "levels",
    "human_kappa",
    "population",
    "sample_size",
    "shares_note",
    "irrelevant_values",
    "codes",
}


@dataclass(frozen=True)
class Code:
    id: str
    name: str
    parent: str | None = None
    level: int = 0
    share: float | None = None
    description: str = ""
    excludes: str = ""
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    source_values: tuple[str, ...] = ()
    applies_to: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def text(self) -> str:
        """What a zero-shot classifier reads: name, description and keywords."""
        return ". ".join(p for p in (self.name, self.description, ", ".join(self.keywords), " ".join(self.examples)) if p)


@dataclass(frozen=True)
class Codebook:
    id: str
    name: str
    codes: tuple[Code, ...]
    multi_label: bool = False
    # The coders named one code of several first (the forum study): coded and counted by it.
    primary_code: bool = False
    levels: tuple[str, ...] = ("category",)
    human_kappa: float | None = None
    reference: str = ""
    population: int | None = None
    sample_size: int | None = None
    irrelevant_values: tuple[str, ...] = ()
    path: str = ""
    yaml: str = field(default="", repr=False, compare=False)  # the text it was read from

    def code(self, code_id: str) -> Code:
        for c in self.codes:
            if c.id == code_id:
                return c
        raise KeyError(code_id)

    def at_level(self, level: int) -> list[Code]:
        return [c for c in self.codes if c.level == level]

    def ancestor(self, code_id: str, level: int) -> str:
        """The code's ancestor at a level (itself when it is at that level or above)."""
        c = self.code(code_id)
        while c.level > level and c.parent:
            c = self.code(c.parent)
        return c.id

    def by_source_value(self) -> dict[str, str]:
        return {v: c.id for c in self.codes for v in c.source_values}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "code": c.id,
                    "name": c.name,
                    "parent": c.parent,
                    "level": self.levels[c.level] if c.level < len(self.levels) else c.level,
                    "share": c.share,
                    "description": c.description,
                    "keywords": list(c.keywords),
                }
                for c in self.codes
            ]
        )


def _shipped() -> dict[str, Path]:
    folder = resources.files("devquarry.codebooks") / "data"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith((".yaml", ".yml"))}


def list_codebooks() -> pd.DataFrame:
    """The codebooks shipped with devquarry."""
    rows = []
    for _name, path in sorted(_shipped().items()):
        cb = load_codebook(path)
        rows.append(
            {
                "id": cb.id,
                "name": cb.name,
                "codes": len(cb.codes),
                "levels": ", ".join(cb.levels),
                "multi_label": cb.multi_label,
                "primary_code": cb.primary_code,
                "human_kappa": cb.human_kappa,
            }
        )
    return pd.DataFrame(rows)


_STORE: ContextVar = ContextVar("codebook_store", default=None)
# The user codebooks this process has read, by id: a command given a file passes the id on (a coder
# made with ``cb.id``), and that id must find the file's codebook again.
_SEEN: dict[str, Codebook] = {}


@contextmanager
def codebooks_of(store):
    """Within it, ``load_codebook`` also finds the codebooks kept in ``store``."""
    token = _STORE.set(store)
    try:
        yield
    finally:
        _STORE.reset(token)


def load_codebook(name_or_path: str | Path | Codebook, store=None) -> Codebook:
    """A shipped codebook by id, or a YAML file of the user's; else, when the file is gone (or
    ``name_or_path`` is its id), the copy kept in ``store`` (or the store of ``codebooks_of``)
    when its labels were imported."""
    if isinstance(name_or_path, Codebook):
        return name_or_path
    shipped = _shipped()
    name = str(name_or_path)
    path = shipped.get(name) or Path(name_or_path)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        cb = _parse(text, path)
        if name not in shipped:
            _SEEN[cb.id] = cb
        return cb
    stored = _stored(store if store is not None else _STORE.get(), name)
    if stored is not None:
        return stored
    if name in _SEEN:
        return _SEEN[name]
    raise InputError(name, f"no such codebook; shipped: {', '.join(sorted(shipped))}, or give a YAML file")


def _parse(text: str, path: Path) -> Codebook:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(path, f"invalid YAML: {getattr(exc, 'problem', exc)}", line=mark.line + 1 if mark else None) from None
    return _validate(data, path, text)


def _stored(store, name: str) -> Codebook | None:
    if store is None:
        return None
    try:
        row = store.con.execute(
            "SELECT id, yaml, path FROM codebook WHERE id = ? OR path = ? ORDER BY id = ? DESC LIMIT 1",
            [name, str(Path(name).resolve()), name],
        ).fetchone()
    except Exception:  # noqa: BLE001 - a store opened read-only from before the table holds no copy
        return None
    if row is None:
        return None
    cb = _parse(row[1], Path(row[2] or f"{store.path}: codebook {row[0]}"))
    _SEEN[cb.id] = cb
    return cb


def keep_codebook(con, cb: Codebook) -> None:
    """Keep a user's codebook in the store (``con``: inside the transaction that imports its labels);
    a shipped one ships with every devquarry."""
    if not cb.yaml or Path(cb.path) in set(_shipped().values()):
        return
    con.execute(
        "INSERT OR REPLACE INTO codebook VALUES (?, ?, ?, ?)",
        [cb.id, cb.yaml, str(Path(cb.path).resolve()), datetime.now(UTC)],
    )


def _validate(data: Any, path: Path, text: str = "") -> Codebook:
    if not isinstance(data, dict):
        raise InputError(path, "a codebook is a mapping with id, name and codes")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise InputError(path, f"unknown key(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    for key in ("id", "name", "codes"):
        if not data.get(key):
            raise InputError(path, "required", field=key)
    if not _ID.match(str(data["id"])):
        raise InputError(path, "use letters, digits, '.', '_' and '-'", field="id")
    if not isinstance(data["codes"], list):
        raise InputError(path, "must be a list of codes", field="codes")
    raw: dict[str, dict] = {}
    for i, item in enumerate(data["codes"]):
        where = f"code {i + 1}"
        if not isinstance(item, dict):
            raise InputError(path, "each code is a mapping", record=where)
        cid = str(item.get("id", "")).strip()
        if not cid:
            raise InputError(path, "required", record=where, field="id")
        where = f"code {cid}"
        if not _ID.match(cid):
            raise InputError(path, "use letters, digits, '.', '_' and '-'", record=where, field="id")
        if cid in raw:
            raise InputError(path, "duplicate code id", record=where, field="id")
        bad = set(item) - _CODE_KEYS
        if bad:
            raise InputError(path, f"unknown key(s): {', '.join(sorted(bad))}", record=where, field=sorted(bad)[0])
        if not item.get("name"):
            raise InputError(path, "required", record=where, field="name")
        share = item.get("share")
        if share is not None and (not isinstance(share, (int, float)) or not 0 <= share <= 100):
            raise InputError(path, f"a percentage from 0 to 100, got {share!r}", record=where, field="share")
        for list_key in ("keywords", "examples", "source_values"):
            if item.get(list_key) is not None and not isinstance(item[list_key], list):
                raise InputError(path, "must be a list", record=where, field=list_key)
        raw[cid] = item
    levels: dict[str, int] = {}

    def level(cid: str, seen: tuple = ()) -> int:
        if cid in levels:
            return levels[cid]
        parent = raw[cid].get("parent")
        if parent is None:
            levels[cid] = 0
        else:
            parent = str(parent)
            if parent not in raw:
                raise InputError(path, f"parent {parent!r} is not a code of this codebook", record=f"code {cid}", field="parent")
            if parent in seen:
                raise InputError(path, "parents form a cycle", record=f"code {cid}", field="parent")
            levels[cid] = level(parent, seen + (cid,)) + 1
        return levels[cid]

    codes = []
    for cid, item in raw.items():
        codes.append(
            Code(
                id=cid,
                name=str(item["name"]),
                parent=str(item["parent"]) if item.get("parent") is not None else None,
                level=level(cid),
                share=float(item["share"]) if item.get("share") is not None else None,
                description=str(item.get("description") or "").strip(),
                excludes=str(item.get("excludes") or "").strip(),
                keywords=tuple(str(k) for k in item.get("keywords") or ()),
                examples=tuple(str(k) for k in item.get("examples") or ()),
                source_values=tuple(str(k) for k in item.get("source_values") or ()),
                applies_to=dict(item.get("applies_to") or {}),
            )
        )
    depth = max(c.level for c in codes) + 1
    names = tuple(data.get("levels") or [f"level{i}" for i in range(depth)])
    if len(names) < depth:
        raise InputError(path, f"codes go {depth} levels deep but {len(names)} level names are given", field="levels")
    return Codebook(
        id=str(data["id"]),
        name=str(data["name"]),
        codes=tuple(codes),
        multi_label=bool(data.get("multi_label", False)),
        primary_code=bool(data.get("primary_code", not data.get("multi_label", False))),
        levels=names,
        human_kappa=data.get("human_kappa"),
        reference=str(data.get("reference") or ""),
        population=data.get("population"),
        sample_size=data.get("sample_size"),
        irrelevant_values=tuple(str(v) for v in data.get("irrelevant_values") or ()),
        path=str(path),
        yaml=text,
    )
