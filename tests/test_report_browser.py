"""The report in a real browser (Debian's Chromium driven by Playwright), and its figures as files."""

import pandas as pd
import pytest
from conftest import copy_store, launch_chromium, needs_chromium, run_cli
from PIL import Image

from devquarry import Store, build_report, ingest_discourse, ingest_table

EVIL_TITLE = '<script>alert("x")</script> Why does <img src=x onerror=alert(1)> break my RAG?'


def _store(tmp_path, shared, so_db, labels: bool):
    """The Stack Overflow questions (with the study's hand labels, or grouped by forum category
    without them), the forum topics, and hostile posts in one store."""
    evil = tmp_path / "evil.csv"
    rows = [
        {
            "url": f"https://example.org/t/{i}",
            "title": f"how do I cite sources {i}",
            "body": "plain",
            "views": i,
            "category": "rag" if i % 3 else "prompts",
            "resolved": i % 2 == 0,
            "created_at": f"2024-0{1 + i % 9}-01",
        }
        for i in range(14)
    ]
    rows.append(
        {
            "url": "https://example.org/t/evil",
            "title": EVIL_TITLE,
            "body": "<script>document.title='pwned'</script>",
            "views": 10_000,
            "category": "rag",
            "resolved": False,
            "created_at": "2024-05-05",
        }
    )
    pd.DataFrame(rows).to_csv(evil, index=False)
    db = copy_store(so_db, tmp_path)  # the Stack Overflow questions, with or without their labels
    with Store(db) as s:
        ingest_discourse(s, [shared / "discourse-openai-forum" / "topics_with_posts.json"])
        ingest_table(s, [evil], source="evil-forum", mapping="is_resolved=resolved")
        if not labels:
            from devquarry.topics import fit_topics

            fit_topics(s, themes=4)
    return db


@pytest.fixture
def report_store(tmp_path, shared, so_labelled_db):
    return _store(tmp_path, shared, so_labelled_db, labels=True)


@pytest.fixture
def category_store(tmp_path, shared, so_db):
    return _store(tmp_path, shared, so_db, labels=False)


@needs_chromium
def test_report_in_headless_chromium(tmp_path, category_store):
    from playwright.sync_api import sync_playwright

    with Store(category_store, read_only=True) as s:
        path = build_report(s, tmp_path / "report.html")
    html = path.read_text()
    assert "<script>alert" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    problems, dialogs = [], []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on(
            "request",
            lambda r: problems.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:", "blob:")) else None,
        )
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        # Every figure drew its SVG; the hostile title is on the page as text, its script never ran.
        n_figures = page.locator("div.figure").count()
        assert n_figures >= 6
        assert page.locator("div.figure .main-svg").count() >= n_figures
        assert EVIL_TITLE in page.locator("#hotspots").inner_text()
        # Each hotspot example links its closest resolved threads (the ask index).
        assert page.locator("#hotspots a.similar").count() >= 3
        assert page.title() != "pwned"
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == [] and dialogs == []
    img = Image.open(shot)
    assert img.width == 1280 and img.height > 5000
    colours = img.convert("RGB").resize((64, 256)).getcolors(64 * 256)
    assert len(colours) > 200  # text, tables and plots, not a blank page


@pytest.mark.slow
@needs_chromium
def test_tables_and_figures_for_papers(tmp_path, report_store):
    out = tmp_path / "tables"
    for fmt in ("csv", "markdown", "latex"):
        proc = run_cli("tables", "--format", fmt, "--out", str(out), db=report_store)
        assert proc.returncode == 0, proc.stderr
    diff = pd.read_csv(out / "difficulty_by_code.csv").set_index("group")
    assert diff.loc["gpt-actions", "pct_unresolved"] > diff.loc["(all)", "pct_unresolved"]
    assert "| gpt-actions" in (out / "difficulty_by_code.md").read_text()
    tex = (out / "hotspots.tex").read_text()
    assert "\\begin{tabular}" in tex and "pct\\_unresolved" in tex and "NaN" not in tex  # escaped for LaTeX
    assert (out / "taxonomy_shares.csv").exists() and (out / "trends.csv").exists()
    proc = run_cli("tables", "--out", str(out), "--figures", "svg", db=report_store)
    assert proc.returncode == 0, proc.stderr
    svg = (out / "unresolved_by_group.svg").read_text()
    assert svg.lstrip().startswith("<svg") and "gpt-actions" in svg
    proc = run_cli("tables", "--out", str(out), "--figures", "png", db=report_store)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out / "hotspots.png").size[0] == 2000
    bad = run_cli("tables", "--format", "docx", "--out", str(out), db=report_store)
    assert bad.returncode == 2 and "docx" in bad.stderr
