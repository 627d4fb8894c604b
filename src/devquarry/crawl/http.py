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
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from devquarry._version import __version__
from devquarry.http_policy import ACCEPT_ENCODING, GiveUp, RetryPolicy, TooLarge, TooSlow, parse_retry_after, read_capped

USER_AGENT = f"devquarry/{__version__} (+https://github.com/devquarry/devquarry; research crawler)"
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
# One decoded answer: real pages are well under a megabyte (a GitHub page of 100 issues a few);
# a gzip bomb or a body without end stops here. DEVQUARRY_MAX_RESPONSE_MB or --max-response-mb change it.
DEFAULT_MAX_BYTES = int(float(os.environ.get("DEVQUARRY_MAX_RESPONSE_MB") or 64) * 2**20)
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
    ``timeout`` (one attempt, the whole answer read), ``retries``, ``backoff`` and ``max_wait`` make
    its :class:`RetryPolicy` unless ``policy`` is given; ``max_bytes``: the cap on one decoded answer.

    Credentials (``headers``, ``params``) go only to the ``trusted`` origins (default: the origin of
    the first request, which is the one the user named): a redirect or a link to any other origin
    is refused while the client holds credentials."""

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
    max_bytes: int = DEFAULT_MAX_BYTES
    trusted: set = field(default_factory=set)  # origins ("https://host:port") credentials may go to
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
        self.trusted = {origin(u) for u in self.trusted}
        self._client = (
            None
            if self.replay
            else httpx.Client(
                timeout=self.policy.timeout,
                follow_redirects=False,  # followed by hand: credentials must not cross origins
                headers={"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING},
            )
        )

    def trust(self, url: str) -> None:
        """Credentials may go to this URL's origin (the base the user named)."""
        self.trusted.add(origin(url))

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

    def _fetch(self, url: str, query: dict | None, timeout: float) -> tuple[httpx.Response, bytes]:
        """One attempt: the request and its redirects, the whole body read within ``timeout``."""
        deadline = time.monotonic() + timeout
        secret = bool(self.headers or self.params)
        if not self.trusted:
            self.trusted.add(origin(url))
        for _ in range(MAX_REDIRECTS + 1):
            if secret and origin(url) not in self.trusted:
                raise CrawlError(
                    public_url(url),
                    f"refused: {origin(url)} is another origin than {', '.join(sorted(self.trusted))}, "
                    "and the credentials go only there (DEVQUARRY_TRUSTED_ORIGINS adds origins)",
                )
            params = {**(query or {}), **self.params}
            # An empty params mapping would make httpx drop the query already in the URL (a Link header's page).
            request = self._client.build_request("GET", url, params=params or None, headers=self.headers, timeout=timeout)
            resp = self._client.send(request, stream=True)
            try:
                if resp.is_redirect:
                    url, query = str(resp.url.join(resp.headers["location"])), None
                    continue
                try:
                    return resp, read_capped(resp, self.max_bytes, deadline)
                except TooLarge as exc:
                    raise CrawlError(public_url(url), f"{exc} (raise it with --max-response-mb); nothing kept") from None
                except ValueError as exc:
                    raise CrawlError(public_url(url), str(exc)) from None
            finally:
                resp.close()
        raise CrawlError(public_url(url), f"more than {MAX_REDIRECTS} redirects (a redirect loop?)")

    def get_json(self, url: str, params: dict | None = None, expect: type | None = None) -> Response:
        """``expect``: ``dict`` or ``list``, the JSON type the caller reads (anything else is an error)."""
        key = public_url(url, params)
        if self.replay:
            rec = self.archive.get(key)
            if rec is None:
                raise CrawlError(key, "not in the archive (replay makes no requests; crawl without --replay to fetch it)")
            if rec["status"] in (404, 410):
                raise NotFound(key, "gone", rec["status"])
            return Response(key, rec["status"], rec["headers"], _expect(json.loads(rec["body"]), expect, key))
        last = "no attempt"
        tries = self.policy.attempts()
        for attempt in tries:
            self._pace()
            self.requests += 1
            try:
                resp, raw = self._fetch(url, params, tries.timeout())
            except httpx.ConnectError as exc:
                if not self.answered:
                    host = urlsplit(url).netloc
                    raise Unreachable(
                        key, f"cannot connect to {host} ({_reason(exc)}); check the address and the network"
                    ) from None
                last = exc.__class__.__name__
                self._pause(tries, attempt, key)
                continue
            except TooSlow:
                last = f"no full answer within {tries.timeout():.0f} s"
                self._pause(tries, attempt, key)
                continue
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{exc.__class__.__name__}"
                self._pause(tries, attempt, key)
                continue
            self.answered += 1
            body = raw.decode(resp.encoding or "utf-8", errors="replace")
            if resp.status_code in (404, 410):
                if self.archive:
                    self.archive.put(key, resp.status_code, dict(resp.headers), body)
                raise NotFound(key, "gone", resp.status_code)
            if self.policy.retryable(resp.status_code) or _rate_limited(resp):
                last = f"HTTP {resp.status_code}"
                after = resp.headers.get("retry-after")
                if after is not None and parse_retry_after(after) is None:
                    last += f", unreadable Retry-After {after[:40]!r}"
                self._pause(tries, attempt, key, _server_wait(resp, body, key))
                continue
            if resp.status_code >= 400:
                raise CrawlError(key, f"HTTP {resp.status_code}", resp.status_code)
            try:
                data = json.loads(body)
            except json.JSONDecodeError:
                kind = resp.headers.get("content-type", "")
                if kind and "json" not in kind.lower():  # an HTML page, not a cut JSON answer: retrying gives the same
                    raise CrawlError(key, f"the answer is not JSON (Content-Type {kind[:60]!r})") from None
                last = "truncated or invalid JSON body"
                self._pause(tries, attempt, key)
                continue
            data = _expect(data, expect, key)
            if self.archive:
                self.archive.put(key, resp.status_code, dict(resp.headers), body)
            _respect_quota(resp, data, self, key)
            return Response(key, resp.status_code, dict(resp.headers), data)
        raise CrawlError(key, f"gave up after {self.policy.retries + 1} attempts ({last})")


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or DEFAULT_PORTS.get(parts.scheme.lower())}"


