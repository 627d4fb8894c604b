"""The report's numbers and layout as a newcomer meets them (issue 11, items 2, 13, 14 and 15):
taxonomy shares rolled up to categories, copies merged in the most viewed threads, the monthly
chart's span, off-subject groups out of the per-code tables, fixes and LLM limits only with
support, and in Chromium at 1280 px no table text broken inside a word."""

import shutil

import pandas as pd
import pytest
from conftest import launch_chromium, needs_chromium, run_cli
from lxml import html as lxml_html

from devquarry import Store, build_report, ingest_discourse, ingest_github, ingest_table
from devquarry.classify import classify
from devquarry.labeling import import_labels
from devquarry.report import plots
from devquarry.report.data import MONTHLY_SQL, monthly_span, most_viewed, report_data, taxonomy_table

FORUM_MAP = "source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"
SO_MAP = "created_at=created_time,accepted_at=accepted_time,is_resolved=has_accepted_answer,score=votes,label=type"
FORUM_CATEGORIES = {"A": 298, "B": 249, "C": 181, "D": 173, "E": 99, "F": 38}
QUOTA_TITLE = 'OpenAI API error 429: "You exceeded your current quota, please check your plan and billing details"'

# Every word (a run of letters or digits) and every number (406,503 or 80.4%) of every visible table
# cell must lie on one line; wrapping between words, or after the punctuation of a long identifier, is fine.
UNBROKEN_JS = r"""
() => {
  const broken = [];
  const word = /\p{N}+(?:[.,]\p{N}+)*%?|[\p{L}\p{N}]+/gu;
  for (const cell of document.querySelectorAll('td, th')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.textContent.matchAll(word)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(m[0] + ' in <' + cell.tagName + '> ' + cell.textContent.slice(0, 60));
      }
    }
  }
  return broken;
}
"""
# Each table box: within the page, and its table either fits or the box scrolls sideways.
BOXES_JS = r"""
(selector) => Array.from(document.querySelectorAll(selector)).map(box => {
  const table = box.querySelector('table');
  return {right: box.getBoundingClientRect().right, client: box.clientWidth, table: table.getBoundingClientRect().width,
          overflow: getComputedStyle(box).overflowX};
})
"""


def _rows_after(doc, heading_text: str) -> list[list[str]]:
    """The body rows (cell texts) of the first table after the heading that starts with ``heading_text``."""
    heading = next(h for h in doc.iter("h2", "h3") if h.text_content().strip().startswith(heading_text))
    table = heading.xpath("following::table[1]")[0]
    return [[td.text_content().strip() for td in tr.xpath("./td")] for tr in table.xpath("./tbody/tr")]


@pytest.fixture
def forum_db(tmp_path, shared):
    path = shared / "openai-forum-labelled" / "annotated_questions.csv.gz"
    db = tmp_path / "forum.duckdb"
    with Store(db) as s:
        ingest_table(s, [path], source="openai-forum-labelled", mapping=FORUM_MAP)
        import_labels(
            s, path, "chen2024-forum", rater="paper", label_column="Label", source="openai-forum-labelled", id_column="ID"
        )
    return db


@pytest.fixture(scope="module")
def demo_data(demo_db):
    """``report_data`` of the session's demo store, once for this module."""
    with Store(demo_db, read_only=True) as s:
        return report_data(s)


@pytest.fixture(scope="module")
def demo_html(demo_db):
    return demo_db.with_name("report.html").read_text(encoding="utf-8")


def test_forum_hand_labels_roll_up_to_their_categories(forum_db, tmp_path):
    """Item 2: subcategory labels (A.1, C.2) count for their category, as `labels shares` counts them."""
    with Store(forum_db, read_only=True) as s:
        tax = taxonomy_table(s)
        path = build_report(s, tmp_path / "report.html")
    hand = {r["code"]: r["hand"] for r in tax["rows"]}
    assert hand == FORUM_CATEGORIES
    assert sum(r["hand_share"] for r in tax["rows"]) == pytest.approx(1.0)
    rows = _rows_after(lxml_html.fromstring(path.read_text(encoding="utf-8")), "Challenge categories")
    in_html = {r[0].split(":")[0]: int(r[3].replace(",", "")) for r in rows}
    assert in_html == FORUM_CATEGORIES
    assert rows[0][4] == "28.7%"  # A: 298 of 1,038
    proc = run_cli("tables", "--format", "csv", "--out", str(tmp_path / "tables"), db=forum_db)
    assert proc.returncode == 0, proc.stderr
    shares = pd.read_csv(tmp_path / "tables" / "taxonomy_shares.csv").set_index("code")
    assert shares.hand.to_dict() == FORUM_CATEGORIES


