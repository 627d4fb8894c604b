"""The LLM coder's calls on an engine's workers (``classify --method llm --engine ray``).

The caller builds the prompts, reads the cache, parses and votes, exactly as the local loop does;
the workers only ask the endpoint. It goes in two rounds: every sample of every thread, then the
one correction of each invalid answer. A prompt's samples are asked by one worker, in order. The
answers of each chunk of prompts are kept in the store in one transaction before the next chunk
is sent: a run killed or failed keeps whole chunks, and a re-run asks only for the rest. The codes,
scores and counts are those of the local loop (``tests/test_engine.py``).

The workers are sent the settings with the key: they call the endpoint the user named and no other.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pandas as pd

from devquarry.coders.llm_prompt import Invalid, correction, cut, level_name, parse_answer
from devquarry.errors import InputError

CHUNK_PROMPTS = 256  # prompts per map; their answers are committed together
BATCH_PROMPTS = 4  # prompts per worker batch: small, as each call takes seconds
SKIPPED = "skipped after an earlier failure"


class Chat:
    """On a worker: one HTTP client, then batches of prompts, each asked for its samples in order.
    After a failure the rest of the batch is not asked."""

    def __init__(self, settings, policy) -> None:
        self.settings, self.policy, self.client = settings, policy, None

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import httpx

        from devquarry.coders.llm import ask_endpoint

        s = self.settings
        if self.client is None:
            self.client = httpx.Client()
        answers, errors, failed = [], [], False
        for messages, samples in zip(batch.messages, batch.samples):
            got, error = [], SKIPPED if failed else ""
            for _ in [] if failed else json.loads(samples):
                try:
                    got.append(ask_endpoint(s, json.loads(messages), self.policy, self.client))
                except InputError as exc:
                    error, failed = exc.message, True
                    break
            answers.append(json.dumps(got))
            errors.append(error)
        return pd.DataFrame({"answers": answers, "error": errors})


def code_on_engine(run, rows: list, engine, progress: Callable | None = None) -> list[tuple]:
    """The rows ``run.code`` gives for each (thread, messages) of ``rows``, the calls made by ``engine``."""
    cb, plan, s = run.codebook, run.plan, run.settings
    what = level_name(cb, plan.level)
    samples = range(s.samples)
    first = [(i, sample, messages) for i, (_, messages) in enumerate(rows) for sample in samples]
    texts = _ask(run, [(m, sample) for _, sample, m in first], engine, progress, len(rows))
    parsed: dict[tuple[int, int], tuple | None] = {}
    rejected: Counter[int] = Counter()
    retries = []
    for (i, sample, messages), text in zip(first, texts):
        try:
            parsed[i, sample] = parse_answer(text, cb, plan.codes, what)
        except Invalid as bad:
            rejected[i] += 1
            retries.append(
                (
                    i,
                    sample,
                    messages
                    + [
                        {"role": "assistant", "content": cut(text, s.answer_tokens)},
                        {"role": "user", "content": correction(str(bad), plan.codes, cb.multi_label)},
                    ],
                )
            )
    for (i, sample, _), text in zip(retries, _ask(run, [(m, sample) for _, sample, m in retries], engine)):
        try:
            parsed[i, sample] = parse_answer(text, cb, plan.codes, what)
        except Invalid:
            rejected[i] += 1
            parsed[i, sample] = None
    out = []
    for i, (row, _) in enumerate(rows):
        voted = run.vote([parsed[i, sample] for sample in samples])
        run.n["rejected"] += rejected[i]
        run.n["unclassified"] += voted[0][0] == run.unclassified
        out += [(row.source, row.source_id, code, score, rank) for code, score, rank in voted]
    if progress is not None and rows:
        progress(len(rows), len(rows))
    return out


def _ask(run, wanted: list[tuple[list[dict], int]], engine, progress=None, threads: int = 0) -> list[str]:
    """The answer to each (messages, sample): from the cache, else asked through ``engine``, kept in
    the store chunk by chunk. A request met twice is asked once (the local loop finds the second in
    the cache it has just filled, and counts it so)."""
    keys = [(run.hash(messages), sample) for messages, sample in wanted]
    todo: dict[str, tuple[list[dict], list[int]]] = {}
    asked = set()
    for key, (messages, sample) in zip(keys, wanted):
        if key in run.cache or key in asked:
            run.n["cached"] += 1
            continue
        asked.add(key)
        todo.setdefault(key[0], (messages, []))[1].append(sample)
    prompts = list(todo.items())
    for start in range(0, len(prompts), CHUNK_PROMPTS):
        chunk = prompts[start : start + CHUNK_PROMPTS]
        frame = pd.DataFrame(
            {"messages": [json.dumps(m) for _, (m, _) in chunk], "samples": [json.dumps(ss) for _, (_, ss) in chunk]}
        )
        out = engine.map_batches(frame, Chat, args=(run.settings, run.policy), batch_rows=BATCH_PROMPTS)
        received = [
            (h, sample, text, messages)
            for (h, (messages, ss)), answers in zip(chunk, out.answers)
            for sample, text in zip(ss, json.loads(answers))
        ]
        run.keep(received)
        failure = next((e for e in out.error if e and e != SKIPPED), None)
        if failure is not None:
            raise run.failed(failure)
        if progress is not None and threads:
            progress(min(threads, (start + len(chunk)) * threads // max(1, len(prompts))), threads)
    return [run.cache[key] for key in keys]
