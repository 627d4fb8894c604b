"""Kept libraries over hand-written code: SciPy's intervals, pymannkendall's trend test, and the one
retry policy (``devquarry.http_policy``) that the crawler, the embeddings client and the chat client share."""

import email.utils
import json
import time

import numpy as np
import pandas as pd
import pymannkendall
import pytest
from conftest import SHARED
from local_server import LocalServer, QuietHandler
from scipy import stats as sps

from devquarry import Store
from devquarry.ask.draft import chat
from devquarry.crawl import CrawlError, HttpClient
from devquarry.embeddings.openai_api import OpenAIEmbedder
from devquarry.errors import InputError
from devquarry.http_policy import GiveUp, RetryPolicy, parse_retry_after
from devquarry.metrics import metrics
from devquarry.stats import bootstrap_ci, mann_kendall, median_ci, wilson_ci
from devquarry.trends import series, trends

SO = SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz"


def _hours_to_accepted() -> np.ndarray:
    df = pd.read_csv(SO, usecols=["created_time", "accepted_time"]).dropna()
    hours = (pd.to_datetime(df.accepted_time) - pd.to_datetime(df.created_time)).dt.total_seconds() / 3600
    return hours.to_numpy()


def test_intervals_are_scipys_and_do_not_depend_on_row_order():
    assert wilson_ci(8, 10) == pytest.approx((0.490, 0.943), abs=5e-4)
    assert median_ci(np.arange(1, 101)) == (40.0, 61.0)
    hours = _hours_to_accepted()[:500]  # a group under 1,000 threads: bootstrapped
    shuffled = np.random.default_rng(7).permutation(hours)
    # The store returns rows in no fixed order: the seeded interval must not change with it.
    assert bootstrap_ci(hours, np.median) == bootstrap_ci(shuffled, np.median)
    ref = sps.bootstrap((np.sort(hours),), np.median, n_resamples=2000, method="percentile", rng=np.random.default_rng(0))
    assert bootstrap_ci(shuffled, np.median) == (ref.confidence_interval.low, ref.confidence_interval.high)
    large = _hours_to_accepted()
    ci = sps.quantile_test(large, p=0.5).confidence_interval(0.95)
    assert median_ci(large) == (ci.low, ci.high)


def test_readme_table_figures(so_labelled_db):
    with Store(so_labelled_db, read_only=True) as s:
        m = metrics(s, "code", codebook="chen2025-so-api", labels="study").set_index("group")
    ci = {
        g: (round(100 * r.pct_unresolved, 1), round(100 * r.pct_unresolved_lo, 1), round(100 * r.pct_unresolved_hi, 1))
        for g, r in m.iterrows()
    }
    # The README's table: Wilson for (all) and Chat, SciPy's bootstrap of the sorted flags below 1,000.
    assert ci["(all)"] == (77.4, 75.7, 79.1) and ci["chat"] == (74.8, 72.1, 77.4)
    assert ci["embeddings"] == (78.4, 74.5, 82.4) and ci["fine-tuning"] == (79.3, 73.6, 84.5)
    assert ci["code"] == (72.5, 57.5, 85.0) and ci["assistants"] == (83.8, 79.0, 88.2)


def test_trend_test_is_the_classic_mann_kendall(so_labelled_db):
    with Store(so_labelled_db, read_only=True) as s:
        t = trends(s, "code", codebook="chen2025-so-api", labels="study")
        long = series(s, "code", codebook="chen2025-so-api", labels="study")
    assert t.attrs["test"].startswith("Mann-Kendall (classic")
    t = t.set_index("group")
    counts = long[long.group == "code"].sort_values("period").threads.to_numpy()
    ref = pymannkendall.original_test(counts)
    assert t.loc["code", "p_value"] == pytest.approx(ref.p) and t.loc["code", "tau"] == pytest.approx(ref.Tau)
    # README: eight of nine categories rose; Code Generation's questions give p = 0.056.
    assert round(t.loc["code", "p_value"], 3) == 0.056 and t.loc["code", "trend"] == "no trend"
    assert (t.drop(index="code").trend == "increasing").all()
    # Sen's slope with SciPy's interval around it.
    assert t.loc["code", "slope"] == pytest.approx(ref.slope)
    assert t.loc["chat", "slope_lo"] < t.loc["chat", "slope"] < t.loc["chat", "slope_hi"]
    assert mann_kendall([3, 3, 3])["trend"] == "flat" and mann_kendall([1, 2])["trend"] == "too short"