def test_most_viewed_lists_each_question_once(demo_db, demo_html):
    """Item 14: the export's five copies of the 406k-view quota question show as one row."""
    with Store(demo_db, read_only=True) as s:
        top = most_viewed(s, 5)
    assert top.url.is_unique and top.title.is_unique and len(top) == 5
    assert (top.title == QUOTA_TITLE).sum() == 1 and top.views.max() == 406_503
    rows = _rows_after(lxml_html.fromstring(demo_html), "Most viewed threads")
    titles = [r[1] for r in rows]
    assert len(rows) == 5 and len(set(titles)) == 5 and titles.count(QUOTA_TITLE) == 1
    links = lxml_html.fromstring(demo_html).xpath("//h2[@id='top']/following::table[1]//a/@href")
    assert len(links) == len(set(links)) == 5


def test_monthly_chart_covers_the_bulk_and_says_what_it_leaves_out(demo_db, demo_html):
    """Item 14: two early questions (2010, 2017) no longer stretch the axis over a decade."""
    with Store(demo_db, read_only=True) as s:
        monthly, note = monthly_span(s.query(MONTHLY_SQL))
    start = pd.Timestamp("2021-05-01")  # the last unbroken run of months begins here
    assert note["start"] == start and note["left_out"] == 20 and note["first"] == pd.Timestamp("2010-08-01")
    assert note["left_out_share"] < 0.01 and monthly.threads.sum() + 20 == note["threads"] == 4081
    # Every month of the span is a point (zeros included), so no line bridges an empty month.
    months = pd.date_range(monthly.month.min(), monthly.month.max(), freq="MS")
    assert list(monthly.month) == list(months)
    fig = plots.threads_per_month(monthly, note)
    assert min(pd.Timestamp(x) for x in fig.data[0].x) == start
    assert pd.Timestamp(fig.layout.xaxis.range[0]) >= start - pd.Timedelta(days=15)
    assert "Left out: 20 threads (0.5%) created before 2021-05, the first in 2010-08" in fig.layout.title.text
    assert "Left out: 20 threads (0.5%) created before 2021-05" in demo_html


def test_off_subject_groups_stay_out_of_the_per_code_tables(demo_data, demo_html):
    """Item 14: threads the relevance coder set aside are no API category to measure or trend."""
    for name in ("difficulty_by_group", "trends", "series"):
        assert not demo_data[name].group.isin(["irrelevant", "unclassified"]).any(), name
    assert demo_data["left_out"]["irrelevant"] > 1500
    doc = lxml_html.fromstring(demo_html)
    for heading in ("Trend per code", "Per code of"):
        groups = [r[0] for r in _rows_after(doc, heading)]
        assert "chat" in groups and "irrelevant" not in groups and "unclassified" not in groups
    assert f"{demo_data['left_out']['irrelevant']:,} threads coded irrelevant" in " ".join(doc.text_content().split())


def test_fixes_and_limits_need_support(demo_data, demo_html):
    """Item 15: the quota and billing topic gets neither prompt engineering nor context limits, and
    a topic shows a fix only when the codes of half its threads map to it."""
    topics = demo_data["topics"]
    quota = topics[topics.keywords.map(lambda k: "quota" in list(k) and "billing" in list(k))]
    assert len(quota) == 1
    hot = demo_data["topic_hotspots"].set_index("group")
    row = hot.loc[f"{quota.topic_id.iloc[0]}: {quota.label.iloc[0]}"]
    assert row.fix != "prompt-engineering" and row.limit != "context-limits"
    with_fix = hot[hot.fix.notna()]
    assert len(with_fix) and (with_fix.fix_support >= 0.5).all()
    assert (hot[hot.fix.isna()].fix_support.fillna(0) < 0.5).all()
    # Limits only on strong evidence: at least 10% of the threads name one.
    assert (hot[hot.limit.notna()].limit_share >= 0.10).all()
    assert "no fix suggested" in demo_html
    # The code groups keep their own mapping (a code's fix is its playbook entry).
    codes = demo_data["hotspots"].set_index("group")
    assert codes.loc["embeddings", "fix"] == "rag" and codes.loc["audio", "fix"] == "provider"


