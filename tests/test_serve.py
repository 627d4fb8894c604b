"""The workbench over a real store, in process (Starlette's TestClient) and as the real
`devquarry serve` process: pages, facets, label writes as `labels import` writes them, agreement,
and the guards (token, CSRF, Host, read-only, the store lock)."""

from __future__ import annotations

import re
import warnings

import pandas as pd
import pytest
from conftest import run_cli
from serve_fixtures import CODEBOOK, EVIL_TITLE, Server, private_copy, serve_store

from devquarry import Store
from devquarry.errors import InputError
from devquarry.labeling import agreement

pytest.importorskip("starlette")
with warnings.catch_warnings():  # Starlette asks for httpx2 in place of httpx; both drive the app alike
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from devquarry.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return private_copy(serve_store(tmp_path_factory), tmp_path_factory.mktemp("serve-inproc"))


@pytest.fixture(scope="module")
def client(db):
    with TestClient(create_app(db), base_url="http://127.0.0.1") as c:
        yield c


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _total(html: str) -> int:
    return int(re.search(r'id="total">([\d,]+)<', html).group(1).replace(",", ""))


def _count(client, sql: str, params=()) -> int:
    store = client.app.state.wb.store
    return store.con.execute(sql, list(params)).fetchone()[0]


def test_pages_answer_and_facets_count_what_the_store_holds(client):
    r = client.get("/")
    assert r.status_code == 200 and "stackoverflow" in r.text and "4,081" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    for path in ("/topics", "/hotspots", "/agree", "/code", "/static/code.js", "/static/app.css"):
        assert client.get(path).status_code == 200, path
    assert _total(client.get("/threads").text) == _count(client, "SELECT count(*) FROM thread")
    unresolved = _count(
        client, "SELECT count(*) FROM threads WHERE source = 'stackoverflow' AND NOT coalesce(is_resolved, false)"
    )
    assert _total(client.get("/threads?source=stackoverflow&resolved=no").text) == unresolved
    chat = _count(client, "SELECT count(DISTINCT source_id) FROM label WHERE code = 'chat'")
    assert chat > 100 and _total(client.get(f"/threads?codebook={CODEBOOK}&hand=chat").text) == chat
    hits = _count(client, "SELECT count(*) FROM thread WHERE title ILIKE '%embedding%'")
    assert _total(client.get("/threads?q=embedding").text) == hits > 0
    # 100% is not a wildcard: a search for it finds titles holding it, not every title
    assert _total(client.get("/threads?q=100%25").text) == _count(
        client, "SELECT count(*) FROM thread WHERE contains(title, '100%')"
    )
    dated = _count(client, "SELECT count(*) FROM thread WHERE created_at >= '2023-06-01' AND created_at < '2023-07-01'")
    assert _total(client.get("/threads?since=2023-06-01&until=2023-06-30").text) == dated > 0
    # The overview's figures for a period: its (all) row counts the same threads (each once).
    window = client.get("/?since=2023-06-01&until=2023-06-30").text
    shown = re.search(r'<td>\(all\)</td><td class="n">([\d,]+)<', window).group(1)
    assert int(shown.replace(",", "")) == dated and 'name="since" value="2023-06-01"' in window
    assert "not a date: &#39;June&#39; (use YYYY-MM-DD)" in client.get("/?since=June").text  # said on the page
    first, second = client.get("/threads").text, client.get("/threads?offset=50").text
    ids = lambda html: set(re.findall(r"/thread\?source=[^&]+&amp;id=([^\"]+)\"", html))  # noqa: E731
    assert len(ids(first)) == 50 and not ids(first) & ids(second)
    bad = client.get("/threads?offset=abc")
    assert bad.status_code == 400 and "offset must be a whole number" in bad.text


