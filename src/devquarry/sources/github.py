"""GitHub issues: JSON exports (a research crawl's ``{repository, issues}`` files or the
REST API's issue list) and headerless CSV exports (url, title, created_at, state, labels, body).

Resolved means closed as completed: ``state_reason`` 'completed' (or absent on a closed
issue, as in older API data and exports that do not keep it); 'not_planned' and
'duplicate' are closed but not resolved.
"""

from __future__ import annotations

import ast
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devquarry.errors import InputError
from devquarry.model import Record, Reply, Thread
from devquarry.sources.base import (
    Source,
    decode,
    float_field,
    int_field,
    list_field,
    load_json,
    read_bytes,
    text_field,
    time_field,
)
from devquarry.sources.limits import (
    INT32_MAX,
    MAX_FIELD_ENV,
    allow_csv_fields,
    check_value,
    field_too_big,
    max_field_bytes,
    too_big,
)
from devquarry.text import markdown_to_text, repair

_ISSUE_URL = re.compile(r"github\.com/([^/\s]+/[^/\s]+)/(?:issues|pull)/(\d+)")
TEXT_KEYS = {"title", "body", "author", "html_url", "url", "api_url"}
CSV_COLUMNS = ("url", "title", "created_at", "state", "labels", "body")
CSV_STATES = {
    "open issue": ("open", None),
    "closed issue": ("closed", "completed"),
    "closed as not planned issue": ("closed", "not_planned"),
    "closed as duplicate issue": ("closed", "duplicate"),
}


