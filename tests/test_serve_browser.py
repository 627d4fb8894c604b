"""The workbench in a real browser (Debian's Chromium driven by Playwright) against the real
`devquarry serve` process: coding by keyboard, two raters at once, a SIGKILL mid-session,
hostile posts, the token; no console error, no request off 127.0.0.1, a screenshot of each page."""

from __future__ import annotations

import pytest
from conftest import launch_chromium, needs_chromium
from serve_fixtures import CODEBOOK, EVIL_TITLE, Server, private_copy, serve_store

from devquarry import Store
from devquarry.labeling import agreement

pytestmark = needs_chromium
pytest.importorskip("starlette")

QUEUE = f"/code?codebook={CODEBOOK}&source=stackoverflow"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return serve_store(tmp_path_factory)


class Watch:
    """A browser context whose pages report console errors, page errors, dialogs and any request
    that is not to the workbench."""

    def __init__(self, browser, base: str) -> None:
        self.problems, self.dialogs = [], []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base)
        self.base = base
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: None if r.url.startswith((base, "data:")) else self.problems.append(f"fetched {r.url}"))

    def close(self) -> None:
        self.context.close()
        assert self.problems == [] and self.dialogs == []


def _wait_done(page, n: int) -> None:
    page.wait_for_function("n => (document.getElementById('done') || {}).textContent === n", arg=str(n))


def _code_one(page, keys: list[str]) -> str:
    """Press the keys for the thread shown; return its id once the server acknowledged (the next thread shows)."""
    tid = page.locator("#card").get_attribute("data-source-id")
    done = int(page.locator("#done").inner_text())
    for k in keys:
        page.keyboard.press(k)
    _wait_done(page, done + 1)
    return tid


def test_code_30_by_keyboard_then_reload_and_see_them(browser, db, tmp_path):
    with Server(private_copy(db, tmp_path)) as server:
        w = Watch(browser, server.url)
        page = w.page
        page.goto(f"{QUEUE}&rater=kb&n=30")
        page.screenshot(path=str(tmp_path / "code.png"), full_page=True)
        coded = {}
        for i in range(30):
            if i % 10 == 9:
                coded[_code_one(page, ["x"])] = "irrelevant"
            elif i % 7 == 3:
                coded[_code_one(page, ["2", "1", "u", "Enter"])] = "image,chat"  # two codes, unsure
            else:
                coded[_code_one(page, ["1", "Enter"])] = "chat"
        page.reload()
        assert page.locator("#finished").inner_text().startswith("Queue done: 30 of 30")
        page.goto("/threads?codebook=chen2025-so-api&rater=kb&hand=chat")
        assert int(page.locator("#total").inner_text()) == sum(v.startswith(("chat", "image")) for v in coded.values())
        page.screenshot(path=str(tmp_path / "threads.png"), full_page=True)
        # a two-level codebook: a category key offers its subcategories; Esc keeps the category alone
        page.goto("/code?codebook=chen2024-forum&source=stackoverflow&rater=kb2&n=3")
        sub = _code_one(page, ["2", "3", "Enter"])  # B, then its third subcategory
        _code_one(page, ["1", "Escape", "Enter"])  # A alone
        # undo by keyboard: the last label is removed and its thread comes back
        second = page.locator("#undo-form input[name=last]").get_attribute("value").split("|", 1)[1]
        page.keyboard.press("z")
        _wait_done(page, 1)
        assert (
            page.locator("#card").get_attribute("data-source-id") == second and "undone" in page.locator("#message").inner_text()
        )
        page.reload()  # the address follows the queue: a reload shows the same thread
        assert page.locator("#card").get_attribute("data-source-id") == second
        w.close()
    with Store(server.db, read_only=True) as s:
        rows = s.query(
            "SELECT source_id, string_agg(CASE WHEN status = 'irrelevant' THEN 'irrelevant' ELSE code END, ',' ORDER BY rank) AS codes, "
            "bool_or(uncertain) AS unsure FROM label WHERE rater = 'kb' GROUP BY 1"
        )
        forum = s.query("SELECT source_id, code, level FROM label WHERE rater = 'kb2'")
    assert dict(zip(rows.source_id, rows.codes)) == coded
    assert rows.unsure.sum() == sum(v == "image,chat" for v in coded.values())
    assert forum.to_dict("records") == [{"source_id": sub, "code": "B.3", "level": 1}]