def test_value_labels_clear_the_error_bars(demo_data):
    """Item 13: each share's label sits right of its interval's upper end, not on the bar under it."""
    m = demo_data["difficulty_by_group"]
    fig = plots.unresolved_by_group(m)
    bars, labels = fig.data[0], fig.data[1]
    assert bars.text is None and labels.mode == "text"
    rows = m[m.group != "(all)"].set_index("group")
    for group, x, text in zip(labels.y, labels.x, labels.text):
        assert x > rows.loc[group, "pct_unresolved_hi"] * 100
        assert text.startswith(f"{rows.loc[group, 'pct_unresolved']:.1%}")
    assert fig.layout.xaxis.range[1] > 100  # room for the labels right of 100%


@needs_chromium
def test_demo_report_at_1280_px(demo_db, tmp_path_factory):
    """Item 13 in the browser: no word or number of a table cell broken across lines, every nav link
    leads to a section, nothing wider than the page; the screenshot is kept for people to look at."""
    from playwright.sync_api import sync_playwright

    shots = tmp_path_factory.mktemp("screenshots")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(demo_db.with_name("report.html").as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate(UNBROKEN_JS)
        targets = page.evaluate("() => Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href').slice(1))")
        missing = page.evaluate("(ids) => ids.filter(id => !document.getElementById(id))", targets)
        page_width = page.evaluate("() => document.documentElement.scrollWidth")
        boxes = page.evaluate(BOXES_JS, ".scroll")
        page.screenshot(path=str(shots / "report-1280.png"), full_page=True)
        browser.close()
    shutil.copy(shots / "report-1280.png", "/tmp/report-1280.png")
    assert broken == []
    assert {"overview", "difficulty", "top", "hotspots", "topics", "methods"} <= set(targets) and missing == []
    assert "platforms" not in targets  # one source: no platforms section, so no link to one
    assert page_width <= 1280
    assert boxes and all(b["right"] <= 1280 and (b["table"] <= b["client"] + 1 or b["overflow"] == "auto") for b in boxes)


@pytest.fixture(scope="module")
def platforms_db(tmp_path_factory):
    """Five sources coded into the API categories (zero-shot, LSA: fast), for a wide platforms table."""
    from conftest import SHARED

    if not SHARED.is_dir():
        pytest.skip("real corpora not found")
    db = tmp_path_factory.mktemp("platforms") / "p.duckdb"
    vendors = SHARED / "github-issues-llm-vendors"
    with Store(db) as s:
        ingest_table(
            s, [SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz"], source="stackoverflow", mapping=SO_MAP
        )
        ingest_discourse(s, [SHARED / "discourse-openai-forum" / "topics_with_posts.json"])
        ingest_github(
            s,
            [
                vendors / "OpenAI_openai-python.csv",
                vendors / "Gemini_generative-ai-android.csv",
                vendors / "Llama_llama-stack-apps.csv",
            ],
        )
        classify(s, "chen2025-so-api", method="zero-shot", embedding="lsa")
        build_report(s, db.with_name("report.html"))
    return db


@needs_chromium
def test_platforms_table_fits_or_scrolls_at_1280_px(platforms_db):
    """Item 13: the platforms table of a five-source store stays in its box, its source names whole words."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(platforms_db.with_name("report.html").as_uri())
        page.wait_for_load_state("load")
        headers = page.locator("#platforms thead tr").first.locator("th").all_inner_texts()
        broken = page.evaluate(UNBROKEN_JS)
        boxes = page.evaluate(BOXES_JS, "#platforms .scroll")
        page_width = page.evaluate("() => document.documentElement.scrollWidth")
        missing = page.evaluate(
            "() => Array.from(document.querySelectorAll('nav a'))"
            ".map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id))"
        )
        browser.close()
    assert len(headers) == 6 and "github:openai/openai-python" in [h.replace("\n", "") for h in headers]
    assert broken == []
    assert len(boxes) == 1 and boxes[0]["right"] <= 1280
    assert boxes[0]["table"] <= boxes[0]["client"] + 1 or boxes[0]["overflow"] == "auto"
    assert page_width <= 1280 and missing == []


def test_report_of_a_store_whose_only_period_is_partial(tmp_path):
    """Two threads in one (partial) month: trends has no series, yet every column the report reads."""
    import devquarry as dq

    sheet = tmp_path / "two.csv"
    sheet.write_text("id,title,created_at\n1,rate limit error,2024-01-01\n2,embeddings question,2024-01-20\n")
    with dq.Store(tmp_path / "two.duckdb") as s:
        dq.ingest_table(s, [sheet], source="two")
        t = dq.trends(s, "source")
        assert t.threads.tolist() == [0] and t.partial_dropped.tolist() == [2]
        assert {"first_period", "last_period"} <= set(t.columns) and t.first_period.isna().all()
        out = dq.build_report(s, tmp_path / "r.html")
    assert "two" in out.read_text()
