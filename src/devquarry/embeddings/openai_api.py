"""Any OpenAI-compatible embeddings endpoint (``POST {base}/embeddings``).

Configured from the environment: ``DEVQUARRY_OPENAI_BASE_URL`` (or ``OPENAI_BASE_URL``,
default https://api.openai.com/v1), ``DEVQUARRY_OPENAI_API_KEY`` (or ``OPENAI_API_KEY``);
the model after the colon: ``openai:text-embedding-3-small``. The key is never logged or stored.
Retries follow the shared :data:`devquarry.http_policy.API` policy (or the one given).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import httpx
import numpy as np

from devquarry.embeddings.base import Embedder, encode_batches, register
from devquarry.errors import InputError
from devquarry.http_policy import ACCEPT_ENCODING, API, GiveUp, RetryPolicy, TooLarge, TooSlow, read_capped, redact

BATCH = 128
# One batch's answer: 128 vectors of 3,072 floats as JSON are under 10 MB.
MAX_BYTES = 64 * 2**20


class OpenAIEmbedder(Embedder):
    backend = "openai"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.model = model or "text-embedding-3-small"
        self.base_url = (
            base_url
            or os.environ.get("DEVQUARRY_OPENAI_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1"
        ).rstrip("/")
        self._key = api_key or os.environ.get("DEVQUARRY_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.policy = dataclasses.replace(policy or API, **({"timeout": timeout} if timeout is not None else {}))

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def model_id(self) -> str:
        return f"{self.base_url}|{self.model}"

    def encode(self, texts, progress=None) -> np.ndarray:
        headers = {"User-Agent": "devquarry", "Accept-Encoding": ACCEPT_ENCODING}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        with httpx.Client(timeout=self.policy.timeout, headers=headers) as client:
            # The API rejects empty strings.
            return encode_batches(lambda b: self._post(client, [t if t.strip() else " " for t in b]), texts, BATCH, 1, progress)

    def _post(self, client: httpx.Client, batch: list[str]) -> np.ndarray:
        url = f"{self.base_url}/embeddings"
        tries = self.policy.attempts()
        try:
            for attempt in tries:
                try:
                    deadline = time.monotonic() + tries.timeout()
                    payload = {"model": self.model, "input": batch}
                    with client.stream("POST", url, json=payload, timeout=tries.timeout()) as resp:
                        raw = read_capped(resp, MAX_BYTES, deadline)
                except (httpx.TransportError, TooSlow) as exc:
                    if attempt == self.policy.retries:
                        raise InputError(url, f"embedding endpoint unreachable ({exc.__class__.__name__})") from None
                    tries.pause(attempt)
                    continue
                except TooLarge as exc:
                    raise InputError(url, f"embedding endpoint: {exc}") from None
                except ValueError as exc:
                    raise InputError(url, f"embedding endpoint: {exc}") from None
                if self.policy.retryable(resp.status_code) or resp.status_code >= 500:
                    tries.pause(attempt, resp.headers.get("Retry-After"))
                    continue
                text = raw.decode(resp.encoding or "utf-8", errors="replace")
                if resp.status_code != 200:
                    shown = redact(text, [self._key])
                    raise InputError(url, f"embedding endpoint answered HTTP {resp.status_code}: {shown}")
                try:
                    data = sorted(json.loads(text)["data"], key=lambda d: d["index"])
                    return np.asarray([d["embedding"] for d in data], dtype=np.float32)
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(url, f"embedding endpoint answered no list of embeddings ({str(exc)[:80]})") from None
        except GiveUp as exc:
            raise InputError(url, f"embedding endpoint: {exc}") from None
        raise InputError(url, f"embedding endpoint kept failing (HTTP {resp.status_code}) after {self.policy.retries} retries")


@register("openai")
def _factory(model: str | None) -> Embedder:
    return OpenAIEmbedder(model)
