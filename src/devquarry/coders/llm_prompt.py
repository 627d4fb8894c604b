"""The LLM coder's prompt and the reading of its answers: the codebook at the coded level as the
system message; the labelled threads most like the thread (TF-IDF cosine) as examples; the thread,
cut to the context; and an answer read as a JSON object and checked against the codebook."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from devquarry.ask.draft import count_tokens
from devquarry.codebooks import Code, Codebook
from devquarry.errors import InputError
from devquarry.text import thread_text

IRRELEVANT = "irrelevant"  # the model's explicit "none of these codes" (classify's word for it)
NONE_WORDS = {"none", "irrelevant", "null", "n/a"}
EXAMPLE_TOKENS = 300  # the most one labelled example may take of the prompt
TITLE_TOKENS = 120


class Invalid(ValueError):
    """An answer that is not a JSON object naming a code of the asked level."""


# ---------------------------------------------------------------------------------------- prompt


def allowed_codes(cb: Codebook, level: int | None) -> tuple[int, list[Code]]:
    """The codes an answer may name: those at ``level`` (None: the deepest), and codes above it
    that have no code under them (a leaf of a shallower branch)."""
    depth = max(c.level for c in cb.codes)
    level = depth if level is None else int(level)
    if not 0 <= level <= depth:
        raise InputError(None, f"{cb.id} has levels 0 to {depth}, not {level}", field="level")
    parents = {c.parent for c in cb.codes if c.parent}
    return level, [c for c in cb.codes if c.level == level or (c.level < level and c.id not in parents)]


def level_name(cb: Codebook, level: int) -> str:
    return cb.levels[level] if level < len(cb.levels) else f"level {level}"


def system_prompt(cb: Codebook, level: int, codes: list[Code]) -> str:
    what = level_name(cb, level)
    lines = [
        f'You are a careful qualitative coder. You code developers\' questions with the codebook "{cb.name}", '
        "following its definitions exactly. Read each code's definition and what does not belong to it.",
        "",
        f"Codes (answer one of these {what} ids):",
    ]
    parent = None
    for c in codes:
        if c.parent and c.parent != parent:  # the codes under one parent come as a group, headed by it once
            p = cb.code(c.parent)
            lines.append(
                f"{level_name(cb, p.level).capitalize()} {p.id} {p.name}" + (f": {p.description}" if p.description else "")
            )
        parent = c.parent
        lines.append(f"- {c.id}: {c.name}")
        if c.description:
            lines.append(f"  Definition: {c.description}")
        kids = [k.name for k in cb.codes if k.parent == c.id]
        if kids:
            lines.append(f"  Covers: {'; '.join(kids)}")
        if c.excludes:
            lines.append(f"  Does not belong: {c.excludes}")
        if c.keywords:
            lines.append(f"  Keywords: {', '.join(c.keywords)}")
        if c.examples:
            lines.append(f"  Examples: {'; '.join(c.examples)}")
    first = codes[0].id
    if cb.multi_label:
        shape = f'{{"code": "{first}", "secondary": []}}'
        rule = (
            '"code" is the one code that fits the question best; "secondary" lists any other codes of the list '
            "that clearly apply too (most questions have none)."
        )
    else:
        shape, rule = f'{{"code": "{first}"}}', '"code" is the one code that fits the question best.'
    lines += [
        "",
        f"Answer with a JSON object and nothing else, for example {shape}. {rule}",
        'If the question is about none of these codes\' subjects at all, answer {"code": "none"}.',
    ]
    return "\n".join(lines)


def cut(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` tokens by :func:`count_tokens`' estimate."""
    text = str(text or "").strip()
    if count_tokens(text) <= limit:
        return text
    words = text.split()[: max(1, int(limit / 1.35) - 2)]
    return " ".join(words)[: max(1, int(limit * 3.5) - 8)] + " ..."