def _expect(data: Any, expect: type | None, key: str) -> Any:
    if expect is not None and not isinstance(data, expect):
        want = {dict: "a JSON object", list: "a JSON list"}.get(expect, expect.__name__)
        raise CrawlError(key, f"expected {want}, got {type(data).__name__.replace('dict', 'an object')}")
    return data


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


def _server_wait(resp: httpx.Response, body: str, key: str) -> float | None:
    """The wait the server asks for (Retry-After, Discourse's ``wait_seconds``, Stack Exchange's
    ``backoff``, GitHub's quota reset); None: the policy's backoff. The policy caps it."""
    after = parse_retry_after(resp.headers.get("retry-after"))
    if after is not None:
        return after
    try:
        data = json.loads(body)
        wait = (data.get("extras") or {}).get("wait_seconds") or data.get("backoff")
        if wait and math.isfinite(float(wait)) and float(wait) >= 0:
            return float(wait)
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        pass
    if resp.headers.get("x-ratelimit-remaining") == "0" and resp.headers.get("x-ratelimit-reset"):
        return max(0.0, _seconds(resp.headers["x-ratelimit-reset"], "X-RateLimit-Reset header", key) - time.time()) + 1
    return None


def _seconds(value: Any, what: str, key: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise CrawlError(key, f"unreadable {what} {str(value)[:40]!r}")
    return seconds


def _respect_quota(resp: httpx.Response, data: Any, client: HttpClient, key: str) -> None:
    """Stack Exchange's ``backoff`` and GitHub's spent quota apply to the next request, up to ``max_wait``."""
    waits = []
    if isinstance(data, dict) and data.get("backoff"):
        waits.append(("backoff", _seconds(data["backoff"], "backoff", key)))
    if resp.headers.get("x-ratelimit-remaining") == "0" and resp.headers.get("x-ratelimit-reset"):
        reset = _seconds(resp.headers["x-ratelimit-reset"], "X-RateLimit-Reset header", key)
        waits.append(("rate limit spent; it resets", reset - time.time() + 1))
    for what, wait in waits:
        if wait > client.policy.max_wait:
            raise CrawlError(key, f"{what} in {wait:.0f} s, more than the limit of {client.policy.max_wait:.0f} s")
        client._next_at = max(client._next_at, time.monotonic() + max(wait, 0))
