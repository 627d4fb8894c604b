"""Discourse topic lists: bare arrays of /latest.json entries and category pages (/c/{slug}/{id}.json)
as partial topics, a newer entry refreshing a full topic, and `info`'s stated vs stored replies.
Files are cut from ../shared/data/discourse-openai-forum (latest.json, topics_with_posts.json)."""

import gzip
import json

import pytest
from conftest import run_cli

from devquarry import info, ingest_discourse, ingest_github

HOST = "community.openai.com"
SOURCE = f"discourse:{HOST}"


@pytest.fixture
def forum(shared):
    return shared / "discourse-openai-forum"


@pytest.fixture
def listing(forum) -> dict:
    return json.loads((forum / "latest.json").read_text())


def test_bare_array_of_list_entries(store, listing, tmp_path):
    entries = listing["topic_list"]["topics"]
    path = tmp_path / "entries.json"
    path.write_text(json.dumps(entries))
    # The entries name no avatar, hence no host: the message says what to pass.
    proc = run_cli("ingest", "discourse", str(path), db=tmp_path / "s.duckdb")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "pass --host" in proc.stderr

    c = ingest_discourse(store, [path], host=HOST).attrs["counts"]
    assert c["threads_new"] == len(entries) == 30 and c["replies_new"] == 0
    t = store.threads(SOURCE).set_index("source_id")
    assert t.is_partial.all() and (t.body_text == "").all()
    for e in entries:
        row = t.loc[str(e["id"])]
        assert row.reply_count == e["posts_count"] - 1 and row.views == e["views"] and row.score == e["like_count"]
        assert bool(row.is_resolved) == e["has_accepted_answer"] and row.category == str(e["category_id"])
        assert row.state == ("closed" if e["closed"] else "open") and row.title == e["title"]
    # Counted from the file, written out as measured.
    assert int(t.reply_count.sum()) == sum(e["posts_count"] - 1 for e in entries) == 243
    assert int(t.views.sum()) == 75362 and int(t.is_resolved.sum()) == 2 and (t.state == "closed").sum() == 1
    summary = info(store).set_index("source").loc[SOURCE]
    assert summary.replies_stated == 243 and summary.replies_stored == 0


def test_category_page(store, listing, tmp_path):
    topics = [e for e in listing["topic_list"]["topics"] if e["category_id"] == 7]
    page = {
        "users": listing["users"],
        "primary_groups": listing.get("primary_groups", []),
        "topic_list": {**{k: v for k, v in listing["topic_list"].items() if k != "topics"}, "topics": topics},
    }
    path = tmp_path / "7.json"  # as /c/{slug}/7.json serves it
    path.write_text(json.dumps(page))
    c = ingest_discourse(store, [path]).attrs["counts"]  # the host read from the users' avatars
    assert c["threads_new"] == len(topics) == 18
    t = store.threads(SOURCE)
    assert (t.category == "7").all() and t.is_partial.all()
    assert int(t.reply_count.sum()) == 105 and t.author.notna().all()


def _entry_for(topic: dict, listing: dict, **changes) -> dict:
    """A topic-list entry for a full topic, shaped as latest.json's entries are."""
    entry = dict(
        listing["topic_list"]["topics"][0],
        id=topic["id"],
        slug=topic["slug"],
        title=topic["title"],
        created_at=topic["created_at"],
        posts_count=topic["posts_count"],
        highest_post_number=topic["highest_post_number"],
        views=topic["views"],
        like_count=topic["like_count"],
        closed=topic["closed"],
        has_accepted_answer=False,
        last_posted_at=topic["last_posted_at"],
        bumped_at=topic["last_posted_at"],
    )
    entry.update(changes)
    return entry


