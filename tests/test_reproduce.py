"""`devquarry reproduce STUDY` and `dq.reproduce` on the studies' own data: the forum study's
per-topic statistics (29,574 topics) beside its published reply bins, its hand labels beside its
category shares, the Stack Overflow study's hand labels beside its ranking; the report section and
the paper tables."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from conftest import FORUM_MAP, SHARED, run_cli
from test_distributions import STATS, cli, expected_counts, stats_db, topic_stats  # noqa: F401  (a fixture)

from devquarry import Store, ingest_table
from devquarry.errors import InputError
from devquarry.reproduce import reproduce
from devquarry.studies import list_studies, load_study

PAPER_BINS = [6_190, 9_545, 6_746, 3_766, 2_810]  # of 29,057 questions, arXiv 2408.05002


def test_reply_bins_beside_the_paper(stats_db):  # noqa: F811  (the fixture, by name)
    db, stats = stats_db, topic_stats()
    proc = run_cli("reproduce", "chen2024-forum", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    rows = pd.DataFrame(json.loads(proc.stdout))
    bins = rows[rows.figure == "replies-per-question"]
    assert bins["item"].tolist() == ["0", "1-2", "3-5", "6-10", ">10"]
    assert bins.published_count.tolist() == PAPER_BINS and bins.published_n.eq(29_057).all()
    assert bins.published.round(1).tolist() == [21.3, 32.8, 23.2, 13.0, 9.7]
    assert bins.our_count.tolist() == expected_counts(stats.reply_count) and bins.our_n.eq(29_574).all()
    assert bins.ours.round(1).tolist() == [21.4, 32.8, 23.2, 12.9, 9.6]
    assert (bins.difference.abs() <= 0.2).all() and bins.difference.round(2).tolist() == [0.10, -0.01, 0.02, -0.05, -0.06]
    assert (bins.ours_lo < bins.ours).all() and (bins.ours < bins.ours_hi).all()
    under3 = rows[rows.figure == "under-3-replies"].iloc[0]
    assert under3.published == 54 and round(under3.ours, 1) == 54.2 and under3.our_count == 16_042
    # What the file does not hold is said, not printed as a number.
    views = rows[rows.figure == "views-per-question"]
    assert len(views) == 7 and views.ours.isna().all() and views.missing.str.startswith("no view counts").all()
    assert views.published_count.tolist() == [3_962, 7_798, 4_274, 2_448, 1_637, 530, 426]
    shares = rows[rows.figure.isin(["category-shares", "subcategory-shares"])]
    assert len(shares) == 32 and shares.ours.isna().all() and shares.missing.str.startswith("no hand labels").all()
    accepted = rows[rows.figure == "accepted-answer"].iloc[0]
    assert accepted.published == 8.98 and accepted.missing.startswith("resolution unknown")  # not 0% accepted
    assert rows[rows.figure == "hours-to-first-reply"].missing.iloc[0].startswith("no first-reply times")


def test_reproduce_table_as_printed(stats_db, capsys):  # noqa: F811
    db = stats_db
    rc, out, _ = cli(capsys, "reproduce", "chen2024-forum", db=db)
    assert rc == 0
    line = next(x for x in out.splitlines() if "│ 0 " in x)
    for cell in ("replies-per-question", "21.3% (6,190)", "29,057", "21.4% (6,330)", "29,574", "+0.10 pts", "paper"):
        assert cell in line, (cell, line)
    assert "12.9% (3,819)" in out and "-0.05 pts" in out
    assert "no view counts: the store's sources give none" in out
    assert "(6 codes)" in out and "no hand labels or machine codes for chen2024-forum" in out
    rc, _, err = cli(capsys, "reproduce", "no-such-study", db=db)
    assert rc == 2 and "shipped: chen2024-forum, chen2025-so-api" in err
    rc, _, err = cli(capsys, "reproduce", "chen2024-forum", "--source", "forum-stat", db=db)
    assert rc == 2 and "no threads of source 'forum-stat'; this store's sources: forum-stats" in err


def test_category_shares_beside_the_paper(forum_labelled_db):
    with Store(forum_labelled_db, read_only=True) as s:
        df = reproduce(s, "chen2024-forum")
        first = s.query(
            "SELECT split_part(code, '.', 1) AS cat, count(*) AS n FROM label "
            "WHERE codebook = 'chen2024-forum' AND status = 'coded' AND rank = 0 GROUP BY 1"
        )
    cats = df[df.figure == "category-shares"].set_index("item")
    assert list(cats.index) == [
        "A: General Question",
        "B: API",
        "C: Generation and Understanding",
        "D: Non-functional Properties",
        "E: GPT Builder",
        "F: Prompt",
    ]
    assert cats.published.tolist() == [26.3, 22.9, 19.9, 15.4, 12.1, 3.4]  # the codebook's, not copied
    assert cats.published_n.eq(2_364).all() and cats.our_n.eq(1_038).all()
    assert cats.our_count.tolist() == [298, 249, 181, 173, 99, 38]
    assert cats.our_count.tolist() == first.set_index("cat").n.reindex(list("ABCDEF")).tolist()
    assert cats.difference.round(2).tolist() == [2.41, 1.09, -2.46, 1.27, -2.56, 0.26]
    assert df.attrs["codes_from"] == "hand labels (rater paper), each thread's primary code"
    sub = df[df.figure == "subcategory-shares"]
    assert len(sub) == 26 and sub.our_n.eq(880).all()  # 158 questions coded with a bare category
    assert sub.note.iloc[0] == "158 threads coded only with a category are left out at this level"
    accepted = df[df.figure == "accepted-answer"].iloc[0]
    assert accepted.our_count == 81 and accepted.our_n == 1_183  # the labelled sheet's Solved flag


def test_api_ranking_beside_the_paper_and_the_study_data(so_labelled_db):
    with Store(so_labelled_db, read_only=True) as s:
        df = reproduce(s, "chen2025-so-api")
    rank = df[df.figure == "hardest-categories"]
    assert rank["item"].str.split(":").str[0].tolist() == ["gpt-actions", "assistants", "audio"]
    assert rank.published.tolist() == [1, 2, 3] and rank.ours.tolist() == [1, 2, 3]
    assert rank.difference.eq(0).all() and rank.origin.eq("paper").all()
    # The study-data values shipped in the YAML are what pandas reads from the study's own file.
    with gzip.open(SHARED / "stackoverflow-openai-api" / "questions_labelled.csv.gz", "rt") as fh:
        raw = pd.read_csv(fh)
    codes = {c.source_values[0]: c.id for c in load_study_codebook().codes}
    raw["code"] = raw.type.astype(str).map(codes)
    truth = raw.groupby("code").agg(n=("url", "size"), count=("has_accepted_answer", lambda v: int((v == 0).sum())))
    per = df[df.figure == "unresolved-by-category"]
    assert per.origin.eq("study-data").all()
    for r in per.itertuples():
        code = r.item.split(":")[0]
        assert (r.published_count, r.published_n) == (truth.loc[code, "count"], truth.loc[code, "n"]), code
    # Ours merges the 8 copies the export repeats: 2,291 questions, not 2,299.
    every = df[df.figure == "unresolved-all"].iloc[0]
    assert (every.published_count, every.published_n) == (1_774, 2_299) and every.our_n == 2_291


def load_study_codebook():
    from devquarry.codebooks import load_codebook

    return load_codebook(load_study("chen2025-so-api").codebook)


@pytest.fixture(scope="module")
def small_forum(tmp_path_factory):
    """A cut of the labelled forum questions and of the topic statistics under forum source names:
    small enough for a quick report."""
    if not STATS.is_file():
        pytest.skip(f"forum topic statistics not found at {STATS}")
    from devquarry.labeling import import_labels_from_threads

    folder = tmp_path_factory.mktemp("small-forum")
    labelled = pd.read_csv(SHARED / "openai-forum-labelled" / "annotated_questions.csv.gz").head(300)
    labelled.to_csv(folder / "labelled.csv", index=False)
    stats = pd.read_csv(STATS).head(2_000).assign(reply_count=lambda d: d.post_count - 1)
    stats.to_csv(folder / "stats.csv", index=False)
    db = folder / "forum.duckdb"
    with Store(db) as s:
        ingest_table(s, [folder / "labelled.csv"], source="openai-forum-labelled", mapping=FORUM_MAP)
        import_labels_from_threads(s, "chen2024-forum", "openai-forum-labelled", "paper")
        ingest_table(
            s,
            [folder / "stats.csv"],
            source="openai-forum-stats",
            mapping="source_id=topic_id,reply_count=reply_count,title=topic_id",
        )
    return db, stats


def test_report_section_and_paper_tables(small_forum, tmp_path):
    from devquarry.report import build_report
    from devquarry.report.data import report_data
    from devquarry.report.export import write_tables

    db, stats = small_forum
    with Store(db, read_only=True) as s:
        data = report_data(s)
        path = build_report(s, tmp_path / "report.html", data=data)
        tables = write_tables(s, tmp_path / "tables", "latex", data=data)
    html = path.read_text(encoding="utf-8")
    assert '<a href="#reproduce">published figures</a>' in html and '<section id="reproduce">' in html
    section = html[html.index('<section id="reproduce">') : html.index('<h2 id="methods">')]
    assert "arXiv 2408.05002</a>" in section and "A: General Question" in section and "26.3%" in section
    assert "21.3% (6,190)" in section and "&gt;10" in section  # the bin label escaped
    rep = data["reproduce"][0]
    assert rep["sources"] == ["openai-forum-labelled", "openai-forum-stats"]
    ours = rep["frame"].set_index(["figure", "item"]).loc[("replies-per-question", "0")]
    assert ours.our_count == (stats.reply_count == 0).sum() and ours.our_n == 2_000
    assert '<td class="muted">no view counts' in section
    # The replies distribution as a figure, per source (the labelled sheet has none: left out).
    assert "Replies per thread (95% interval)" in html
    dist = data["distributions"]["replies"]
    assert dist.attrs["unknown"] == 300 and dist.attrs["threads"] == 2_300
    assert "300 without one left out" in html
    names = {p.name for p in tables}
    assert {"reproduce_chen2024-forum.tex", "replies_distribution.tex"} <= names
    tex = (tmp_path / "tables" / "reproduce_chen2024-forum.tex").read_text()
    assert "replies-per-question" in tex and "6190 & 29057" in tex


def test_studies_are_data_with_sources():
    studies = list_studies()
    assert set(studies.id) == {"chen2024-forum", "chen2025-so-api"}
    forum = load_study("chen2024-forum")
    assert forum.source == "arXiv 2408.05002" and forum.population == 29_057
    replies = forum.figure("replies-per-question")
    assert replies.counts == tuple(PAPER_BINS) and sum(replies.counts) == replies.n == 29_057
    views = forum.figure("views-per-question")
    assert sum(views.counts) == views.n == 21_075
    assert {f.origin for f in forum.figures} == {"paper"}
    assert load_study("chen2025-so-api").figure("hardest-categories").ranking == ("gpt-actions", "assistants", "audio")


def test_a_bad_study_file_names_file_figure_and_field(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text(
        "id: mine\ntitle: t\nsource: s\nfigures:\n"
        "  - {id: f1, definition: d, measure: distribution, origin: paper, of: replies, bins: ['0', '>0'], counts: [1]}\n"
    )
    with pytest.raises(InputError) as exc:
        load_study(bad)
    assert str(exc.value) == f"{bad}: record figure f1: field 'counts': 1 values for 2 bins"
    bad.write_text("id: mine\ntitle: t\nsource: s\nfigures:\n  - {id: f1, definition: d, measure: likes, origin: paper}\n")
    with pytest.raises(InputError, match="figure f1: field 'measure': unknown measure 'likes'"):
        load_study(bad)
