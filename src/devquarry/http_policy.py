"""One retry policy for every HTTP client devquarry has: the crawler (``crawl.http``), the
embeddings client (``embeddings.openai_api``) and the chat client (``ask.draft``).

A :class:`RetryPolicy` says how long one attempt may take (``timeout``), how long one request may
take over all its attempts and waits (``deadline``), how often to retry and on which statuses, the
exponential backoff, and the longest single wait a server may ask for (``max_wait``): a
``Retry-After`` above it fails at once with a clear message (:class:`GiveUp`) rather than holding
a crawl or a question for an hour. Each client turns :class:`GiveUp` into its own error type.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class GiveUp(RuntimeError):
    """Retrying is not allowed: the server asks for a wait above the cap, or the deadline is near."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date (a date past
    gives 0); None when missing or unreadable, so that the caller falls back to its backoff."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT; "-0000" parses as naive
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    # "inf", "nan" and negative numbers parse as floats but are no delay a server can mean.
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@dataclass(frozen=True)
class RetryPolicy:
    timeout: float = 30.0  # one attempt
    deadline: float | None = None  # one request, all attempts and waits together
    retries: int = 4  # attempts after the first
    backoff: float = 1.0  # first wait; doubled on each retry
    max_backoff: float = 60.0
    max_wait: float = 900.0  # cap on any one wait, a server's Retry-After included
    retry_status: frozenset[int] = field(default=RETRY_STATUS)

    def retryable(self, status: int) -> bool:
        return status in self.retry_status

    def backoff_for(self, attempt: int) -> float:
        return min(self.backoff * 2**attempt, self.max_backoff)

    def wait_for(self, attempt: int, retry_after: str | float | None = None) -> float:
        """The wait before the next attempt: the server's (a ``Retry-After`` text, or seconds the
        caller read elsewhere) where readable, else the backoff; :class:`GiveUp` above ``max_wait``."""
        seconds = parse_retry_after(retry_after) if isinstance(retry_after, str) else retry_after
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            seconds = self.backoff_for(attempt)
        if seconds > self.max_wait:
            raise GiveUp(f"server asks to wait {seconds:.0f} s, more than the limit of {self.max_wait:.0f} s")
        return seconds

    def attempts(self, sleep: Callable[[float], None] = time.sleep) -> Attempts:
        return Attempts(self, sleep)


class Attempts:
    """One request's tries: iterate for the attempt numbers, ``timeout()`` for this attempt's
    limit, ``pause(attempt, retry_after)`` between attempts (no wait after the last)."""

    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy, self._sleep = policy, sleep
        self.started = time.monotonic()

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.policy.retries + 1))

    def _left(self) -> float:
        if self.policy.deadline is None:
            return math.inf
        return self.policy.deadline - (time.monotonic() - self.started)

    def timeout(self) -> float:
        return max(0.1, min(self.policy.timeout, self._left()))

    def pause(self, attempt: int, retry_after: str | float | None = None) -> float:
        """Wait before the next attempt and return the seconds waited; :class:`GiveUp` when the
        server's wait is above the cap or would run past the deadline."""
        seconds = self.policy.wait_for(attempt, retry_after)
        if attempt >= self.policy.retries:
            return 0.0
        if seconds >= self._left():
            raise GiveUp(f"no answer within the deadline of {self.policy.deadline:.0f} s")
        self._sleep(seconds)
        return seconds


# The crawler's own HttpClient builds its policy from its fields (rate, timeout, retries, ...).
# The API clients share this one: an interactive call, so a server asking to wait more than two
# minutes fails with a message rather than a silent hang.
API = RetryPolicy(timeout=60.0, deadline=600.0, retries=4, backoff=0.5, max_backoff=30.0, max_wait=120.0)


# What a client reads of one answer: a server may send a gzip bomb, a body without end, or trickle
# a byte a second (httpx's timeouts are per read). The body is read as a stream and decoded here,
# counting decoded bytes, so that neither the size nor the time can run past its cap.
ACCEPT_ENCODING = "gzip, deflate"


class TooLarge(RuntimeError):
    """The decoded answer is larger than the cap: retrying would fetch it again."""


class TooSlow(RuntimeError):
    """The answer did not arrive in full within the attempt's total deadline."""


def read_capped(resp, limit: int, deadline: float) -> bytes:
    """The decoded body of a streamed httpx response; :class:`TooLarge` past ``limit`` decoded bytes,
    :class:`TooSlow` past ``deadline`` (a ``time.monotonic()`` value)."""
    import zlib

    length = resp.headers.get("content-length", "")
    encodings = [e.strip().lower() for e in resp.headers.get("content-encoding", "").split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    if not encodings and length.isdigit() and int(length) > limit:
        raise TooLarge(f"the answer is {int(length)} bytes, more than the limit of {limit}")
    if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
        raise ValueError(f"unsupported Content-Encoding {resp.headers.get('content-encoding')!r}")
    inflate = zlib.decompressobj(47) if encodings else None  # 47: a gzip or zlib header, detected
    out = bytearray()
    for raw in resp.iter_raw():
        data = raw
        while data:
            if inflate is None:
                out += data
                data = b""
            else:
                try:
                    out += inflate.decompress(data, limit - len(out) + 1)  # max_length: never more than the cap
                except zlib.error as exc:
                    raise ValueError(f"cannot decode the {encodings[0]} body ({exc})") from None
                data = inflate.unconsumed_tail
            if len(out) > limit:
                raise TooLarge(f"the answer is larger than the limit of {limit} bytes")
        if time.monotonic() > deadline:
            raise TooSlow("the answer did not arrive in full within the time allowed")
    if inflate is not None:
        out += inflate.flush()
        if len(out) > limit:
            raise TooLarge(f"the answer is larger than the limit of {limit} bytes")
    return bytes(out)


def redact(text: str, secrets, limit: int = 200) -> str:
    """A response body fit for an error line: secrets masked, on one line, at most ``limit`` characters.
    A server may echo the key it received (a 401 that quotes the request)."""
    for secret in secrets:
        if secret and len(str(secret)) >= 4:
            text = text.replace(str(secret), "[redacted]")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:limit] + ("..." if len(text) > limit else "")
