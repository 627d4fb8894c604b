"""Synthetic corpora of any size made of real posts, for bench/scale.py.

Questions come from the bundled Stack Overflow questions on the OpenAI API (4,081, with the study's
hand labels) and the GitHub issues of 15 LLM application repositories (5,012); answers from those
issues' comments, the OpenAI forum's replies and the cstheory dump's answers. The corpus is written
as a Stack Exchange dump (``Posts.xml``), the format a user meets at this size.

Thread ``i`` re-uses question ``i mod P`` of the pool. The first copy of each question is verbatim;
later copies are perturbed, each by its own seeded generator: about 5% of the body's words dropped,
two neighbouring words swapped, and one title word dropped (titles of five words or more), so that
no two copies are the same document for the index or the coder. Creation times grow with the id
(as on Stack Overflow) over 2021-01 .. 2026-06; answer counts, acceptance, views and scores are
drawn from fixed distributions close to the Stack Overflow sample's (about 30% accepted).
The labels sheet names the first copies of the labelled Stack Overflow questions only: the hand
labels stay the study's 4,081 whatever the size.
"""

from __future__ import annotations

import gzip
import html
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEVQUARRY_SHARED_DATA", ROOT.parent / "shared" / "data"))
SO = ROOT / "src" / "devquarry" / "data" / "stackoverflow-openai-api" / "questions.csv.gz"
START = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_S = (datetime(2026, 6, 30, tzinfo=UTC) - START).total_seconds()
ANSWER_ID_BASE = 500_000_000
SEED = 17


def _paragraphs(text: str) -> str:
    parts = [p.strip() for p in str(text or "").split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p)}</p>" for p in parts) or "<p></p>"


def pools() -> tuple[pd.DataFrame, list[str]]:
    """The questions (title, body, label or None) and the reply texts."""
    so = pd.read_csv(SO, dtype=str, keep_default_na=False)
    questions = [pd.DataFrame({"title": so.title, "body": so.body, "label": so["type"], "tags": so.tags})]
    replies: list[str] = []
    for f in sorted((SHARED / "github-issues-llm-apps").glob("*.json.gz")):
        issues = json.load(gzip.open(f))["issues"]
        rows = [(str(i.get("title") or ""), str(i.get("body") or "")) for i in issues if str(i.get("title") or "").strip()]
        questions.append(pd.DataFrame(rows, columns=["title", "body"]).assign(label=None, tags="github"))
        for i in issues:
            for c in i.get("comments") or []:
                if isinstance(c, dict) and str(c.get("body") or "").strip():
                    replies.append(str(c["body"]))
    topics = json.load(open(SHARED / "discourse-openai-forum" / "topics_with_posts.json"))
    for t in topics if isinstance(topics, list) else topics.get("topics", []):
        for p in (t.get("post_comments") or [])[1:]:
            replies.append(html.unescape(str(p.get("cooked") or "")))
    return pd.concat(questions, ignore_index=True), replies


def _perturb(words: list[str], rng: np.random.Generator) -> list[str]:
    if len(words) > 20:
        keep = rng.random(len(words)) > 0.05
        words = [w for w, k in zip(words, keep) if k]
    if len(words) > 2:
        j = int(rng.integers(0, len(words) - 1))
        words[j], words[j + 1] = words[j + 1], words[j]
    return words


def _thread(i: int, scale: int, q: pd.Series, copy: int, replies: list[str]) -> Iterator[bytes]:
    rng = np.random.default_rng((SEED, i))
    title, body = str(q.title), str(q.body)
    if copy:
        t = title.split()
        if len(t) >= 5:
            del t[int(rng.integers(0, len(t)))]
        title = " ".join(t)
        body = "\n\n".join(" ".join(_perturb(p.split(), rng)) for p in body.split("\n\n"))
    created = START + timedelta(seconds=SPAN_S * i / max(scale, 1))
    answers = int(rng.choice([0, 1, 2, 3, 4], p=[0.27, 0.42, 0.18, 0.08, 0.05]))
    accepted = answers > 0 and rng.random() < 0.42
    aid0 = ANSWER_ID_BASE + 5 * i
    qid = i + 1
    tags = "".join(f"<{t.strip()}>" for t in str(q.tags or "openai-api").split(",") if t.strip())
    attrs = {
        "Id": qid,
        "PostTypeId": 1,
        "CreationDate": created.strftime("%Y-%m-%dT%H:%M:%S.000"),
        "Score": int(rng.integers(-2, 12)),
        "ViewCount": int(rng.lognormal(5.5, 1.3)),
        "Title": title,
        "Body": _paragraphs(body),
        "Tags": tags,
        "AnswerCount": answers,
        "LastActivityDate": (created + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000"),
    }
    if accepted:
        attrs["AcceptedAnswerId"] = aid0
    yield _row(attrs)
    for a in range(answers):
        text = replies[int(rng.integers(0, len(replies)))]
        yield _row(
            {
                "Id": aid0 + a,
                "PostTypeId": 2,
                "ParentId": qid,
                "CreationDate": (created + timedelta(hours=2 + 30 * a)).strftime("%Y-%m-%dT%H:%M:%S.000"),
                "Score": int(rng.integers(0, 8)),
                "Body": _paragraphs(text),
            }
        )


# Characters XML 1.0 forbids (the real posts hold a few control characters); a dump never has them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


CORPUS_VERSION = 1  # raise when the corpus a size makes changes: built ones are then rebuilt


def _row(attrs: dict) -> bytes:
    cells = " ".join(f'{k}="{html.escape(_NOT_XML.sub("", str(v)), quote=True)}"' for k, v in attrs.items())
    return f"  <row {cells} />\n".encode()


def build(folder: Path, n: int, first: int = 0, scale: int | None = None, labels: bool = True) -> dict:
    """Write ``folder/Posts.xml`` with threads ``first .. first + n - 1`` (and ``labels.csv``); ``scale``:
    the size of the corpus whose times span 2021-01 .. 2026-06 (later threads come after it)."""
    stamp = folder / "corpus.json"
    asked = {"threads": n, "first": first, "scale": scale, "labels": labels, "version": CORPUS_VERSION}
    if stamp.exists() and json.loads(stamp.read_text()).get("asked") == asked:  # built before: a 1M corpus takes minutes
        return json.loads(stamp.read_text())["info"]
    stamp.unlink(missing_ok=True)
    questions, replies = pools()
    folder.mkdir(parents=True, exist_ok=True)
    p = len(questions)
    with open(folder / "Posts.xml", "wb") as out:
        out.write(b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for i in range(first, first + n):
            for row in _thread(i, scale or first + n, questions.iloc[i % p], i // p, replies):
                out.write(row)
        out.write(b"</posts>\n")
    info = {
        "threads": n,
        "first": first,
        "pool_questions": p,
        "pool_replies": len(replies),
        "bytes": (folder / "Posts.xml").stat().st_size,
    }
    if labels:
        idx = [i for i in range(first, min(first + n, p)) if questions.label.iloc[i] not in (None, "")]
        pd.DataFrame(
            {"source": "stackoverflow", "source_id": [str(i + 1) for i in idx], "label_study": questions.label.iloc[idx].tolist()}
        ).to_csv(folder / "labels.csv", index=False)
        info["labels"] = len(idx)
    stamp.write_text(json.dumps({"asked": asked, "info": info}))
    return info