def test_a_newer_entry_refreshes_a_full_topic_and_an_older_one_does_not(store, forum, listing, tmp_path):
    ingest_discourse(store, [forum / "topics_with_posts.json"])
    topic = next(t for t in json.loads((forum / "topics_with_posts.json").read_text()) if t["id"] == 548377)
    assert topic["posts_count"] == 1 and len(topic["post_comments"]) == 1
    before = store.threads(SOURCE).set_index("source_id").loc["548377"]
    assert before.reply_count == 0 and before.state == "open"
    replies_before = store.counts()["reply"]

    later = "2023-12-20T10:00:00.000Z"
    newer = _entry_for(
        topic,
        listing,
        posts_count=5,
        highest_post_number=5,
        views=topic["views"] + 40,
        like_count=3,
        closed=True,
        category_id=21,
        last_posted_at=later,
        bumped_at=later,
    )
    path = tmp_path / "newer.json"
    path.write_text(json.dumps([newer]))
    c = ingest_discourse(store, [path], host=HOST).attrs["counts"]
    assert c["threads_refreshed"] == 1 and c["threads_new"] == 0
    after = store.threads(SOURCE).set_index("source_id").loc["548377"]
    assert after.reply_count == 4 and after.views == topic["views"] + 40 and after.score == 3
    assert after.state == "closed" and after.category == "21" and not after.is_partial
    assert after.body_text == before.body_text and after.title == before.title  # not its posts or body
    assert store.counts()["reply"] == replies_before
    assert ingest_discourse(store, [path], host=HOST).attrs["counts"]["threads_refreshed"] == 0

    older = _entry_for(topic, listing, posts_count=9, views=1, last_posted_at="2023-12-08T00:00:00.000Z")
    path.write_text(json.dumps([older]))
    c = ingest_discourse(store, [path], host=HOST).attrs["counts"]
    assert c["threads_refreshed"] == 0 and c["threads_stale"] == 1
    assert store.threads(SOURCE).set_index("source_id").loc["548377", "reply_count"] == 4


def test_refresh_counts_new_posts_not_small_actions(store, forum, listing, tmp_path):
    """A full topic whose posts include a small action (post_type 3, 'closed the topic') has fewer
    replies than posts_count - 1; a newer entry adds only the posts that came since."""
    raw = json.loads((forum / "topics_with_posts.json").read_text())
    topic = next(
        t for t in raw if any(p["post_type"] != 1 for p in t["post_comments"]) and t["posts_count"] == len(t["post_comments"])
    )
    regular = sum(1 for p in topic["post_comments"] if p["post_number"] > 1 and p["post_type"] == 1)
    ingest_discourse(store, [forum / "topics_with_posts.json"])
    held = store.threads(SOURCE).set_index("source_id").loc[str(topic["id"]), "reply_count"]
    assert held == regular < topic["posts_count"] - 1
    newer = _entry_for(topic, listing, posts_count=topic["posts_count"] + 2, last_posted_at="2024-06-01T00:00:00.000Z")
    path = tmp_path / "newer.json"
    path.write_text(json.dumps([newer]))
    ingest_discourse(store, [path], host=HOST)
    assert store.threads(SOURCE).set_index("source_id").loc[str(topic["id"]), "reply_count"] == regular + 2


def test_a_list_entry_never_replaces_a_full_topic_in_the_same_file(store, forum, listing, tmp_path):
    topic = json.loads((forum / "topics_with_posts.json").read_text())[0]
    entry = _entry_for(topic, listing, last_posted_at="2024-06-01T00:00:00.000Z")
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([entry, topic]))
    ingest_discourse(store, [path])
    t = store.threads(SOURCE).set_index("source_id").loc[str(topic["id"])]
    assert not t.is_partial and t.body_text


def test_info_states_github_comments_count_beside_comments_held(store, shared):
    files = sorted((shared / "github-issues-llm-apps").glob("*.json.gz"))[:3]
    stated = held = 0
    for f in files:
        for issue in json.loads(gzip.decompress(f.read_bytes()))["issues"]:
            stated += int(issue["comments_count"])
            held += len(issue["comments"])
    ingest_github(store, files)
    summary = info(store)
    assert int(summary.replies_stated.sum()) == stated == 5398
    assert int(summary.replies_stored.sum()) == held == 3450