def test_thread_page_shows_question_accepted_answer_and_who_coded(client):
    sid = client.app.state.wb.store.con.execute(
        "SELECT source, source_id FROM threads WHERE source LIKE 'stackexchange:%' AND accepted_reply_id IS NOT NULL LIMIT 1"
    ).fetchone()
    r = client.get("/thread", params={"source": sid[0], "id": sid[1]})
    assert r.status_code == 200 and "accepted answer" in r.text
    so = client.app.state.wb.store.con.execute(
        "SELECT source_id, code FROM label WHERE rater = 'study' AND status = 'coded' LIMIT 1"
    ).fetchone()
    page = client.get("/thread", params={"source": "stackoverflow", "id": so[0]}).text
    row = re.search(r'<table id="labels">.*?</table>', page, re.S).group(0)
    assert f"<td>study</td><td>{so[1]}</td>" in row
    assert client.get("/thread", params={"source": "nope", "id": "1"}).status_code == 404


def test_hostile_text_is_escaped_and_javascript_urls_are_not_links(client):
    page = client.get("/threads?source=evil-forum").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in page
    sid = client.app.state.wb.store.con.execute(
        "SELECT source_id FROM thread WHERE source = 'evil-forum' AND url LIKE 'javascript:%'"
    ).fetchone()[0]
    page = client.get("/thread", params={"source": "evil-forum", "id": sid}).text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert (
        'href="javascript:' not in page.replace(" ", "") and 'class="url-text">javascript:alert(document.cookie)</span>' in page
    )


