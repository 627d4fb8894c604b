import json

from conftest import FIXTURES

from devquarry import ingest_discourse

HOST = "discourse:community.openai.com"


def test_topics_with_posts(store, shared):
    path = shared / "discourse-openai-forum" / "topics_with_posts.json"
    c = ingest_discourse(store, [path]).attrs["counts"]
    raw = json.loads(path.read_text())
    regular_replies = sum(1 for t in raw for p in t["post_comments"] if p["post_number"] > 1 and p["post_type"] == 1)
    assert c["threads_new"] == 163
    assert c["replies_new"] == regular_replies == 386  # 554 posts - 163 first posts - 5 small actions
    t = store.threads(HOST).set_index("source_id")
    assert len(t) == 163
    # 14 topics have a post flagged as the accepted answer.
    assert int(t.is_resolved.sum()) == 14
    assert int(store.replies(HOST).is_accepted.sum()) == 14
    topic = t.loc["547482"]
    assert topic.url == "https://community.openai.com/t/unable-to-view-the-daily-breakdown-in-the-openai-api-usage-section/547482"
    assert topic.title.startswith("Unable to view the daily breakdown")
    assert "daily usage details" in topic.body_text and "<p>" not in topic.body_text
    assert topic.author == "lllllxh594"
    assert topic.views == 77 and topic.reply_count == 3


def test_first_reply_time_is_earliest_reply(store, shared):
    ingest_discourse(store, [shared / "discourse-openai-forum" / "topics_with_posts.json"])
    t = store.threads(HOST).set_index("source_id")
    r = store.replies(HOST)
    earliest = r.groupby("thread_id").created_at.min()
    assert (t.loc[earliest.index, "first_reply_at"] == earliest).all()
    assert t.first_reply_at.isna().sum() == 163 - earliest.size


def test_topic_list_is_partial_and_never_overwrites_a_full_copy(store, shared):
    full = json.loads((FIXTURES / "discourse_topic.json").read_text())
    ingest_discourse(store, [FIXTURES / "discourse_topic.json"])
    body = store.threads().set_index("source_id").loc[str(full["id"]), "body_text"]
    assert body
    listing = json.loads((shared / "discourse-openai-forum" / "latest.json").read_text())
    entry = dict(
        listing["topic_list"]["topics"][0],
        id=full["id"],
        slug=full["slug"],
        views=full["views"] + 10,
        last_posted_at="2030-01-01T00:00:00.000Z",
    )
    listing["topic_list"]["topics"] = [entry] + listing["topic_list"]["topics"][1:]
    path = store.path.parent / "latest.json"
    path.write_text(json.dumps(listing))
    c = ingest_discourse(store, [path]).attrs["counts"]
    assert c["threads_new"] == 29 and c["threads_refreshed"] == 1
    t = store.threads().set_index("source_id").loc[str(full["id"])]
    assert t.body_text == body  # the list entry has no body: the full copy keeps its own
    assert t.views == full["views"] + 10  # but its counters are refreshed
    assert t.category == str(entry["category_id"])
    again = ingest_discourse(store, [path]).attrs["counts"]
    assert again["threads_refreshed"] == 0 and again["threads_new"] == 0


def test_standard_topic_json_with_accepted_answer(store):
    c = ingest_discourse(store, [FIXTURES / "discourse_topic.json"]).attrs["counts"]
    assert c["threads_new"] == 1 and c["replies_new"] == 1
    t = store.threads().iloc[0]
    assert bool(t.is_resolved) and t.accepted_at is not None and t.accepted_at == t.first_reply_at


def test_latest_json_counts(store, shared):
    ingest_discourse(store, [shared / "discourse-openai-forum" / "latest.json"])
    listing = json.loads((shared / "discourse-openai-forum" / "latest.json").read_text())["topic_list"]["topics"]
    t = store.threads(HOST).set_index("source_id")
    assert len(t) == 30
    assert int(t.is_resolved.sum()) == sum(1 for x in listing if x["has_accepted_answer"])
    first = listing[0]
    row = t.loc[str(first["id"])]
    assert row.reply_count == first["posts_count"] - 1 and row.views == first["views"]
    assert row.author == "eric8" and row.category == "21"
