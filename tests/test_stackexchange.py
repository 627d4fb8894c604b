from conftest import FIXTURES
from lxml import etree

from devquarry import ingest_stackexchange
from devquarry.sources import StackExchangeDump


def test_excerpt_gives_questions_answers_and_links(store, shared):
    counts = ingest_stackexchange(store, shared / "stackexchange-dump-cstheory-meta")
    c = counts.attrs["counts"]
    assert (c["threads_new"], c["replies_new"], c["links_new"]) == (589, 1322, 461)
    assert c["replies_orphaned"] == 0
    src = "stackexchange:cstheory.meta.stackexchange.com"  # read from the posts' own links
    threads = store.threads(src)
    assert len(threads) == 589
    # Every answer hangs under a question we hold.
    n_attached = store.con.execute(
        "SELECT count(*) FROM reply r JOIN thread t ON t.source = r.source AND t.source_id = r.thread_id"
    ).fetchone()[0]
    assert n_attached == 1322
    links = store.links()
    assert links.link_type.value_counts().to_dict() == {"related": 448, "duplicate": 13}


def test_accepted_answers_and_first_reply(store, shared):
    ingest_stackexchange(store, shared / "stackexchange-dump-cstheory-meta")
    t = store.threads().set_index("source_id")
    # 206 questions name an accepted answer in the excerpt.
    assert int(t.is_resolved.sum()) == 206
    replies = store.replies()
    assert int(replies.is_accepted.sum()) == 206
    # Question 1 (2010-08-16 20:20) accepted answer 100; its first answer is the earliest of its answers.
    q1 = t.loc["1"]
    assert q1.accepted_reply_id == "100"
    first = replies[replies.thread_id == "1"].created_at.min()
    assert q1.first_reply_at == first
    assert q1.accepted_at == replies[replies.reply_id == "100"].created_at.iloc[0]
    assert q1.title and q1.url == "https://cstheory.meta.stackexchange.com/questions/1"
    assert "Write an Elevator Pitch" in q1.body_text and "<" not in q1.body_text


def test_second_ingest_adds_nothing(store, shared):
    ingest_stackexchange(store, shared / "stackexchange-dump-cstheory-meta")
    before = store.counts()
    again = ingest_stackexchange(store, shared / "stackexchange-dump-cstheory-meta")
    c = again.attrs["counts"]
    assert (c["threads_new"], c["threads_updated"], c["replies_new"], c["links_new"]) == (0, 0, 0, 0)
    assert c["threads_unchanged"] == 589
    after = store.counts()
    assert {k: after[k] for k in ("thread", "reply", "link")} == {k: before[k] for k in ("thread", "reply", "link")}
    assert after["run"] == before["run"] + 1


def test_fake_posts_skipped_and_comments_attached(store):
    counts = ingest_stackexchange(store, FIXTURES / "se_small", site="cstheory.meta.stackexchange.com")
    c = counts.attrs["counts"]
    assert c["threads_new"] == 3 and c["replies_new"] == 37 + 3
    assert c["replies_orphaned"] == 1  # the comment on a post outside the excerpt
    assert "1000000001" not in set(store.threads().source_id)
    comments = store.replies().query("kind == 'comment'").set_index("reply_id")
    assert comments.loc["c501", "thread_id"] == "1"  # on the question
    assert comments.loc["c502", "thread_id"] == "1"  # on answer 100 of question 1
    assert comments.loc["c503", "thread_id"] == "2"  # on answer 5 of question 2
    # Comments are held but are not replies in the counts.
    t = store.threads().set_index("source_id")
    assert t.loc["2", "reply_count"] == 3  # answers 5, 12, 47


def test_tag_filter(store, shared):
    counts = ingest_stackexchange(store, shared / "stackexchange-dump-cstheory-meta", tags=["feature-request"])
    t = store.threads()
    assert 0 < len(t) < 589
    assert all("feature-request" in tags for tags in t.tags)
    # Only answers of kept questions.
    assert set(store.replies().thread_id) <= set(t.source_id)
    assert counts.attrs["counts"]["replies_orphaned"] == 0


def test_newer_copy_updates_older_copy_is_skipped(store, tmp_path):
    ingest_stackexchange(store, FIXTURES / "se_small")
    tree = etree.parse(str(FIXTURES / "se_small" / "Posts.xml"))
    row = tree.find("row[@Id='2']")
    row.set("Title", "An edited title")
    row.set("LastActivityDate", "2030-01-01T00:00:00.000")
    newer = tmp_path / "newer"
    newer.mkdir()
    tree.write(str(newer / "Posts.xml"))
    c = ingest_stackexchange(store, newer, site="cstheory.meta.stackexchange.com").attrs["counts"]
    assert (c["threads_new"], c["threads_updated"], c["threads_unchanged"]) == (0, 1, 2)
    assert store.threads().set_index("source_id").loc["2", "title"] == "An edited title"
    # The original copy is older now: it must not undo the edit.
    c = ingest_stackexchange(store, FIXTURES / "se_small", site="cstheory.meta.stackexchange.com").attrs["counts"]
    assert c["threads_stale"] == 1
    assert store.threads().set_index("source_id").loc["2", "title"] == "An edited title"


def test_newer_dump_tag_format(tmp_path):
    posts = tmp_path / "Posts.xml"
    posts.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
        '  <row Id="7" PostTypeId="1" CreationDate="2024-05-01T10:00:00.000" Score="1" Title="t" Tags="|openai-api|python|" Body="&lt;p&gt;b&lt;/p&gt;" />\n'
        "</posts>\n"
    )
    recs = list(StackExchangeDump(posts).records())
    assert recs[0].tags == ["openai-api", "python"]
    assert recs[0].source == "stackoverflow"