def _code(client, rater: str, code: str | None, **extra) -> str:
    """Code the next thread of the shared 10-thread queue; returns its id."""
    page = client.get("/code", params={"codebook": CODEBOOK, "rater": rater, "n": 10, "source": "stackoverflow"}).text
    tid = re.search(r'name="thread_id" value="([^"]+)"', page).group(1)
    form = {
        "csrf": _csrf(page),
        "codebook": CODEBOOK,
        "rater": rater,
        "n": "10",
        "source": "stackoverflow",
        "thread_source": "stackoverflow",
        "thread_id": tid,
        **extra,
    }
    if code:
        form["code"] = code
    r = client.post("/code/label", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    return tid


def test_labels_are_label_rows_and_agreement_is_devquarrys(client):
    codes = ["chat", "image", "chat", "embeddings", "audio", "chat", "image", "code", "chat", "chat"]
    other = ["chat", "image", "image", "embeddings", "audio", "chat", "chat", "code", "chat", "others"]
    a_ids = [_code(client, "ana", c) for c in codes]
    b_ids = [_code(client, "ben", c) for c in other]
    assert a_ids == b_ids  # one queue: the same threads, in the same order, for both raters
    done = client.get("/code", params={"codebook": CODEBOOK, "rater": "ana", "n": 10, "source": "stackoverflow"}).text
    assert 'id="finished"' in done and "10 of 10" in done
    assert _total(client.get("/threads", params={"codebook": CODEBOOK, "rater": "ana"}).text) == 10
    store = client.app.state.wb.store
    rows = store.query("SELECT * FROM label WHERE rater IN ('ana', 'ben') ORDER BY rater, source_id")
    assert len(rows) == 20 and set(rows["rank"]) == {0} and set(rows.level) == {0} and set(rows.status) == {"coded"}
    assert store.query(
        "SELECT command FROM run WHERE run_id IN (SELECT run_id FROM label WHERE rater = 'ana')"
    ).command.tolist() == ["labels serve"]
    expected = agreement(store, CODEBOOK, 0, raters=["ana", "ben"])
    page = client.get("/agree", params={"codebook": CODEBOOK, "raters": "ana,ben"}).text
    shown = float(re.search(r'data-kappa="([^"]+)"', page).group(1))
    assert shown == pytest.approx(expected["kappa"], abs=1e-12) and 0 < shown < 1
    assert f"{expected['threads']} threads" in page and "95% interval" in page
    # adjudication: the three disagreements, each settled as rater consensus
    adj = client.get("/adjudicate", params={"codebook": CODEBOOK, "raters": "ana,ben"}).text
    pending = re.findall(r'name="source_id" value="([^"]+)"', adj)
    assert len(pending) == 3
    for sid in pending:
        client.post(
            "/adjudicate",
            data={
                "csrf": _csrf(adj),
                "codebook": CODEBOOK,
                "raters": "ana,ben",
                "source": "stackoverflow",
                "source_id": sid,
                "code": "chat",
            },
            follow_redirects=False,
        )
    assert store.con.execute("SELECT count(*) FROM label WHERE rater = 'consensus' AND code = 'chat'").fetchone()[0] == 3
    assert "nothing left to adjudicate" in client.get("/adjudicate", params={"codebook": CODEBOOK, "raters": "ana,ben"}).text


def test_several_codes_unsure_note_irrelevant_and_undo(client):
    tid = _code(client, "cy", "chat,embeddings", unsure="1", note="both <b>really</b>")
    store = client.app.state.wb.store
    rows = store.query("SELECT code, rank, uncertain FROM label WHERE rater = 'cy' ORDER BY rank")
    assert rows.code.tolist() == ["chat", "embeddings"] and rows["rank"].tolist() == [0, 1] and rows.uncertain.all()
    page = client.get("/thread", params={"source": "stackoverflow", "id": tid}).text
    assert "cy: both &lt;b&gt;really&lt;/b&gt;" in page
    tid2 = _code(client, "cy", None, irrelevant="1")
    assert store.query("SELECT code, status FROM label WHERE rater = 'cy' AND source_id = ?", [tid2]).to_dict("records") == [
        {"code": "", "status": "irrelevant"}
    ]
    page = client.get("/code", params={"codebook": CODEBOOK, "rater": "cy", "n": 10, "source": "stackoverflow"}).text
    r = client.post(
        "/code/undo",
        data={
            "csrf": _csrf(page),
            "codebook": CODEBOOK,
            "rater": "cy",
            "n": "10",
            "source": "stackoverflow",
            "last": f"stackoverflow|{tid2}",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert store.con.execute("SELECT count(*) FROM label WHERE rater = 'cy' AND source_id = ?", [tid2]).fetchone()[0] == 0
    nxt = client.get(r.headers["location"]).text
    assert f'name="thread_id" value="{tid2}"' in nxt and "undone" in nxt  # the undone thread comes back first
    bad = client.post(
        "/code/label",
        data={
            "csrf": _csrf(page),
            "codebook": CODEBOOK,
            "rater": "cy",
            "thread_source": "stackoverflow",
            "thread_id": tid2,
            "code": "nope",
        },
    )
    assert bad.status_code == 400 and "code &#39;nope&#39; is not in codebook" in bad.text


def test_guards_csrf_host_origin_read_only_and_token(client, db):
    page = client.get("/code", params={"codebook": CODEBOOK, "rater": "dee", "n": 3}).text
    tid = re.search(r'name="thread_id" value="([^"]+)"', page).group(1)
    form = {"codebook": CODEBOOK, "rater": "dee", "thread_source": "stackoverflow", "thread_id": tid, "code": "chat"}
    assert client.post("/code/label", data=form).status_code == 403  # no CSRF token
    assert client.post("/code/label", data={**form, "csrf": "forged"}).status_code == 403
    assert (
        client.post("/code/label", data={**form, "csrf": _csrf(page)}, headers={"origin": "http://evil.example"}).status_code
        == 403
    )
    assert client.get("/", headers={"host": "evil.example"}).status_code == 403  # DNS rebinding
    assert client.app.state.wb.store.con.execute("SELECT count(*) FROM label WHERE rater = 'dee'").fetchone()[0] == 0
    # a second app on the same store cannot open it while the first holds it: covered by the CLI test below
    client.app.state.wb.store.close()
    try:
        ro = create_app(db, read_only=True, token="t" * 20)
        with TestClient(ro, base_url="http://192.0.2.1") as c:
            assert c.get("/").status_code == 403
            r = c.get("/threads?token=" + "t" * 20 + "&q=rag", follow_redirects=False)
            assert (
                r.status_code == 303
                and r.headers["location"] == "/threads?q=rag"
                and "devquarry_token" in r.headers["set-cookie"]
            )
            assert c.get("/threads?q=rag").status_code == 200  # the cookie carries it now
            assert c.get("/", headers={"x-devquarry-token": "t" * 20}).status_code == 200
            assert c.post("/code/label", data={**form, "csrf": ro.state.csrf}).status_code == 403  # read-only
            assert c.get("/code", params={"codebook": CODEBOOK, "rater": "dee"}).status_code == 403
            assert "/code" not in re.findall(r"<nav>.*?</nav>", c.get("/").text, re.S)[0]
    finally:
        from devquarry import Store as S

        client.app.state.wb.store = S(db)


def test_cli_guards_and_the_store_in_use(tmp_path, db):
    r = run_cli("serve", "--host", "0.0.0.0", "--port", "1", db=db)
    assert r.returncode == 2 and "--token" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    missing = run_cli("serve", db=tmp_path / "missing.duckdb")
    assert missing.returncode == 2 and "no such store" in missing.stderr and not (tmp_path / "missing.duckdb").exists()
    copy = private_copy(db, tmp_path)
    with Server(copy) as server:
        busy = run_cli("labels", "import", "x.csv", "--codebook", CODEBOOK, db=copy)
        assert busy.returncode == 2 and len(busy.stderr.strip().splitlines()) == 1, busy.stderr
        assert f"in use by process {server.proc.pid}" in busy.stderr and "Traceback" not in busy.stderr
    with Store(copy, read_only=True) as s:  # and the store is whole afterwards
        assert s.con.execute("SELECT count(*) FROM thread").fetchone()[0] > 4000
    assert EVIL_TITLE  # the hostile rows travel with the store


def check_demo_workbench(db) -> None:
    """On a `devquarry demo` store: the overview's figures and hotspots, topics, and the coding
    modes: assisted shows the latest run's code and score, blind shows neither it nor other raters."""
    with TestClient(create_app(db), base_url="http://127.0.0.1") as c:
        store = c.app.state.wb.store
        overview = c.get("/").text
        hot = store.con.execute("SELECT count(DISTINCT code) FROM classification").fetchone()[0]
        assert hot > 3 and 'class="hot"' in overview and "gpt-actions" in overview
        topics = c.get("/topics").text
        assert (
            topics.count('href="/threads?topic=')
            == store.con.execute("SELECT count(*) FROM topic WHERE run_id = (SELECT max(run_id) FROM topic)").fetchone()[0]
        )
        q = {"codebook": CODEBOOK, "rater": "solo", "n": 5}
        assisted = c.get("/code", params={**q, "mode": "assisted"}).text
        tid = re.search(r'name="thread_id" value="([^"]+)"', assisted).group(1)
        code, score = store.con.execute(
            "SELECT code, score FROM classification WHERE source_id = ? AND run_id = (SELECT max(run_id) FROM classification) AND rank = 0",
            [tid],
        ).fetchone()
        assert f"Machine: <strong>{code}</strong> ({score:.2f})" in assisted
        blind = c.get("/code", params=q).text
        assert f'name="thread_id" value="{tid}"' in blind and 'id="suggestion"' not in blind and "study" not in blind


def test_demo_store_overview_topics_and_coding_modes(demo_copy):
    check_demo_workbench(demo_copy)


def test_an_active_learning_queue_starts_with_the_thread_the_coder_is_least_sure_of(db, tmp_path):
    from devquarry.active import pick

    copy = private_copy(db, tmp_path)
    with Store(copy) as s:  # 40 questions the study coded become unlabelled: the pool to pick from
        s.con.execute("""DELETE FROM label WHERE source = 'stackoverflow' AND source_id IN
            (SELECT source_id FROM thread WHERE source = 'stackoverflow' ORDER BY source_id LIMIT 40)""")
        expected = pick(s, CODEBOOK, 3, strategy="uncertainty", sources=["stackoverflow"])
    assert expected.attrs["strategy"] == "uncertainty" and expected.attrs["labels"] > 100
    with TestClient(create_app(copy), base_url="http://127.0.0.1") as c:
        params = {"codebook": CODEBOOK, "rater": "cy", "n": 3, "source": "stackoverflow", "order": "uncertainty"}
        page = c.get("/code", params=params).text
        shown = re.search(r'name="thread_id" value="([^"]+)"', page).group(1)
        assert '<span id="total">3</span>' in page
    # The same order as `devquarry sample --strategy uncertainty`: its first pick comes first.
    assert shown == expected.source_id.iloc[0]


def test_the_ask_page_drafts_an_answer_citing_the_threads_only_when_asked_by_post(db, tmp_path, monkeypatch):
    from chat_server import ChatServer

    from devquarry.ask import ask

    copy = private_copy(db, tmp_path)
    with Store(copy) as s:
        question = s.query(
            "SELECT title FROM threads WHERE source = 'stackoverflow' AND is_resolved ORDER BY views DESC LIMIT 1"
        ).title.iloc[0]
        ask(s, question, embedding="lsa")  # the index a user built: the page reuses it
    with ChatServer() as chat, TestClient(create_app(copy), base_url="http://127.0.0.1") as c:
        monkeypatch.setenv("DEVQUARRY_OPENAI_BASE_URL", chat.base)
        monkeypatch.setenv("DEVQUARRY_CHAT_MODEL", "local-test-model")
        monkeypatch.setenv("DEVQUARRY_OPENAI_API_KEY", "sk-serve-secret")
        page = c.get("/ask", params={"q": question}).text
        assert "Draft an answer with local-test-model" in page and not chat.requests  # a link never calls the model
        titles = re.findall(r'<li><a href="/thread\?[^"]*" class="thread">([^<]*)</a>', page)
        assert len(titles) == 5
        # Without the CSRF token the draft is refused and no request leaves.
        assert c.post("/ask", data={"q": question, "draft": "1"}).status_code == 403 and not chat.requests
        drafted = c.post("/ask", data={"csrf": _csrf(page), "q": question, "draft": "1"}).text
    assert len(chat.requests) == 1 and chat.requests[0]["auth"] == "Bearer sk-serve-secret"
    assert 'id="draft"' in drafted and "[1]" in drafted and "[9]" not in drafted  # a number naming no thread is dropped
    assert f"Cites [1] {titles[0]}; [2] {titles[1]}" in drafted
    assert "According to &#39;" in drafted  # the model's quotes are escaped like every other text


def test_a_label_sheet_opens_as_a_queue_in_its_own_order(db, tmp_path):
    copy = private_copy(db, tmp_path)
    with Store(copy, read_only=True) as s:
        picked = s.query("SELECT source, source_id FROM thread WHERE source = 'stackoverflow' ORDER BY source_id DESC LIMIT 4")
    sheet = tmp_path / "week1.csv"
    # A sheet as `devquarry sample --out` writes it (rows in the order the rater should see them),
    # plus a thread the store does not hold, which the queue skips.
    rows = [*picked.itertuples(index=False), ("stackoverflow", "no-such-thread")]
    pd.DataFrame(rows, columns=["source", "source_id"]).assign(label_cy="").to_csv(sheet, index=False)
    with TestClient(create_app(copy, sheets=[sheet]), base_url="http://127.0.0.1") as c:
        start = c.get("/code", params={"codebook": CODEBOOK}).text
        assert '<option value="sheet:week1">' in start
        page = c.get("/code", params={"codebook": CODEBOOK, "rater": "cy", "order": "sheet:week1", "n": 50}).text
        assert '<span id="total">4</span>' in page
        assert re.search(r'name="thread_id" value="([^"]+)"', page).group(1) == picked.source_id.iloc[0]
        missing = c.get("/code", params={"codebook": CODEBOOK, "rater": "cy", "order": "sheet:other"})
        assert missing.status_code == 400 and "sheet:week1" in missing.text
    bad = tmp_path / "bad.csv"
    bad.write_text("source,id\nstackoverflow,1\n")
    with pytest.raises(InputError, match="source_id") as err:
        create_app(copy, sheets=[bad])
    assert err.value.path == str(bad) and err.value.field == "source_id"
