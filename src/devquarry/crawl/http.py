"""One polite HTTP client for every crawler: httpx with timeouts, a request rate, retries with
backoff on 429, 5xx, timeouts and truncated bodies under the shared :mod:`devquarry.http_policy`
(honouring ``Retry-After``, Discourse's ``wait_seconds`` and the Stack Exchange API's ``backoff``,
up to ``max_wait``), a User-Agent naming devquarry, and an archive of every raw response so that a
crawl can be replayed offline.

Secrets (an API key in the query, a token in a header) never reach the archive, a log line or an
error message: URLs are recorded with the secret parameters removed, and headers not at all.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from devquarry._version import __version__
from devquarry.http_policy import GiveUp, RetryPolicy, parse_retry_after

USER_AGENT = f"devquarry/{__version__} (+https://github.com/devquarry/devquarry; research crawler)"
SECRET_PARAMS = {"key", "access_token", "api_key", "api_username", "token", "client_secret"}


class CrawlError(RuntimeError):
    """A request that failed for good (after retries), with the URL (secrets removed) and status."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url, self.status = url, status


class Unreachable(CrawlError):
    """The very first request could not connect (no such host, connection refused): retrying
    would only make the user wait for the same answer."""


class NotFound(CrawlError):
    """404 or 410: the item is gone (a topic deleted between the list and the fetch)."""


def public_url(url: str, params: dict | None = None) -> str:
    """The URL with its query sorted and secret parameters removed: the archive key and log form."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [
        (k, str(x)) for k, v in (params or {}).items() for x in (v if isinstance(v, (list, tuple)) else [v]) if v is not None
    ]
    query = sorted((k, v) for k, v in query if k.lower() not in SECRET_PARAMS)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


class Archive:
    """Raw responses on disk, one gzip JSON file per request key; replay reads them back."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json.gz"

    def put(self, key: str, status: int, headers: dict, body: str) -> None:
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "link", "date", "etag", "last-modified")}
        record = {"url": key, "status": status, "headers": keep, "body": body, "fetched_at": time.time()}
        tmp = self._path(key).with_suffix(".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            json.dump(record, fh)
        tmp.replace(self._path(key))

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.exists():
            return None
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)


@dataclass
class Response:
    url: str  # public form
    status: int
    headers: dict
    data: Any