class GitHubSource(Source):
    kind = "github"

    def __init__(self, paths, *, repo: str | None = None, encoding: str = "utf-8", include_pulls: bool = False) -> None:
        super().__init__(paths)
        self.repo = repo
        self.encoding = encoding
        self.include_pulls = include_pulls
        # (source, comment id) -> (issue number, file): ids are unique in a repository, so one
        # seen under two issues is refused rather than silently moved (the store keys replies by id).
        self._comments: dict[tuple[str, str], tuple[str, Path]] = {}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "repo": self.repo, "encoding": self.encoding, "include_pulls": self.include_pulls}

    def records(self) -> Iterator[Record]:
        for path in self.paths:
            self.current = path
            name = path.name.lower()
            if name.endswith((".csv", ".csv.gz")):
                yield from self._csv(path)
            else:
                yield from self._json(path)

    def _json(self, path: Path) -> Iterator[Record]:
        data = load_json(path, self.progress, self.encoding)
        if isinstance(data, dict) and isinstance(data.get("issues"), list):
            repo, issues = self.repo or destring(data.get("repository")), data["issues"]
        elif isinstance(data, list):
            repo, issues = self.repo, data
        else:
            raise InputError(path, "expected a list of issues or an object with 'issues'", field="issues")
        for i, issue in enumerate(issues):
            if not isinstance(issue, dict):
                raise InputError(path, "expected an issue object", record=i)
            # Before destring: a huge "[...]" string must not reach literal_eval.
            check_value(issue, path, record=_record(i, issue))
            issue = {k: v if k in TEXT_KEYS else destring(v) for k, v in issue.items()}
            if "pull_request" in issue and issue["pull_request"] and not self.include_pulls:
                continue
            yield from self._issue(issue, path, i, repo)

    def _issue(self, issue: dict, path: Path, i: int, repo: str | None) -> Iterator[Record]:
        number = issue.get("issue_number", issue.get("number"))
        url = text_field(issue.get("html_url") or issue.get("url"), path, "html_url", record=i)
        m = _ISSUE_URL.search(url or "")
        repo = repo or issue.get("repository") or (m.group(1) if m else None)
        if number is None and m:
            number = m.group(2)
        if number is None:
            raise InputError(path, "issue has no number", record=i, field="number")
        if not repo:
            raise InputError(path, "cannot tell the repository; pass --repo", record=i, field="repository")
        number = str(int_field(number, path, "number", record=i))
        rec = f"{i} (issue {number})"
        check_value(issue, path, record=rec)

        def text(value, field):
            return text_field(value, path, field, record=rec)

        repo = text(repo, "repository")
        source = f"github:{repo}"
        state = (text(issue.get("state"), "state") or "").lower()
        reason = text(issue.get("state_reason"), "state_reason")
        body, code = markdown_to_text(text(issue.get("body"), "body"))
        user = issue.get("user")
        replies = []
        for j, c in enumerate(issue.get("comments") if isinstance(issue.get("comments"), list) else []):
            if not isinstance(c, dict):
                raise InputError(path, f"comment {j} is not an object", record=rec, field=f"comments.{j}")
            ctext, ccode = markdown_to_text(text(c.get("body"), f"comments.{j}.body"))
            cuser = c.get("user")
            login = cuser.get("login") if isinstance(cuser, dict) else None
            cid = text(c.get("id"), f"comments.{j}.id")
            if cid:
                self._claim(source, cid, number, path, rec, j)
            replies.append(
                Reply(
                    source=source,
                    reply_id=cid or f"{number}-{j + 1}",
                    thread_id=number,
                    author=text(c.get("author") or login, f"comments.{j}.author"),
                    created_at=time_field(c.get("created_at"), path, f"comments.{j}.created_at", record=rec),
                    body_text=ctext,
                    code=ccode,
                    raw=c,
                )
            )
        count = issue.get("comments_count")
        if count is None and isinstance(issue.get("comments"), int):
            count = issue["comments"]
        reactions = issue.get("reactions")
        score = reactions.get("total_count") if isinstance(reactions, dict) else None
        yield Thread(
            source=source,
            source_id=number,
            title=repair(text(issue.get("title"), "title") or ""),
            url=url if m else f"https://github.com/{repo}/issues/{number}",
            body_text=body,
            code=code,
            tags=_labels(issue.get("labels"), path, rec),
            author=text(issue.get("author") or (user.get("login") if isinstance(user, dict) else None), "author"),
            created_at=time_field(issue.get("created_at"), path, "created_at", record=rec),
            updated_at=time_field(issue.get("updated_at"), path, "updated_at", record=rec),
            score=float_field(score, path, "reactions.total_count", record=rec),
            reply_count=int_field(count, path, "comments_count", record=rec, limit=INT32_MAX),
            is_resolved=_resolved(state, reason),
            closed_at=time_field(issue.get("closed_at"), path, "closed_at", record=rec),
            state=f"{state}:{reason}" if reason and state == "closed" else state or None,
            raw={k: v for k, v in issue.items() if not (k == "comments" and isinstance(v, list))},
        )
        yield from replies

    def _claim(self, source: str, cid: str, number: str, path: Path, rec: str, j: int) -> None:
        seen = self._comments.setdefault((source, cid), (number, path))
        if seen[0] != number:
            where = "" if seen[1] == path else f" of {seen[1]}"
            raise InputError(
                path,
                f"comment {cid} is also under issue {seen[0]}{where}; a comment id belongs to one issue",
                record=rec,
                field=f"comments.{j}.id",
            )

    def _csv(self, path: Path) -> Iterator[Record]:
        text = decode(read_bytes(path, self.progress), path, self.encoding)
        allow_csv_fields()
        cap = max_field_bytes()
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                for k, cell in enumerate(row):
                    if field_too_big(cell, cap):
                        name = CSV_COLUMNS[k] if k < len(CSV_COLUMNS) else f"column {k + 1}"
                        raise too_big(path, "field", cap, MAX_FIELD_ENV, line=line, field=name)
                if len(row) < 4:
                    raise InputError(
                        path, f"expected 6 columns (url, title, created_at, state, labels, body), found {len(row)}", line=line
                    )
                url, title, created, state_text = row[:4]
                labels = row[4] if len(row) > 4 else ""
                body = row[5] if len(row) > 5 else ""
                m = _ISSUE_URL.search(url)
                if not m:
                    raise InputError(path, f"not a GitHub issue url: {url[:60]!r}", line=line, field="url")
                key = state_text.strip().lower()
                if key not in CSV_STATES:
                    raise InputError(path, f"unknown state {state_text!r}", line=line, field="state")
                state, reason = CSV_STATES[key]
                repo = self.repo or m.group(1)
                ptext, code = markdown_to_text(body)
                yield Thread(
                    source=f"github:{repo}",
                    source_id=m.group(2),
                    title=repair(title),
                    url=url,
                    body_text=ptext,
                    code=code,
                    tags=[]
                    if labels.strip().lower() in {"", "no label"}
                    else [t.strip() for t in labels.split(",") if t.strip()],
                    created_at=time_field(created, path, "created_at", line=line),
                    is_resolved=_resolved(state, reason),
                    state=f"{state}:{reason}" if reason else state,
                    raw={"url": url, "title": title, "created_at": created, "state": state_text, "labels": labels, "body": body},
                )
        except csv.Error as exc:
            raise InputError(path, f"malformed CSV: {exc}", line=reader.line_num) from None


def _record(i: int, issue: dict) -> str:
    number = issue.get("issue_number", issue.get("number"))
    return f"{i} (issue {number})" if isinstance(number, (int, str)) and len(str(number)) < 30 else str(i)


def _resolved(state: str, reason: str | None) -> bool:
    return state == "closed" and (reason in (None, "", "completed"))


def _labels(value, path: Path, rec: str) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        value = [value]
    out = []
    for item in list_field(value, path, "labels", record=rec):
        name = item.get("name") if isinstance(item, dict) else item
        if name:
            out.append(str(name))
    return out


def destring(value):
    """Undo exports that store every value as a string ("None", "['bug']", "8")."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in {"None", "null"}:
        return None
    if text in {"True", "False"}:
        return text == "True"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text[:1] in "[{" and text[-1:] in "]}":
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    return value
