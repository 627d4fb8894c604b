"""Stack Exchange data dumps: Posts.xml streamed, plus PostLinks.xml and Comments.xml.

Dumps are tens of GB, so rows are parsed one at a time with ``iterparse`` and each is
cleared once read: memory stays flat whatever the file size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from devquarry.errors import InputError
from devquarry.model import Link, Record, Reply, Thread
from devquarry.sources.base import Source, check_file, int_field, open_binary, time_field
from devquarry.sources.limits import INT32_MAX, MAX_FIELD_ENV, field_too_big, max_field_bytes, too_big
from devquarry.text import html_to_text, repair

# Without huge_tree libxml2 stops at a token over 10,000,000 bytes (and caps entity expansion); it
# is asked for only when the field cap allows fields that long.
_LIBXML_MAX_TEXT = 10_000_000
# Every recent dump carries these two placeholder posts; they are not real questions.
FAKE_POST_IDS = {"1000000001", "1000000010"}
LINK_TYPES = {"1": "related", "3": "duplicate"}
_TAG_SPLIT = re.compile(r"[<>|]+")
_LINK_HOST = re.compile(r'href="https?://([a-z0-9.-]+)/(?:questions|q|a)/\d+')
_HOST = re.compile(
    r"^([a-z0-9-]+\.)*(stackexchange\.com|stackoverflow\.com|serverfault\.com|superuser\.com|askubuntu\.com|mathoverflow\.net)$"
)


def source_name(site: str) -> str:
    return "stackoverflow" if site == "stackoverflow.com" else f"stackexchange:{site}"


def split_tags(value: str | None) -> list[str]:
    """Tags come as ``<a><b>`` in older dumps and ``|a|b|`` in newer ones."""
    if not value:
        return []
    return [t for t in _TAG_SPLIT.split(value) if t]


class StackExchangeDump(Source):
    kind = "stackexchange"

    def __init__(self, path: str | Path, *, tags: list[str] | None = None, site: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            folder = path
            posts = next((path / n for n in ("Posts.xml", "Posts.xml.gz") if (path / n).exists()), None)
            if posts is None:
                raise InputError(path, "directory has no Posts.xml")
        else:
            folder, posts = path.parent, path
        super().__init__([posts])
        self.posts = posts
        self.links = _sibling(folder, "PostLinks.xml")
        self.comments = _sibling(folder, "Comments.xml")
        self.tags = {t.strip().lower() for t in tags or [] if t.strip()}
        self.site = site or _site_from_folder(folder) or _site_from_links(posts) or "stackoverflow.com"
        self.source = source_name(self.site)

    def input_files(self) -> list[Path]:
        return [p for p in (self.posts, self.links, self.comments) if p is not None]

    def params(self) -> dict[str, Any]:
        return {
            "paths": [str(p) for p in self.input_files()],
            "tags": sorted(self.tags),
            "site": self.site,
        }

    def records(self) -> Iterator[Record]:
        kept: set[str] | None = set() if self.tags else None
        self.current = self.posts
        for line, row in iter_rows(self.posts, self.progress):
            rec = self._post(row, line, kept)
            if rec is not None:
                yield rec
        if self.links is not None:
            self.current = self.links
            for line, row in iter_rows(self.links, self.progress):
                link = self._link(row, line, kept)
                if link is not None:
                    yield link
        if self.comments is not None:
            self.current = self.comments
            for line, row in iter_rows(self.comments, self.progress):
                yield self._comment(row, line)

    def _post(self, row: dict, line: int, kept: set[str] | None) -> Record | None:
        path = self.posts
        pid = _require(row, "Id", path, line)
        if pid in FAKE_POST_IDS:
            return None
        ptype = row.get("PostTypeId")
        if ptype == "1":
            tags = split_tags(row.get("Tags"))
            if kept is not None:
                if not self.tags.intersection(t.lower() for t in tags):
                    return None
                kept.add(pid)
            text, code = html_to_text(row.get("Body"))
            closed = time_field(row.get("ClosedDate"), path, "ClosedDate", line=line)
            accepted = row.get("AcceptedAnswerId")
            return Thread(
                source=self.source,
                source_id=pid,
                title=repair(row.get("Title", "")),
                url=f"https://{self.site}/questions/{pid}",
                body_text=text,
                body_html=row.get("Body"),
                code=code,
                tags=tags,
                author=row.get("OwnerDisplayName") or row.get("OwnerUserId"),
                created_at=time_field(row.get("CreationDate"), path, "CreationDate", line=line),
                updated_at=time_field(row.get("LastActivityDate"), path, "LastActivityDate", line=line),
                views=int_field(row.get("ViewCount"), path, "ViewCount", line=line),
                score=int_field(row.get("Score"), path, "Score", line=line),
                reply_count=int_field(row.get("AnswerCount"), path, "AnswerCount", line=line, limit=INT32_MAX),
                accepted_reply_id=accepted,
                is_resolved=accepted is not None,
                closed_at=closed,
                state="closed" if closed else "open",
                raw=_without_body(row),
            )
        if ptype == "2":
            parent = _require(row, "ParentId", path, line)
            if kept is not None and parent not in kept:
                return None
            text, code = html_to_text(row.get("Body"))
            return Reply(
                source=self.source,
                reply_id=pid,
                thread_id=parent,
                kind="answer",
                author=row.get("OwnerDisplayName") or row.get("OwnerUserId"),
                created_at=time_field(row.get("CreationDate"), path, "CreationDate", line=line),
                body_text=text,
                body_html=row.get("Body"),
                code=code,
                score=int_field(row.get("Score"), path, "Score", line=line),
                raw=_without_body(row),
            )
        return None  # wiki excerpts, tag wikis, moderator nominations: not questions

    def _link(self, row: dict, line: int, kept: set[str] | None) -> Link | None:
        src = _require(row, "PostId", self.links, line)
        if kept is not None and src not in kept:
            return None
        ltype = row.get("LinkTypeId", "")
        return Link(
            source=self.source,
            from_id=src,
            to_id=_require(row, "RelatedPostId", self.links, line),
            link_type=LINK_TYPES.get(ltype, f"type{ltype}"),
            created_at=time_field(row.get("CreationDate"), self.links, "CreationDate", line=line),
        )

    def _comment(self, row: dict, line: int) -> Reply:
        return Reply(
            source=self.source,
            reply_id="c" + _require(row, "Id", self.comments, line),
            parent_id=_require(row, "PostId", self.comments, line),
            kind="comment",
            author=row.get("UserDisplayName") or row.get("UserId"),
            created_at=time_field(row.get("CreationDate"), self.comments, "CreationDate", line=line),
            body_text=repair(row.get("Text", "")),
            score=int_field(row.get("Score"), self.comments, "Score", line=line),
            raw=row,
        )


def iter_rows(path: Path, progress) -> Iterator[tuple[int, dict]]:
    """Yield (line, attributes) of each ``<row>``, clearing parsed elements as it goes.

    Dumps are streamed, so their total size is not capped; each attribute is (DEVQUARRY_MAX_FIELD_BYTES)."""
    check_file(path)
    cap = max_field_bytes()
    with open_binary(path, progress) as fh:
        parser = etree.iterparse(fh, events=("end",), tag="row", huge_tree=cap >= _LIBXML_MAX_TEXT, recover=False)
        try:
            for _, el in parser:
                row = dict(el.attrib)
                # One pass in C over the lengths; a field can only be too big when a quarter of the
                # cap is passed (UTF-8 takes at most 4 bytes a character).
                if row and max(map(len, row.values())) * 4 > cap:
                    for name, value in row.items():
                        if field_too_big(value, cap):
                            raise too_big(path, "field", cap, MAX_FIELD_ENV, line=el.sourceline, field=name)
                yield el.sourceline, row
                el.clear()
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
        except etree.XMLSyntaxError as exc:
            line = exc.lineno if exc.lineno else None
            msg = re.sub(r", line \d+, column (\d+)$", r" (column \1)", str(exc.msg or exc))
            raise InputError(path, f"malformed XML: {msg}", line=line) from None
        except (OSError, EOFError) as exc:
            raise InputError(path, f"cannot read ({exc})") from None


def _require(row: dict, name: str, path: Path, line: int) -> str:
    value = row.get(name)
    if value is None or value == "":
        raise InputError(path, "required attribute is missing", line=line, field=name)
    return value


def _sibling(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def _site_from_folder(folder: Path) -> str | None:
    name = folder.resolve().name.lower()
    return name if _HOST.match(name) else None


def _site_from_links(posts: Path, sample: int = 500) -> str | None:
    """Dumps do not name their site; posts link to their own site's questions more than to any other."""
    from collections import Counter

    hosts: Counter[str] = Counter()
    try:
        for n, (_, row) in enumerate(iter_rows(posts, lambda k: None)):
            if n >= sample:
                break
            hosts.update(h for h in _LINK_HOST.findall(row.get("Body") or "") if _HOST.match(h))
    except InputError:
        return None  # the real parse reports the problem with its line
    if not hosts:
        return None
    host, count = hosts.most_common(1)[0]
    return host if count >= 3 and count >= 0.3 * sum(hosts.values()) else None


def _without_body(row: dict) -> dict:
    # body_html holds the Body already; keeping it twice would double the store.
    raw = row.copy()  # the same keys in the same order, less Body: the same JSON as before
    raw.pop("Body", None)
    return raw
