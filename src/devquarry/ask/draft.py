"""A draft answer from any OpenAI-compatible chat endpoint, built only from the retrieved threads
and citing them as [1], [2], ...; it abstains (no call at all) when retrieval is not confident.

Endpoint, model and key come from the environment (``DEVQUARRY_OPENAI_BASE_URL``,
``DEVQUARRY_CHAT_MODEL``, ``DEVQUARRY_OPENAI_API_KEY``); the key goes in the Authorization header
only and is never logged or stored. Tokens are counted with a conservative estimate (the larger of
1.35 per word and one per 3.5 characters: English BPE tokenizers give fewer) so that the prompt
and the answer fit the model's context window; each thread's excerpt is shortened until they do.
Retries follow the shared :data:`devquarry.http_policy.API` policy (or the one given).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from dataclasses import dataclass, field

import httpx
import pandas as pd

from devquarry.errors import InputError
from devquarry.http_policy import ACCEPT_ENCODING, API, GiveUp, RetryPolicy, TooLarge, TooSlow, read_capped, redact

ABSTAIN = (
    "Not enough confidence to draft an answer: no resolved thread is close enough to this question. "
    "The closest threads are listed above; consider asking on the forum."
)
SYSTEM = (
    "You answer developers' questions about building on large language models. Use ONLY the numbered threads "
    "given. Cite every claim with the thread's number in square brackets, like [1] or [2][3]. If the threads do "
    "not answer the question, say so in one sentence. Be brief and concrete."
)


def count_tokens(text: str) -> int:
    return max(math.ceil(len(text.split()) * 1.35), math.ceil(len(text) / 3.5))


@dataclass
class Draft:
    text: str
    citations: list[int] = field(default_factory=list)
    abstained: bool = False
    prompt_tokens: int = 0
    model: str | None = None


def _thread_block(n: int, hit: dict, question_text: str, limit: int) -> str:
    parts = [f"[{n}] {hit.get('title') or ''}", f"URL: {hit.get('url') or ''}"]
    if question_text:
        parts.append(f"Question: {question_text}")
    if isinstance(hit.get("answer"), str) and hit["answer"]:
        parts.append(f"Accepted answer: {hit['answer']}")
    block = "\n".join(parts)
    words = block.split()
    while count_tokens(block) > limit and len(words) > 20:
        words = words[: int(len(words) * 0.8)]
        block = " ".join(words) + " ..."
    return block


def build_messages(
    question: str, hits: pd.DataFrame, bodies: dict[str, str], context_tokens: int, answer_tokens: int
) -> tuple[list[dict], int]:
    budget = context_tokens - answer_tokens - count_tokens(SYSTEM) - count_tokens(question) - 50
    if budget < 100:
        raise InputError(None, f"a context of {context_tokens} tokens leaves no room for the threads", field="context-tokens")
    per = budget // max(len(hits), 1)
    blocks = [
        _thread_block(i, h, bodies.get(f"{h['source']}|{h['source_id']}", ""), per)
        for i, h in enumerate(hits.to_dict("records"), 1)
    ]
    user = "Threads:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}\nAnswer with citations:"
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    return messages, count_tokens(SYSTEM) + count_tokens(user)


def chat(
    messages: list[dict],
    *,
    base_url: str,
    model: str,
    key: str | None,
    max_tokens: int,
    timeout: float | None = None,
    policy: RetryPolicy | None = None,
    temperature: float = 0,
    client: httpx.Client | None = None,
) -> str:
    """The answer's text. ``client``: an open :class:`httpx.Client` to reuse (a caller making many
    calls keeps its connection and TLS setup); by default each call opens its own."""
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers["Accept-Encoding"] = ACCEPT_ENCODING
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    policy = dataclasses.replace(policy or API, **({"timeout": timeout} if timeout is not None else {}))
    limit = answer_bytes(max_tokens)
    last = ""
    tries = policy.attempts()
    for attempt in tries:
        try:
            # Streamed and read against a cap and the attempt's deadline: a trickle or an endless answer stops.
            deadline = time.monotonic() + tries.timeout()
            opener = client.stream if client is not None else httpx.stream
            with opener("POST", url, json=body, headers=headers, timeout=tries.timeout()) as resp:
                raw = read_capped(resp, limit, deadline)
        except (httpx.TimeoutException, httpx.TransportError, TooSlow) as exc:
            last = "no full answer in time" if isinstance(exc, TooSlow) else exc.__class__.__name__
            _pause(tries, attempt, url)
            continue
        except TooLarge:
            raise InputError(
                None, f"the chat endpoint {url} answered more than {limit} bytes, too much for --answer-tokens {max_tokens}"
            ) from None
        except ValueError as exc:
            raise InputError(None, f"the chat endpoint {url}: {exc}") from None
        if policy.retryable(resp.status_code):
            last = f"HTTP {resp.status_code}"
            _pause(tries, attempt, url, resp.headers.get("retry-after"))
            continue
        text = raw.decode(resp.encoding or "utf-8", errors="replace")
        if resp.status_code >= 400:
            shown = redact(text, [key])
            raise InputError(None, f"the chat endpoint {url} answered HTTP {resp.status_code}: {shown}")
        try:
            content = json.loads(text)["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise InputError(None, f"the chat endpoint {url} answered without choices[0].message.content") from None
        if not isinstance(content, str):
            raise InputError(None, f"the chat endpoint {url} answered a message content that is not text")
        return content
    raise InputError(None, f"the chat endpoint {url} failed after {policy.retries + 1} attempts ({last})")


def answer_bytes(max_tokens: int) -> int:
    """The most bytes read of an answer of ``max_tokens``: a token is a few characters, each at most
    six bytes as JSON escapes, plus the envelope; a server sending more is not obeying max_tokens."""
    return 65_536 + 32 * max(max_tokens, 1)


def _pause(tries, attempt: int, url: str, retry_after: str | None = None) -> None:
    try:
        tries.pause(attempt, retry_after)
    except GiveUp as exc:
        raise InputError(None, f"the chat endpoint {url}: {exc}") from None


def draft(
    question: str,
    hits: pd.DataFrame,
    bodies: dict[str, str] | None = None,
    *,
    confident: bool = True,
    base_url: str | None = None,
    model: str | None = None,
    key: str | None = None,
    context_tokens: int = 8192,
    answer_tokens: int = 512,
    timeout: float | None = None,
    policy: RetryPolicy | None = None,
) -> Draft:
    """Draft an answer from ``hits`` (the rows ``ask`` returns) alone; abstain when not ``confident``."""
    if not confident or hits.empty:
        return Draft(ABSTAIN, abstained=True)
    base_url = base_url or os.environ.get("DEVQUARRY_OPENAI_BASE_URL")
    model = model or os.environ.get("DEVQUARRY_CHAT_MODEL")
    key = key if key is not None else os.environ.get("DEVQUARRY_OPENAI_API_KEY")
    if not base_url or not model:
        raise InputError(
            None,
            "--draft needs DEVQUARRY_OPENAI_BASE_URL and DEVQUARRY_CHAT_MODEL (an OpenAI-compatible endpoint)",
            field="draft",
        )
    messages, used = build_messages(question, hits, bodies or {}, context_tokens, answer_tokens)
    text = chat(messages, base_url=base_url, model=model, key=key, max_tokens=answer_tokens, timeout=timeout, policy=policy)
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text)})
    valid = [n for n in cited if 1 <= n <= len(hits)]
    for bad in set(cited) - set(valid):  # a number that names no thread is not a citation
        text = text.replace(f"[{bad}]", "")
    return Draft(text.strip(), valid, False, used, model)
