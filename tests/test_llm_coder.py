"""The LLM coder (devquarry.coders.llm) against a fake chat-completions server on 127.0.0.1
(tests/llm_chat_server.py), on a few real hand-labelled threads of ../shared/data in a real store."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from conftest import FORUM_MAP, SO_MAP
from llm_chat_server import LLMChatServer, keyword_answer, keyword_code
from sklearn.feature_extraction.text import TfidfVectorizer

from devquarry import Store, ingest_table
from devquarry.ask.draft import count_tokens
from devquarry.codebooks import load_codebook
from devquarry.coders.llm import IRRELEVANT, UNCLASSIFIED, Invalid, LLMSettings, allowed_codes, estimate, llm_code, parse_answer
from devquarry.errors import InputError
from devquarry.http_policy import RetryPolicy
from devquarry.labeling import import_labels_from_threads, labels_frame
from devquarry.text import thread_text

FAST = RetryPolicy(timeout=5.0, retries=2, backoff=0.01, max_wait=5.0)
KEY = "sk-llm-test-7f3a9c51"


def _store(tmp_path, shared, kind: str, n: int = 20) -> Store:
    """A store with the first ``n`` hand-labelled threads of a shared file, labels imported."""
    if kind == "so":
        src, source, mapping, cb, rater = (
            "stackoverflow-openai-api/questions_labelled.csv.gz",
            "stackoverflow",
            SO_MAP,
            "chen2025-so-api",
            "study",
        )
    else:
        src, source, mapping, cb, rater = (
            "openai-forum-labelled/annotated_questions.csv.gz",
            "openai-forum-labelled",
            FORUM_MAP,
            "chen2024-forum",
            "paper",
        )
    csv = tmp_path / f"{kind}.csv"
    pd.read_csv(shared / src, nrows=n).to_csv(csv, index=False)
    store = Store(tmp_path / f"{kind}.duckdb")
    ingest_table(store, [csv], source=source, mapping=mapping)
    import_labels_from_threads(store, cb, source, rater)
    return store


def _frames(store: Store, codebook: str, level: int | None):
    """The threads to code (in source_id order) and the labelled examples at ``level``."""
    threads = store.threads().sort_values("source_id").reset_index(drop=True)
    labels = labels_frame(store, codebook, level)
    labels = labels[(labels.status == "coded") & labels.primary.notna()]
    return threads, threads.merge(labels[["source", "source_id", "primary", "codes"]], on=["source", "source_id"])


def _settings(server, **kw) -> LLMSettings:
    return LLMSettings(**{"base_url": server.base, "model": "fake-model", "key": KEY, **kw})


def _by_title(server) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for title, content in server.answers:
        out.setdefault(title, []).append(content)
    return out


@pytest.fixture
def so(tmp_path, shared):
    s = _store(tmp_path, shared, "so")
    yield s
    s.close()


@pytest.fixture
def forum(tmp_path, shared):
    s = _store(tmp_path, shared, "forum")
    yield s
    s.close()


def test_codes_are_what_the_model_answered_from_the_codebook_and_the_nearest_labelled_threads(so):
    cb = load_codebook("chen2025-so-api")
    threads, examples = _frames(so, cb.id, 0)
    seen = []
    with LLMChatServer() as server:
        out = llm_code(
            so,
            cb,
            threads,
            examples,
            _settings(server, samples=1, examples=3),
            policy=FAST,
            progress=lambda d, t: seen.append((d, t)),
        )
    assert len(server.requests) == 20 and out.attrs["calls"] == 20 and out.attrs["cached"] == 0
    assert seen == [(i, 20) for i in range(1, 21)]
    # One code per thread (single label), the one the model answered for that thread's title, voted 1 of 1.
    assert len(out) == 20 and set(out["rank"]) == {0} and set(out.score) == {1.0}
    answered = {t: json.loads(a[0])["code"] for t, a in _by_title(server).items()}
    titles = dict(zip(threads.source_id, threads.title))
    assert [answered[titles[i]] for i in out.source_id] == list(out.code)
    by_title = dict(zip(out.source_id.map(titles), out.code))
    assert by_title["DALL-E image cant generate perfectly inside the wordpress"] == "image"
    assert by_title["Audio-to-Text Transcription Method with ChatGPT, LiveKit, and Flutter"] == "audio"
    labelled = dict(zip(examples.title, examples.primary))
    for req in server.requests:
        body = req["body"]
        assert body["temperature"] == 0 and body["model"] == "fake-model" and body["max_tokens"] == 200
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        for code in cb.codes:  # the codebook itself: ids, names, definitions
            assert f"- {code.id}: {code.name}" in system and code.description in system
        own = user.split("Question to code:\nTitle: ")[1].split("\n")[0]
        shown = [t for t in labelled if f"Title: {t}\n" in user.split("Question to code:")[0]]
        # Three labelled examples, never the thread itself, each with its hand code.
        assert len(shown) == 3 and own not in shown
        for t in shown:
            assert f"Title: {t}\n" in user and json.dumps({"code": labelled[t]}) in user
    # Example 1 is the labelled thread closest to the thread by TF-IDF cosine (title and start of body).
    texts = [thread_text(t, b) for t, b in zip(threads.title, threads.body_text)]  # examples: the same 20, same order
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(texts).transform(texts)
    sims = (tfidf @ tfidf.T).toarray()
    np.fill_diagonal(sims, -1)  # never itself
    for req in server.requests:
        user = req["body"]["messages"][1]["content"]
        first = user.split("Example 1\nTitle: ")[1].split("\n")[0]
        own = user.split("Question to code:\nTitle: ")[1].split("\n")[0]
        row = threads.index[threads.title == own][0]
        assert first == examples.title.iloc[int(sims[row].argmax())]


def test_samples_vote_and_a_multi_label_codebook_keeps_the_majority_secondary_codes(forum, so):
    plan = {0: {"code": "B.1", "secondary": ["C.5"]}, 1: {"code": "b.1"}, 2: {"code": "C.5", "secondary": ["B.1", "Q.9"]}}

    def script(p):
        if p.title.startswith("whisper api stutter"):
            return json.dumps(plan[p.nth])
        return keyword_answer(p)

    cb = load_codebook("chen2024-forum")
    threads, examples = _frames(forum, cb.id, None)
    with LLMChatServer(script) as server:
        out = llm_code(forum, cb, threads, examples, _settings(server, samples=3), policy=FAST)
    assert out.attrs["calls"] == 60 and {r["body"]["temperature"] for r in server.requests} == {0.7}
    whisper = threads[threads.title.str.startswith("whisper api stutter")].source_id.iloc[0]
    rows = out[out.source_id == whisper].sort_values("rank")
    # B.1 by 2 of 3 samples; C.5 named by 2 of 3 (one primary, one secondary): kept as the second code.
    assert list(rows.code) == ["B.1", "C.5"] and list(rows["rank"]) == [0, 1]
    assert rows.score.tolist() == pytest.approx([2 / 3, 2 / 3])
    # The others: three identical answers, one code each, at the subcategory level the prompt asked.
    rest = out[out.source_id != whisper]
    assert (rest.score == 1.0).all() and (rest["rank"] == 0).all() and rest.code.str.contains(r"^[A-F]\.\d$").all()
    assert "- A.1: Integration with Custom Applications" in server.requests[0]["body"]["messages"][0]["content"]
    assert "- A: General Question" not in server.requests[0]["body"]["messages"][0]["content"]

    # A single-label codebook keeps the primary code only, whatever the model adds.
    so_cb = load_codebook("chen2025-so-api")
    so_threads, so_examples = _frames(so, so_cb.id, 0)
    target = so_threads.title.iloc[0]

    def so_script(p):
        answers = [{"code": "audio", "secondary": ["chat"]}, {"code": "chat", "secondary": ["audio"]}, {"code": "audio"}]
        return json.dumps(answers[p.nth]) if p.title == target else keyword_answer(p)

    with LLMChatServer(so_script) as server:
        single = llm_code(so, so_cb, so_threads.head(3), so_examples, _settings(server), policy=FAST)
    row = single[single.source_id == so_threads.source_id.iloc[0]]
    assert list(row.code) == ["audio"] and row.score.iloc[0] == pytest.approx(2 / 3) and len(single) == 3


def test_invalid_answers_are_corrected_once_then_unclassified_and_a_category_is_asked_at_level_0(forum):
    cb = load_codebook("chen2024-forum")
    threads, examples = _frames(forum, cb.id, None)  # the labels as coded (B.1, C--, ...): shown as categories
    titles = list(threads.title[:6])

    def script(p):
        first = p.correction is None
        if p.title == titles[0]:  # malformed, then valid
            return 'Sure! {"code": "B", "secondary": [' if first else '{"code": "B"}'
        if p.title == titles[1]:  # an invented code, then valid
            return '{"code": "Z.9"}' if first else '{"code": "D"}'
        if p.title == titles[2]:  # invented twice
            return '{"code": "quantum"}'
        if p.title == titles[3]:  # fenced, with words around it: read as it is
            return 'Here is my answer:\n```json\n{"code": "f", "secondary": ["A"]}\n```\nHope it helps.'
        if p.title == titles[4]:  # a subcategory where a category was asked, then the category
            return '{"code": "B.1"}' if first else '{"code": "B"}'
        if p.title == titles[5]:
            return '{"code": "none"}'
        return keyword_answer(p)

    with LLMChatServer(script) as server:
        settings = _settings(server, samples=1)
        out = llm_code(forum, cb, threads, examples, settings, level=0, policy=FAST)
        code = dict(zip(out[out["rank"] == 0].source_id, out[out["rank"] == 0].code))
        got = [code[i] for i in threads.source_id[:6]]
        assert got == ["B", "D", UNCLASSIFIED, "F", "B", IRRELEVANT]
        assert math.isnan(out[out.code == UNCLASSIFIED].score.iloc[0])
        assert list(out[out.source_id == threads.source_id[3]].code) == ["F", "A"]  # multi-label: the secondary kept
        assert out.attrs["rejected"] == 5 and out.attrs["unclassified"] == 1 and out.attrs["calls"] == 24
        counts = {t: len(a) for t, a in _by_title(server).items()}
        assert [counts[t] for t in titles] == [2, 2, 2, 1, 2, 1]
        corrections = [r["body"]["messages"] for r in server.requests if len(r["body"]["messages"]) == 4]
        assert len(corrections) == 4
        said = {m[1]["content"].split("Question to code:\nTitle: ")[1].split("\n")[0]: m[3]["content"] for m in corrections}
        assert "not a code of this codebook" in said[titles[1]] and "is not a category code" in said[titles[4]]
        assert all('"none"' in c and "A, B, C, D, E, F" in c for c in said.values())
        assert corrections[0][2] == {"role": "assistant", "content": 'Sure! {"code": "B", "secondary": ['}
        shown = [
            json.loads(a)
            for r in server.requests
            for a in re.findall(r"^Answer: (\{.*\})$", r["body"]["messages"][1]["content"], re.M)
        ]
        assert len(shown) == 5 * len(server.requests) and {a["code"] for a in shown} <= set("ABCDEF")
        assert {a["code"] for a in shown} >= {"A", "B", "C"} and any(a["secondary"] for a in shown)
        # A re-run reads every answer, the corrections' too, from the store: no call, the same codes.
        n = len(server.requests)
        again = llm_code(forum, cb, threads, examples, settings, level=0, policy=FAST)
        assert len(server.requests) == n and again.attrs["calls"] == 0 and again.attrs["cached"] == 24
        pd.testing.assert_frame_equal(again, out)


def test_every_answer_is_cached_so_a_rerun_costs_nothing_and_the_estimate_says_so(so):
    cb = load_codebook("chen2025-so-api")
    threads, examples = _frames(so, cb.id, 0)
    with LLMChatServer() as server:
        settings = _settings(server)  # three samples at temperature 0.7
        cold = estimate(cb, threads, examples, settings, store=so)
        assert cold["threads"] == 20 and cold["calls"] == 60 and cold["cached"] == 0
        assert cold["prompt_tokens"] > 60 * 700 and cold["answer_tokens"] == 60 * 200
        part = llm_code(so, cb, threads, examples, settings, max_threads=5, policy=FAST)
        assert len(server.requests) == 15 and part.attrs["skipped"] == 15
        assert list(part.source_id.unique()) == list(threads.source_id[:5])
        assert so.query("SELECT count(*) AS n FROM llm_answer").n.iloc[0] == 15
        half = estimate(cb, threads, examples, settings, store=so)
        assert (half["calls"], half["cached"]) == (45, 15)
        full = llm_code(so, cb, threads, examples, settings, policy=FAST)
        assert len(server.requests) == 60 and (full.attrs["calls"], full.attrs["cached"]) == (45, 15)
        pd.testing.assert_frame_equal(full.head(5), part)
        again = llm_code(so, cb, threads, examples, settings, policy=FAST)
        assert len(server.requests) == 60 and again.attrs["calls"] == 0  # zero HTTP calls
        pd.testing.assert_frame_equal(again, full)
        warm = estimate(cb, threads, examples, settings, store=so)
        assert (warm["calls"], warm["cached"], warm["prompt_tokens"]) == (0, 60, 0)
        # Other settings are other questions: one sample is asked at temperature 0.
        one = estimate(cb, threads, examples, _settings(server, samples=1), store=so)
        assert (one["calls"], one["cached"]) == (20, 0)
    kept = so.query("SELECT model, sample, answer FROM llm_answer")
    assert len(kept) == 60 and set(kept.model) == {"fake-model"} and set(kept["sample"]) == {0, 1, 2}
    assert {json.loads(a)["code"] for a in kept.answer} == set(full.code)


def test_a_429_and_a_timeout_are_retried(so):
    cb = load_codebook("chen2025-so-api")
    threads, examples = _frames(so, cb.id, 0)
    threads = threads.head(6)
    with LLMChatServer() as server:
        server.failures = ["429", ("slow", 1.5)]
        out = llm_code(so, cb, threads, examples, _settings(server, samples=1, timeout=0.4), policy=FAST)
        assert len(server.requests) == 8 and out.attrs["calls"] == 6  # two failed attempts, then six answers
        assert list(out.code) == [json.loads(a)["code"] for _, a in server.answers]


def test_a_dead_endpoint_stops_with_one_line_and_keeps_what_was_paid_for(so):
    cb = load_codebook("chen2025-so-api")
    threads, examples = _frames(so, cb.id, 0)
    threads = threads.head(6)
    with LLMChatServer(fail_after=3) as server:
        settings = _settings(server, samples=1)
        with pytest.raises(InputError) as err:
            llm_code(so, cb, threads, examples, settings, policy=FAST)
        message = str(err.value)
        assert (
            "\n" not in message
            and "failed after 3 attempts (HTTP 503)" in message
            and "3 answers received so far are kept" in message
        )
        assert so.query("SELECT count(*) AS n FROM llm_answer").n.iloc[0] == 3
        server.fail_after = None
        resumed = llm_code(so, cb, threads, examples, settings, policy=FAST)
    assert (resumed.attrs["cached"], resumed.attrs["calls"]) == (3, 3) and len(resumed) == 6


def test_parallel_workers_give_the_same_codes_and_each_model_has_its_own_cache(so):
    cb = load_codebook("chen2025-so-api")
    threads, examples = _frames(so, cb.id, 0)

    def script(p):  # the third sample of every thread disagrees: each thread's samples must stay its own
        return json.dumps({"code": p.ids[-1] if p.nth == 2 else keyword_code(p)})

    with LLMChatServer(script) as server:
        seen = []
        one = llm_code(so, cb, threads, examples, _settings(server), policy=FAST)
        many = llm_code(
            so,
            cb,
            threads,
            examples,
            _settings(server, workers=4, model="fake-model-2"),
            policy=FAST,
            progress=lambda d, t: seen.append(d),
        )
        assert len(server.requests) == 120 and one.attrs["calls"] == many.attrs["calls"] == 60
    pd.testing.assert_frame_equal(one, many)
    assert seen == list(range(1, 21))
    # Two of three samples for the keyword code, unless it is "others" (the listed last), which gets all three.
    assert all(score == (1.0 if code == "others" else pytest.approx(2 / 3)) for code, score in zip(one.code, one.score))
    assert (one.code != "others").sum() >= 10
    assert so.query("SELECT model, count(*) AS n FROM llm_answer GROUP BY model ORDER BY model").n.tolist() == [60, 60]


def test_the_key_goes_in_the_authorization_header_and_nowhere_else(tmp_path, shared):
    store = _store(tmp_path, shared, "so", n=8)
    cb = load_codebook("chen2025-so-api")
    threads, examples = _frames(store, cb.id, 0)
    target = threads.title.iloc[1]

    def script(p):  # a server that quotes the header it was sent, in an answer that is then rejected
        if p.title == target and p.correction is None and p.nth == 0:
            return f"I cannot do that with {p.auth}"
        return keyword_answer(p)

    with LLMChatServer(script) as server:
        settings = _settings(server, samples=2)
        out = llm_code(store, cb, threads, examples, settings, policy=FAST)
        server.failures = ["401"]
        with pytest.raises(InputError) as err:
            llm_code(store, cb, threads, examples, _settings(server, samples=1), policy=FAST)
    assert out.attrs["rejected"] == 1 and len(out) == 8
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert not any(KEY.encode() in r["raw"] for r in server.requests)
    assert any("[redacted]" in json.dumps(r["body"]) for r in server.requests)  # the correction quoted the answer, key masked
    assert KEY not in str(err.value) and "HTTP 401" in str(err.value)
    assert KEY not in repr(out.attrs) and KEY not in out.to_string() and KEY not in repr(settings)
    tables = store.query("SELECT table_name FROM information_schema.tables").table_name
    for table in tables:
        assert KEY not in store.query(f'SELECT * FROM "{table}"').to_csv(), table
    store.close()
    for f in tmp_path.iterdir():
        if f.name.startswith("so.duckdb"):
            assert KEY.encode() not in f.read_bytes(), f


def test_settings_come_from_the_environment_and_the_prompt_fits_the_context(so, monkeypatch):
    for var in ("DEVQUARRY_OPENAI_BASE_URL", "DEVQUARRY_CHAT_MODEL", "DEVQUARRY_OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InputError, match="DEVQUARRY_OPENAI_BASE_URL"):
        LLMSettings.from_env()
    monkeypatch.setenv("DEVQUARRY_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(InputError, match="DEVQUARRY_CHAT_MODEL"):
        LLMSettings.from_env()
    monkeypatch.setenv("DEVQUARRY_CHAT_MODEL", "m")
    monkeypatch.setenv("DEVQUARRY_OPENAI_API_KEY", KEY)
    s = LLMSettings.from_env(samples=1)
    assert (s.base_url, s.model, s.key, s.samples) == ("http://127.0.0.1:9/v1", "m", KEY, 1) and KEY not in repr(s)
    with pytest.raises(InputError, match="samples"):
        LLMSettings.from_env(samples=0)
    with pytest.raises(InputError, match="DEVQUARRY_OPENAI_BASE_URL.*http://"):
        LLMSettings.from_env(base_url="127.0.0.1:8080/v1")

    cb = load_codebook("chen2025-so-api")
    threads, examples = _frames(so, cb.id, 0)
    longest = threads.loc[threads.body_text.str.len().idxmax()]
    assert count_tokens(longest.body_text) > 200

    def script(p):  # a long rejected answer (more than max_tokens): its correction turn must fit too
        return "no idea " * 300 if p.title == longest.title and p.correction is None else keyword_answer(p)

    with LLMChatServer(script) as server:
        small = _settings(server, samples=1, context_tokens=1300, answer_tokens=100)
        out = llm_code(so, cb, threads, examples, small, policy=FAST)
        with pytest.raises(InputError, match="context-tokens"):
            estimate(cb, threads, examples, _settings(server, context_tokens=700))
    assert len(out) == 20 and out.attrs["rejected"] == 1 and len(server.requests) == 21
    for r in server.requests:
        msgs = r["body"]["messages"]
        assert sum(count_tokens(m["content"]) for m in msgs) + 100 <= 1300
    sent = next(
        r["body"]["messages"][1]["content"]
        for r in server.requests
        if f"Title: {longest.title}\nBody:" in r["body"]["messages"][1]["content"].split("Question to code:")[1]
    )
    assert sent.rstrip().endswith("Answer with the JSON object only.") and " ..." in sent.split("Question to code:")[1]


def test_answers_are_read_leniently_but_only_codes_of_the_asked_level_count():
    cb = load_codebook("chen2024-forum")
    _, subs = allowed_codes(cb, None)
    _, cats = allowed_codes(cb, 0)
    assert [c.id for c in cats] == list("ABCDEF") and len(subs) == 26
    read = lambda text, codes=subs, name="subcategory": parse_answer(text, cb, codes, name)  # noqa: E731
    assert read('{"code": "b.2", "secondary": ["C.1", "Q.7", "B.2", "none"]}') == ("B.2", ("C.1",))
    assert read('The answer: {"result": {"code": "Error Messages in API Calling"}} done') == ("B.2", ())
    assert read('```\n{"code": null}\n```') == (IRRELEVANT, ())
    assert read('{"code": "A.1", "secondary": "F.3"}') == ("A.1", ("F.3",))
    for bad, why in [
        ('{"code": "B"}', "not a subcategory code"),
        ('{"code": "G.1"}', "not a code of this codebook"),
        ('{"code": ["B.1"]}', "must be one code id"),
        ('{"codes": "B.1"}', 'no JSON object with a "code"'),
        ("B.1", 'no JSON object with a "code"'),
    ]:
        with pytest.raises(Invalid, match=why):
            read(bad)
    assert parse_answer('{"code": "b"}', cb, cats, "category") == ("B", ())
    with pytest.raises(Invalid, match="not a category code"):
        parse_answer('{"code": "B.1"}', cb, cats, "category")
    so = load_codebook("chen2025-so-api")
    assert parse_answer('{"code": "Chat API"}', so, list(so.codes)) == ("chat", ())


def test_cli_classify_with_an_llm_prints_the_estimate_and_a_rerun_makes_no_call(tmp_path, shared):
    """`devquarry classify --method llm` as a user runs it: the estimate before any call, codes stored
    as a run with their votes, and the same command again answered from the store's cache."""
    from conftest import run_cli

    s = _store(tmp_path, shared, "so", n=12)
    s.close()
    db = tmp_path / "so.duckdb"
    with LLMChatServer() as server:
        env = {"DEVQUARRY_OPENAI_BASE_URL": server.base, "DEVQUARRY_CHAT_MODEL": "fake-model", "DEVQUARRY_OPENAI_API_KEY": KEY}
        args = ["classify", "--codebook", "chen2025-so-api", "--method", "llm", "--samples", "2", "--max-threads", "8"]
        first = run_cli(*args, "--json", db=db, env=env)
        assert first.returncode == 0, first.stderr
        assert "estimate: 8 threads, 16 calls to fake-model (0 answers cached)" in first.stderr
        calls = len(server.requests)
        assert calls >= 16
        second = run_cli(*args, "--json", db=db, env=env)
        assert second.returncode == 0 and "0 calls to fake-model (16 answers cached)" in second.stderr
        assert len(server.requests) == calls
    codes = pd.DataFrame(json.loads(first.stdout))
    assert codes.source_id.nunique() == 8 and (codes[codes["rank"] == 0].score > 0).all()
    assert pd.DataFrame(json.loads(second.stdout)).equals(codes)
    with Store(db, read_only=True) as s:
        stored = s.query("SELECT method, count(DISTINCT source_id) AS n FROM classification GROUP BY 1")
    assert stored.values.tolist() == [["llm", 8]]
    assert KEY not in first.stdout + first.stderr + second.stdout + second.stderr
