"""The LLM coder: any OpenAI-compatible chat endpoint codes each thread from the codebook itself.

The prompt holds the codebook at the coded level (each code's id, name, definition, what does not
belong, keywords and examples), the k labelled threads most similar to the thread (TF-IDF cosine
over title and body) with their hand codes, and the thread, its body cut to fit the context. The
answer must be a JSON object (``{"code": "B.2", "secondary": ["C.1"]}``) naming codes of that level;
anything else is rejected and asked again once with a short correction, then that sample counts
as unclassified. Several samples vote: the primary code is the most voted, its score the share
of samples that chose it; a multi-label codebook also keeps the codes a majority of samples named.

Every answer is kept in the store's ``llm_answer`` table under (model, a hash of the exact
request, sample), written as it arrives, so that a re-run, or a run resumed after a failure,
pays only for what it has not yet asked. The key goes in the Authorization header and nowhere
else: an answer that echoes it is redacted before it is kept or sent back in a correction.
The prompt and the reading of answers are in :mod:`devquarry.coders.llm_prompt`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pandas as pd

from devquarry.ask.draft import chat, count_tokens
from devquarry.codebooks import Code, Codebook
from devquarry.coders.llm_prompt import (
    IRRELEVANT,
    Invalid,
    allowed_codes,
    correction,
    cut,
    examples_frame,
    level_name,
    neighbours,
    parse_answer,
    system_prompt,
    user_prompt,
)
from devquarry.errors import InputError

__all__ = [
    "IRRELEVANT",
    "UNCLASSIFIED",
    "Invalid",
    "LLMSettings",
    "allowed_codes",
    "estimate",
    "llm_code",
    "parse_answer",
    "vote",
]

UNCLASSIFIED = "unclassified"
MARGIN = 60  # the prompt's framing
ENV = {"base_url": "DEVQUARRY_OPENAI_BASE_URL", "model": "DEVQUARRY_CHAT_MODEL", "key": "DEVQUARRY_OPENAI_API_KEY"}


@dataclass
class LLMSettings:
    base_url: str | None = None
    model: str | None = None
    key: str | None = field(default=None, repr=False)  # never shown: only ever sent in the Authorization header
    samples: int = 3
    examples: int = 5
    temperature: float = 0.7  # used when samples > 1: identical samples at 0 would be no vote at all
    answer_tokens: int = 200
    context_tokens: int = 8192
    timeout: float | None = None
    workers: int = 1  # threads coded at once (parallel calls); results do not depend on it

    @classmethod
    def from_env(cls, **overrides) -> LLMSettings:
        """Settings with endpoint, model and key from the environment (the same as ``ask --draft``)
        where not given; :class:`InputError` naming the variable that is missing."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for name, var in ENV.items():
            if name not in given and os.environ.get(var):
                given[name] = os.environ[var]
        settings = cls(**given)
        for name in ("base_url", "model"):
            if not getattr(settings, name):
                raise InputError(None, f"--method llm needs {ENV[name]} (an OpenAI-compatible chat endpoint)", field=ENV[name])
        return settings._checked()

    @property
    def sample_temperature(self) -> float:
        return float(self.temperature) if self.samples > 1 else 0.0

    def _checked(self) -> LLMSettings:
        for name, low in (("samples", 1), ("examples", 0), ("answer_tokens", 1), ("context_tokens", 256), ("workers", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(None, f"must be a whole number of at least {low}, got {value!r}", field=name.replace("_", "-"))
        if not 0 <= float(self.temperature) <= 2:
            raise InputError(None, f"must be from 0 to 2, got {self.temperature!r}", field="temperature")
        if self.timeout is not None and not float(self.timeout) > 0:
            raise InputError(None, f"must be a number of seconds above 0, got {self.timeout!r}", field="timeout")
        if self.base_url and not re.match(r"https?://", self.base_url):
            raise InputError(None, "must start with http:// or https://", field=ENV["base_url"])
        return self


@dataclass
class _Plan:
    level: int
    codes: list[Code]
    system: str
    messages: list[list[dict]]


def _plan(cb: Codebook, threads: pd.DataFrame, examples: pd.DataFrame | None, settings: LLMSettings, level) -> _Plan:
    missing = {"source", "source_id", "title"} - set(threads.columns)
    if missing:
        raise InputError(None, f"the threads to code lack column(s) {', '.join(sorted(missing))}", field="threads")
    level, codes = allowed_codes(cb, level)
    system = system_prompt(cb, level, codes)
    # Room for the answer, and for a correction turn: the rejected answer (at most answer_tokens),
    # the correction message, and the new answer.
    reserve = 2 * settings.answer_tokens + count_tokens(correction("x" * 100, codes, cb.multi_label))
    budget = settings.context_tokens - reserve - count_tokens(system) - MARGIN
    if budget < 64:
        raise InputError(
            None,
            f"a context of {settings.context_tokens} tokens leaves no room for the thread after the codebook "
            f"({count_tokens(system)} tokens) and room for two answers of {settings.answer_tokens}",
            field="context-tokens",
        )
    ex = examples_frame(cb, examples, level, {c.id for c in codes})
    near = neighbours(threads, ex, settings.examples)
    rows, ex_rows = threads.to_dict("records"), ex.to_dict("records")
    messages = [
        [
            {"role": "system", "content": system},
            {"role": "user", "content": user_prompt(row, [ex_rows[i] for i in idx], budget, cb.multi_label)},
        ]
        for row, idx in zip(rows, near)
    ]
    return _Plan(level, codes, system, messages)


def vote(answers: list[tuple[str, tuple[str, ...]] | None], samples: int, multi: bool, order: dict[str, int]) -> list[tuple]:
    """(code, score, rank) rows of one thread from its samples' answers (None: invalid)."""
    valid = [(s, a) for s, a in enumerate(answers) if a is not None]
    if not valid:
        return [(UNCLASSIFIED, math.nan, 0)]
    counts = Counter(a[0] for _, a in valid)
    first = {}
    for s, a in valid:
        first.setdefault(a[0], s)
    # Ties: a code before "none of them", then the code an earlier sample gave.
    winner = min(counts, key=lambda c: (-counts[c], c == IRRELEVANT, first[c]))
    rows = [(winner, counts[winner] / samples, 0)]
    if multi and winner != IRRELEVANT:
        # A sample supports a code it named at all, as its primary or as a secondary one.
        support = Counter(c for _, a in valid for c in {a[0], *a[1]} if c not in (winner, IRRELEVANT))
        kept = sorted((c for c, n in support.items() if n > samples / 2), key=lambda c: (-support[c], order.get(c, 1 << 30)))
        rows += [(c, support[c] / samples, r) for r, c in enumerate(kept, 1)]
    return rows


# ---------------------------------------------------------------------------------------- cache


def request_hash(messages: list[dict], temperature: float, max_tokens: int) -> str:
    raw = json.dumps({"messages": messages, "temperature": temperature, "max_tokens": max_tokens}, sort_keys=True)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _cache(store, model: str | None) -> dict[tuple[str, int], str]:
    if store is None or not model:
        return {}
    rows = store.con.execute("SELECT prompt_hash, sample, answer FROM llm_answer WHERE model = ?", [model]).fetchall()
    return {(h, int(s)): a for h, s, a in rows}


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, "[redacted]") if key and len(key) >= 4 else text


# ---------------------------------------------------------------------------------------- public


def ask_endpoint(settings: LLMSettings, messages: list[dict], policy, client) -> str:
    """One answer from the settings' endpoint (here, or on an engine's worker)."""
    return chat(
        messages,
        base_url=settings.base_url,
        model=settings.model,
        key=settings.key,
        max_tokens=settings.answer_tokens,
        timeout=settings.timeout,
        policy=policy,
        temperature=settings.sample_temperature,
        client=client,
    )


def _resolved(settings: LLMSettings) -> LLMSettings:
    return LLMSettings.from_env(**dataclasses.asdict(settings))


def estimate(
    codebook: Codebook,
    threads: pd.DataFrame,
    examples: pd.DataFrame | None,
    settings: LLMSettings,
    *,
    level: int | None = None,
    store=None,
) -> dict:
    """What coding ``threads`` would cost, before any call: the calls to make (answers already in
    ``store`` left out), their estimated prompt tokens and the most answer tokens they may take.
    A rejected answer's one retry is extra and not counted here."""
    settings._checked()
    plan = _plan(codebook, threads, examples, settings, level)
    model = settings.model or os.environ.get(ENV["model"])
    cache, t = _cache(store, model), settings.sample_temperature
    calls = cached = prompt = 0
    for messages in plan.messages:
        h = request_hash(messages, t, settings.answer_tokens)
        tokens = sum(count_tokens(m["content"]) for m in messages)
        for s in range(settings.samples):
            if (h, s) in cache:
                cached += 1
            else:
                calls += 1
                prompt += tokens
    return {
        "threads": len(threads),
        "calls": calls,
        "cached": cached,
        "prompt_tokens": prompt,
        "answer_tokens": calls * settings.answer_tokens,
    }


def llm_code(
    store,
    codebook: Codebook,
    threads: pd.DataFrame,
    examples: pd.DataFrame | None,
    settings: LLMSettings,
    *,
    level: int | None = None,
    max_threads: int | None = None,
    progress=None,
    policy=None,
    engine=None,
) -> pd.DataFrame:
    """Code ``threads`` (at most ``max_threads`` of them, in the order given) with the chat model:
    one row per (thread, code) with its score (share of the samples' votes) and rank (0: the primary
    code). ``attrs`` count the calls made, the answers taken from the store, the answers rejected,
    the threads left unclassified and skipped, and the prompt tokens sent (estimated). ``engine``
    (``devquarry.engine``; default local): whose workers make the calls (``coders.llm_engine``)."""
    from devquarry.engine import get_engine, is_local

    settings = _resolved(settings)
    if max_threads is not None and (not isinstance(max_threads, int) or max_threads < 0):
        raise InputError(None, f"must be a whole number of at least 0, got {max_threads!r}", field="max-threads")
    todo = threads if max_threads is None else threads.head(max_threads)
    todo = todo.reset_index(drop=True)
    plan = _plan(codebook, todo, examples, settings, level)
    rows = list(zip(todo.itertuples(index=False), plan.messages))
    out: list[tuple] = []
    with httpx.Client() as client:  # one connection pool for the run: no TLS setup per call
        run = _Run(store, codebook, plan, settings, policy, client)
        if not is_local(engine):
            from devquarry.coders.llm_engine import code_on_engine

            out = code_on_engine(run, rows, get_engine(engine), progress)
        elif settings.workers == 1:
            for i, (row, messages) in enumerate(rows):
                out += run.code(row, messages)
                if progress is not None:
                    progress(i + 1, len(rows))
        else:
            pool = ThreadPoolExecutor(settings.workers)
            try:
                futures = [pool.submit(run.code, row, messages) for row, messages in rows]
                for i, future in enumerate(futures):  # in the order given, whatever order they finish in
                    out += future.result()
                    if progress is not None:
                        progress(i + 1, len(rows))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # a failure stops the rest; answers in flight are kept
    frame = pd.DataFrame(out, columns=["source", "source_id", "code", "score", "rank"])
    frame.attrs.update(run.n, skipped=len(threads) - len(todo), model=settings.model, level=plan.level)
    return frame


class _Run:
    """One coding run's calls: the cache, the counts and the store, shared by its workers."""

    def __init__(self, store, codebook: Codebook, plan: _Plan, settings: LLMSettings, policy, client) -> None:
        self.store, self.codebook, self.plan, self.settings, self.policy, self.client = (
            store,
            codebook,
            plan,
            settings,
            policy,
            client,
        )
        self.cache, self.t = _cache(store, settings.model), settings.sample_temperature
        self.order = {c.id: i for i, c in enumerate(codebook.codes)}
        self.n = {"calls": 0, "cached": 0, "rejected": 0, "unclassified": 0, "prompt_tokens": 0}
        self.lock = threading.Lock()  # one DuckDB connection and one cache for every worker

    unclassified = UNCLASSIFIED

    def hash(self, messages: list[dict]) -> str:
        return request_hash(messages, self.t, self.settings.answer_tokens)

    def vote(self, answers: list) -> list[tuple]:
        return vote(answers, self.settings.samples, self.codebook.multi_label, self.order)

    def failed(self, message: str) -> InputError:
        """The error for a call that failed: the key redacted, and what was kept said."""
        kept = f"; the {self.n['calls']} answers received so far are kept in the store and a re-run asks only for the rest"
        return InputError(None, _redact(message, self.settings.key) + (kept if self.store is not None else ""))

    def keep(self, received: list[tuple[str, int, str, list[dict]]]) -> None:
        """Count, cache and store answers (request hash, sample, text, messages) in one transaction:
        a killed run keeps what it paid for."""
        if not received:
            return
        key, now = self.settings.key, datetime.now(UTC)
        rows = [(h, sample, _redact(text, key), messages) for h, sample, text, messages in received]
        with self.lock:
            for h, sample, text, messages in rows:
                self.n["calls"] += 1
                self.n["prompt_tokens"] += sum(count_tokens(m["content"]) for m in messages)
                self.cache[(h, sample)] = text
            if self.store is not None:
                with self.store.transaction() as con:
                    con.executemany(
                        "INSERT OR REPLACE INTO llm_answer VALUES (?, ?, ?, ?, ?)",
                        [[self.settings.model, h, sample, text, now] for h, sample, text, _ in rows],
                    )

    def ask(self, messages: list[dict], sample: int) -> str:
        s = self.settings
        h = self.hash(messages)
        with self.lock:
            if (h, sample) in self.cache:
                self.n["cached"] += 1
                return self.cache[(h, sample)]
        try:
            text = ask_endpoint(s, messages, self.policy, self.client)
        except InputError as exc:
            raise self.failed(exc.message) from None
        self.keep([(h, sample, text, messages)])
        return self.cache[(h, sample)]

    def code(self, row, messages: list[dict]) -> list[tuple]:
        """One thread's rows: each sample asked (and corrected once when invalid), then the vote."""
        cb, plan, multi = self.codebook, self.plan, self.codebook.multi_label
        what = level_name(cb, plan.level)
        answers, rejected = [], 0
        for sample in range(self.settings.samples):
            text = self.ask(messages, sample)
            try:
                answers.append(parse_answer(text, cb, plan.codes, what))
                continue
            except Invalid as bad:
                rejected += 1
                retry = messages + [
                    {"role": "assistant", "content": cut(text, self.settings.answer_tokens)},
                    {"role": "user", "content": correction(str(bad), plan.codes, multi)},
                ]
            try:
                answers.append(parse_answer(self.ask(retry, sample), cb, plan.codes, what))
            except Invalid:
                rejected += 1
                answers.append(None)
        rows = self.vote(answers)
        with self.lock:
            self.n["rejected"] += rejected
            self.n["unclassified"] += rows[0][0] == UNCLASSIFIED
        return [(row.source, row.source_id, code, score, rank) for code, score, rank in rows]