@dataclass
class HttpClient:
    """``rate``: at most this many requests a minute (Discourse allows 200 a minute per IP);
    ``timeout``, ``retries``, ``backoff`` and ``max_wait`` make its :class:`RetryPolicy` unless
    ``policy`` is given."""

    rate: float = 120.0
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 1.0
    max_wait: float = 900.0
    headers: dict = field(default_factory=dict)  # secrets go here, never archived
    params: dict = field(default_factory=dict)  # secret query parameters (a key), never archived
    archive: Archive | None = None
    replay: bool = False
    policy: RetryPolicy | None = None
    requests: int = 0
    answered: int = 0  # responses received: until the first, a refused connection is final
    waited: float = 0.0
    _next_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.replay and self.archive is None:
            raise ValueError("replay needs an archive folder")
        if self.policy is None:
            self.policy = RetryPolicy(
                timeout=self.timeout,
                retries=self.retries,
                backoff=self.backoff,
                max_backoff=self.max_wait,
                max_wait=self.max_wait,
            )
        self._client = (
            None
            if self.replay
            else httpx.Client(
                timeout=self.policy.timeout,
                follow_redirects=True,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers},
            )
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _pace(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next_at - now
            if wait > 0:
                time.sleep(wait)
            # 2% above the interval: a server counting arrivals sees jitter, and must never count more.
            self._next_at = max(now, self._next_at) + 1.02 * 60.0 / self.rate

    def _pause(self, tries, attempt: int, url: str, server_wait: float | None = None) -> None:
        try:
            self.waited += tries.pause(attempt, server_wait)
        except GiveUp as exc:
            raise CrawlError(url, str(exc)) from None

    def get_json(self, url: str, params: dict | None = None) -> Response:
        key = public_url(url, params)
        if self.replay:
            rec = self.archive.get(key)
            if rec is None:
                raise CrawlError(key, "not in the archive (replay makes no requests; crawl without --replay to fetch it)")
            if rec["status"] in (404, 410):
                raise NotFound(key, "gone", rec["status"])
            return Response(key, rec["status"], rec["headers"], json.loads(rec["body"]))
        query = {**(params or {}), **self.params}
        last = "no attempt"
        tries = self.policy.attempts()
        for attempt in tries:
            self._pace()
            self.requests += 1
            try:
                # An empty params mapping would make httpx drop the query already in the URL (a Link header's page).
                resp = self._client.get(url, params=query or None, timeout=tries.timeout())
                body = resp.text
            except httpx.ConnectError as exc:
                if not self.answered:
                    host = urlsplit(url).netloc
                    raise Unreachable(
                        key, f"cannot connect to {host} ({_reason(exc)}); check the address and the network"
                    ) from None
                last = exc.__class__.__name__
                self._pause(tries, attempt, key)
                continue
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{exc.__class__.__name__}"
                self._pause(tries, attempt, key)
                continue
            self.answered += 1
            if resp.status_code in (404, 410):
                if self.archive:
                    self.archive.put(key, resp.status_code, dict(resp.headers), body)
                raise NotFound(key, "gone", resp.status_code)
            if self.policy.retryable(resp.status_code) or _rate_limited(resp):
                last = f"HTTP {resp.status_code}"
                self._pause(tries, attempt, key, _server_wait(resp, body))
                continue
            if resp.status_code >= 400:
                raise CrawlError(key, f"HTTP {resp.status_code}", resp.status_code)
            try:
                data = json.loads(body)
            except json.JSONDecodeError:
                last = "truncated or invalid JSON body"
                self._pause(tries, attempt, key)
                continue
            if self.archive:
                self.archive.put(key, resp.status_code, dict(resp.headers), body)
            _respect_quota(resp, data, self, key)
            return Response(key, resp.status_code, dict(resp.headers), data)
        raise CrawlError(key, f"gave up after {self.policy.retries + 1} attempts ({last})")


def _reason(exc: Exception) -> str:
    """The innermost cause, e.g. 'Name or service not known' or 'Connection refused'."""
    while exc.__context__ is not None and exc.__cause__ is None and exc.__context__ is not exc:
        exc = exc.__context__
    cause = exc.__cause__ or exc
    text = str(getattr(cause, "strerror", None) or cause)
    return text.split("] ", 1)[-1] or cause.__class__.__name__


def _rate_limited(resp: httpx.Response) -> bool:
    """GitHub answers 403 with X-RateLimit-Remaining: 0 when the hourly quota is spent."""
    return resp.status_code == 403 and resp.headers.get("x-ratelimit-remaining") == "0"


def _server_wait(resp: httpx.Response, body: str) -> float | None:
    """The wait the server asks for (Retry-After, Discourse's ``wait_seconds``, Stack Exchange's
    ``backoff``, GitHub's quota reset); None: the policy's backoff."""
    after = parse_retry_after(resp.headers.get("retry-after"))
    if after is not None:
        return after
    try:
        data = json.loads(body)
        wait = (data.get("extras") or {}).get("wait_seconds") or data.get("backoff")
        if wait:
            return float(wait)
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        pass
    reset = resp.headers.get("x-ratelimit-reset")
    if reset and resp.headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(reset) - time.time()) + 1
        except ValueError:
            return None
    return None


def _respect_quota(resp: httpx.Response, data: Any, client: HttpClient, key: str) -> None:
    """Stack Exchange's ``backoff`` and GitHub's spent quota apply to the next request."""
    if isinstance(data, dict) and data.get("backoff"):
        client._next_at = max(client._next_at, time.monotonic() + float(data["backoff"]))
    if resp.headers.get("x-ratelimit-remaining") == "0" and resp.headers.get("x-ratelimit-reset"):
        wait = float(resp.headers["x-ratelimit-reset"]) - time.time() + 1
        if wait > client.policy.max_wait:
            raise CrawlError(key, f"rate limit spent; it resets in {wait:.0f} s")
        client._next_at = max(client._next_at, time.monotonic() + max(wait, 0))