def test_two_raters_at_once_and_the_kappa_shown_is_devquarrys(browser, db, tmp_path):
    with Server(private_copy(db, tmp_path)) as server:
        a, b = Watch(browser, server.url), Watch(browser, server.url)
        a.page.goto(f"{QUEUE}&rater=ana&n=20")
        b.page.goto(f"{QUEUE}&rater=ben&n=20")
        for i in range(20):
            key_a = "1" if i % 3 else "2"
            key_b = key_a if i % 5 else "3"
            ta = _code_one(a.page, [key_a, "Enter"])
            tb = _code_one(b.page, [key_b, "Enter"])
            assert ta == tb
        b.page.goto(f"/agree?codebook={CODEBOOK}&raters=ana,ben")
        shown = float(b.page.locator(".kappa-value").get_attribute("data-kappa"))
        text = b.page.locator(".kappa-value").inner_text()
        b.page.screenshot(path=str(tmp_path / "agree.png"), full_page=True)
        a.page.goto(f"/adjudicate?codebook={CODEBOOK}&raters=ana,ben")
        a.page.screenshot(path=str(tmp_path / "adjudicate.png"), full_page=True)
        a.close()
        b.close()
    with Store(server.db, read_only=True) as s:
        assert s.con.execute("SELECT count(*) FROM label WHERE rater IN ('ana', 'ben')").fetchone()[0] == 40
        expected = agreement(s, CODEBOOK, 0, raters=["ana", "ben"])
    assert expected["threads"] == 20 and shown == pytest.approx(expected["kappa"], abs=1e-12)
    assert text == f"{expected['kappa']:.3f}"


def test_sigkill_mid_session_keeps_every_acknowledged_label(browser, db, tmp_path):
    copy = private_copy(db, tmp_path)
    server = Server(copy).start()
    w = Watch(browser, server.url)
    w.page.goto(f"{QUEUE}&rater=kill&n=20")
    acked = [_code_one(w.page, ["1", "Enter"]) for _ in range(8)]
    server.kill()
    w.context.close()
    with Server(copy) as again:
        w2 = Watch(browser, again.url)
        w2.page.goto(f"{QUEUE}&rater=kill&n=20")
        assert w2.page.locator("#done").inner_text() == "8"
        w2.close()
    with Store(copy, read_only=True) as s:
        held = {r[0] for r in s.con.execute("SELECT source_id FROM label WHERE rater = 'kill'").fetchall()}
    assert held == set(acked)


def test_hostile_posts_stay_text(browser, db, tmp_path):
    with Server(private_copy(db, tmp_path)) as server:
        w = Watch(browser, server.url)
        page = w.page
        page.goto("/threads?source=evil-forum")
        assert EVIL_TITLE in page.locator("#threads").inner_text()
        page.get_by_text(EVIL_TITLE).click()
        page.wait_for_load_state("load")
        assert page.locator("#title").inner_text() == EVIL_TITLE
        assert "<script>alert('b')</script>" in page.locator("#body").inner_text()
        assert page.locator("a[href^='javascript' i]").count() == 0 and page.locator("img").count() == 0
        page.screenshot(path=str(tmp_path / "thread.png"), full_page=True)
        page.goto(f"/code?codebook={CODEBOOK}&rater=ev&n=6&source=evil-forum&order=newest")
        assert page.locator("img").count() == 0 and page.locator("a[href^='javascript' i]").count() == 0
        for path, name in (("/", "overview"), ("/hotspots", "hotspots"), ("/topics", "topics"), ("/ask", "ask")):
            page.goto(path)
            page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        w.close()


def test_non_loopback_bind_needs_the_token(browser, db, tmp_path):
    token = "a-token-for-the-test-0123456789"
    with Server(private_copy(db, tmp_path), "--token", token, host="0.0.0.0") as server:
        w = Watch(browser, server.url)
        r = w.page.goto("/threads")
        assert r.status == 403 and "needs its token" in w.page.content()
        r = w.page.goto(f"/threads?token={token}")
        assert r.status == 200 and "token=" not in w.page.url
        r = w.page.goto("/")  # the cookie carries the token from now on
        assert r.status == 200
        # the refused requests are the only errors Chromium logs (as failed resources)
        refused = [p for p in w.problems if "403 (Forbidden)" in p]
        assert refused  # the page, and the favicon Chromium asks for beside a plain-text answer
        w.problems = [p for p in w.problems if p not in refused]
        w.close()