def _block(title, body, limit: int) -> str:
    title = cut(title if isinstance(title, str) else "", min(TITLE_TOKENS, max(limit // 2, 1)))
    body = body if isinstance(body, str) else ""
    lines = [f"Title: {title}"]
    room = limit - count_tokens(title) - 4
    if body.strip() and room >= 8:
        lines.append(f"Body: {cut(body, room)}")
    return "\n".join(lines)


def _answer_json(code: str, secondary: list[str], multi: bool) -> str:
    shown = "none" if code == IRRELEVANT else code
    return json.dumps({"code": shown, "secondary": secondary} if multi else {"code": shown})


def user_prompt(thread: dict, shown: list[dict], budget: int, multi: bool) -> str:
    own = budget // 2 if shown else budget
    question = _block(thread.get("title"), thread.get("body_text"), own)
    parts = []
    if shown:
        per = min(EXAMPLE_TOKENS, max((budget - count_tokens(question)) // len(shown) - 12, 8))
        parts.append("Examples coded by hand (the labelled questions most similar to this one):")
        for n, ex in enumerate(shown, 1):
            secondary = [c for c in ex.get("secondary", []) if c != ex["primary"]] if multi else []
            parts.append(f"Example {n}\n{_block(ex.get('title'), ex.get('body_text'), per)}")
            parts.append(f"Answer: {_answer_json(ex['primary'], secondary, multi)}")
    parts.append(f"Question to code:\n{question}")
    parts.append("Answer with the JSON object only.")
    return "\n\n".join(parts)


def examples_frame(cb: Codebook, examples: pd.DataFrame | None, level: int, allowed: set[str]) -> pd.DataFrame:
    """Labelled threads whose primary code can be shown at ``level`` (a deeper code as its ancestor
    there; a code above it, such as a bare category where subcategories are asked, cannot), with
    their other codes at that level."""
    if examples is None or examples.empty:
        return pd.DataFrame(columns=["source", "source_id", "title", "body_text", "primary", "secondary"])
    missing = {"source", "source_id", "title", "primary"} - set(examples.columns)
    if missing:
        raise InputError(None, f"the labelled examples lack column(s) {', '.join(sorted(missing))}", field="examples")
    known = {c.id for c in cb.codes}

    def at_level(code):
        return cb.ancestor(code, level) if isinstance(code, str) and code in known else code

    ex = examples.assign(primary=[at_level(c) for c in examples.primary])
    ex = ex[ex.primary.isin(allowed | {IRRELEVANT})].drop_duplicates(["source", "source_id"]).reset_index(drop=True)
    if "body_text" not in ex:
        ex["body_text"] = None
    codes = ex["codes"] if "codes" in ex else pd.Series([[]] * len(ex))
    ex["secondary"] = [
        list(
            dict.fromkeys(
                at_level(c) for c in (cs if isinstance(cs, (list, tuple, np.ndarray)) else []) if at_level(c) in allowed
            )
        )
        for cs in codes
    ]
    return ex


def neighbours(threads: pd.DataFrame, examples: pd.DataFrame, k: int) -> list[list[int]]:
    """For each thread, the rows of ``examples`` most similar to it (TF-IDF cosine of title and
    body, ties by row order), never the thread itself."""
    if k <= 0 or examples.empty or threads.empty:
        return [[] for _ in range(len(threads))]
    from sklearn.feature_extraction.text import TfidfVectorizer

    def texts(df):
        body = df["body_text"] if "body_text" in df else [None] * len(df)
        return [thread_text(t if isinstance(t, str) else "", b if isinstance(b, str) else "") for t, b in zip(df.title, body)]

    try:
        # Fitted on the labelled threads alone: a thread's prompt (and its cached answer) must not
        # depend on which other threads are coded with it.
        vec = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(texts(examples))
    except ValueError:  # not one word to weigh (empty or stop-word-only texts): examples in their order
        vec = None
    if vec is None:
        ex_m, th_m = sp.csr_matrix((len(examples), 1)), sp.csr_matrix((len(threads), 1))
    else:
        ex_m, th_m = vec.transform(texts(examples)), vec.transform(texts(threads))
    ex_keys = list(zip(examples.source, examples.source_id))
    where = {key: i for i, key in enumerate(ex_keys)}
    out = []
    for start in range(0, len(threads), 1000):  # a block at a time: the similarity matrix stays small
        sims = (th_m[start : start + 1000] @ ex_m.T).toarray()
        for row, key in zip(sims, list(zip(threads.source, threads.source_id))[start : start + 1000]):
            if key in where:
                row[where[key]] = -np.inf
            order = np.argsort(-row, kind="stable")
            out.append([int(i) for i in order[: k + 1] if np.isfinite(row[i])][:k])
    return out


# ---------------------------------------------------------------------------------------- answers


def _objects(text: str):
    fenced = re.findall(r"```(?:json|JSON)?\s*(.*?)```", text, flags=re.S)
    for chunk in fenced + [text]:
        try:
            yield json.loads(chunk.strip())
        except ValueError:
            pass
        decoder = json.JSONDecoder()
        for m in re.finditer(r"\{", chunk):
            try:
                yield decoder.raw_decode(chunk, m.start())[0]
            except ValueError:
                continue


def parse_answer(text: str, cb: Codebook, codes: list[Code], what: str = "code") -> tuple[str, tuple[str, ...]]:
    """The primary code and the secondary codes of an answer; :class:`Invalid` with the reason
    when it holds no JSON object with a ``code`` of the allowed ones. Secondary codes that are not
    allowed are dropped (the primary decides the vote; an extra code is not worth a new call)."""
    obj = next((o for o in _objects(text or "") if isinstance(o, dict) and "code" in o), None)
    if obj is None:
        raise Invalid('no JSON object with a "code" was found')
    # An id as written, else in any case, else a code's name: a model may answer "Chat API" for "chat".
    by_id = {c.name.lower(): c.id for c in codes} | {c.id.lower(): c.id for c in codes} | {c.id: c.id for c in codes}

    def one(value) -> str:
        got = (by_id.get(value.strip()) or by_id.get(value.strip().lower())) if isinstance(value, str) else None
        if got:
            return got
        if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
            return IRRELEVANT
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f'"code" must be one code id, got {json.dumps(value)[:60]}')
        known = {c.id.lower() for c in cb.codes}
        if value.strip().lower() in known:
            raise Invalid(f'"{value.strip()[:40]}" is not a {what} code')
        raise Invalid(f'"{value.strip()[:40]}" is not a code of this codebook')

    primary = one(obj["code"])
    extra = obj.get("secondary") or []
    extra = [extra] if isinstance(extra, str) else extra if isinstance(extra, list) else []
    secondary = []
    for value in extra:
        try:
            code = one(value)
        except Invalid:
            continue
        if code not in (primary, IRRELEVANT) and code not in secondary:
            secondary.append(code)
    return primary, (() if primary == IRRELEVANT else tuple(secondary))


def correction(reason: str, codes: list[Code], multi: bool) -> str:
    shape = '{"code": "...", "secondary": []}' if multi else '{"code": "..."}'
    return (
        f"That answer is not valid: {reason}. Answer again with only a JSON object like {shape}, "
        f'whose code is one of: {", ".join(c.id for c in codes)} (or "none").'
    )