def test_retry_after_parsing_and_the_cap():
    now = time.time()
    assert parse_retry_after("120") == 120.0 and parse_retry_after("0.5") == 0.5
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(90, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0
    for garbage in ("soon", "Tomorrow, 99 Foo", "-5", "nan", "inf", "", None, "12 s"):
        assert parse_retry_after(garbage) is None
    policy = RetryPolicy(backoff=0.25, max_wait=60)
    assert policy.wait_for(0, "soon") == 0.25 and policy.wait_for(2, "nan") == 1.0 and policy.wait_for(1, "30") == 30.0
    with pytest.raises(GiveUp, match="asks to wait 3600 s, more than the limit of 60 s"):
        policy.wait_for(0, "3600")
    with pytest.raises(GiveUp, match="more than the limit"):
        policy.wait_for(0, email.utils.formatdate(now + 7200, usegmt=True))


class _Throttling(LocalServer):
    """Answers each request with the next queued (status, Retry-After) and then 200s: JSON for GET,
    an embeddings or chat-completions body for POST."""

    def __init__(self, queue: list[tuple[int, str]]) -> None:
        self.queue, self.hits = list(queue), 0
        self._start()

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def _reply(self, ok):
                server.hits += 1
                if server.queue:
                    status, after = server.queue.pop(0)
                    return self.send_json(status, {"error": "slow down"}, {"Retry-After": after})
                self.send_json(200, ok)

            def do_GET(self):
                self._reply({"items": [1, 2, 3]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/embeddings"):
                    return self._reply({"data": [{"index": i, "embedding": [len(t), 1.0]} for i, t in enumerate(body["input"])]})
                self._reply({"choices": [{"message": {"content": "see [1]"}}]})

        return Handler


def _titles(n: int) -> list[str]:
    return pd.read_csv(SO, usecols=["title"], nrows=n).title.tolist()


def test_crawler_survives_a_garbage_retry_after_and_stops_at_the_cap():
    with _Throttling([(429, "whenever you like"), (503, "0")]) as srv, HttpClient(rate=6000, backoff=0.05) as client:
        assert client.get_json(srv.base + "/latest.json").data == {"items": [1, 2, 3]}
        assert srv.hits == 3 and client.waited == pytest.approx(0.05)  # the backoff, then Retry-After: 0
    with _Throttling([(429, "3600")]) as srv, HttpClient(rate=6000, max_wait=60) as client:
        with pytest.raises(CrawlError, match="asks to wait 3600 s, more than the limit of 60 s"):
            client.get_json(srv.base + "/latest.json")
        assert srv.hits == 1 and client.waited == 0


def test_api_clients_share_the_policy_and_its_cap():
    fast = RetryPolicy(timeout=5, retries=2, backoff=0.01, max_wait=30)
    titles = _titles(3)
    with _Throttling([(429, "soon"), (500, "1e-3")]) as srv:
        e = OpenAIEmbedder("m", base_url=srv.base + "/v1", api_key="k", policy=fast)
        v = e.encode(titles)
        assert v.shape == (3, 2) and np.allclose(v[:, 0] / v[:, 1], [len(t) for t in titles]) and srv.hits == 3
    with _Throttling([(429, "3600")]) as srv:
        e = OpenAIEmbedder("m", base_url=srv.base + "/v1", api_key="k", policy=fast)
        with pytest.raises(InputError, match="asks to wait 3600 s, more than the limit of 30 s"):
            e.encode(titles)
        assert srv.hits == 1
    messages = [{"role": "user", "content": titles[0]}]
    with _Throttling([(503, "Wed, 21 Oct 2015 07:28:00 GMT")]) as srv:  # a date past: no wait
        assert chat(messages, base_url=srv.base + "/v1", model="m", key=None, max_tokens=16, policy=fast) == "see [1]"
    with _Throttling([(429, "3600")]) as srv:
        with pytest.raises(InputError, match="chat endpoint .* asks to wait 3600 s, more than the limit of 30 s"):
            chat(messages, base_url=srv.base + "/v1", model="m", key=None, max_tokens=16, policy=fast)
    with _Throttling([(500, "0")] * 3) as srv:  # every attempt fails: the policy's retries, then a clear error
        with pytest.raises(InputError, match="failed after 3 attempts \\(HTTP 500\\)"):
            chat(messages, base_url=srv.base + "/v1", model="m", key=None, max_tokens=16, policy=fast)
        assert srv.hits == 3
