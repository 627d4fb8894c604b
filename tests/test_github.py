import gzip
import json

from conftest import FIXTURES

from devquarry import ingest_github


def test_app_issue_exports(store, shared):
    files = sorted((shared / "github-issues-llm-apps").glob("*.json.gz"))
    c = ingest_github(store, files).attrs["counts"]
    assert c["threads_new"] == 5012
    issues = [i for f in files for i in json.load(gzip.open(f))["issues"]]
    assert c["replies_new"] == sum(len(i["comments"]) for i in issues)
    t = store.threads()
    assert t.source.nunique() == 15
    # Reply counts come from comments_count: the exported comment lists are truncated for 902 issues.
    # Bots' comments held ([bot] logins) are taken off it, and it is never below the people's
    # comments held (mem0 #1752 says 1 and holds 4).
    from devquarry.sources.github import destring

    def people(i):
        cs = destring(i["comments"]) or []
        bots = sum(str(c.get("author")).endswith("[bot]") for c in cs)
        return max(int(destring(i["comments_count"])) - bots, len(cs) - bots), bots

    assert sum(people(i)[1] for i in issues) == 2243
    assert int(t.reply_count.sum()) == sum(people(i)[0] for i in issues)
    closed = sum(1 for i in issues if i["state"] == "closed")
    assert int(t.is_resolved.sum()) == closed  # no state_reason in these exports: closed counts as completed
    crew = store.threads("github:crewAIInc/crewAI").set_index("source_id").loc["805"]
    assert crew.tags == ["no-issue-activity"] and crew.reply_count == 4  # 6, less 2 by github-actions[bot]
    assert crew.url == "https://github.com/crewAIInc/crewAI/issues/805"
    # The text models read four columns of the same rows, in the same order (topics depend on it).
    from devquarry.store import TEXT_COLUMNS

    assert store.threads(columns=TEXT_COLUMNS).equals(t[TEXT_COLUMNS])
    one = store.threads("github:crewAIInc/crewAI")
    assert store.threads("github:crewAIInc/crewAI", columns=["source_id", "tags"]).equals(one[["source_id", "tags"]])


def test_stringified_values(store):
    c = ingest_github(store, [FIXTURES / "github_crewai_stringified.json"]).attrs["counts"]
    assert c["threads_new"] == 3
    t = store.threads("github:crewAIInc/crewAI").set_index("source_id")
    assert t.loc["805", "tags"] == ["no-issue-activity"]  # from the string "['no-issue-activity']"
    assert t.loc["805", "reply_count"] == 4  # from "6", less the 2 comments by github-actions[bot]
    assert t.loc["3028", "closed_at"] is None or str(t.loc["3028", "closed_at"]) in ("NaT", "None")  # from "None"
    assert bool(t.loc["805", "is_resolved"]) and not bool(t.loc["3028", "is_resolved"])
    r = store.replies("github:crewAIInc/crewAI")
    assert (r.thread_id == "805").sum() == 5  # the comment list, parsed back from its string


def test_api_shape_state_reason_and_pull_requests(store):
    ingest_github(store, [FIXTURES / "github_api_issues.json"])
    t = store.threads("github:Aider-AI/aider").set_index("source_id")
    assert "99999" not in t.index  # a pull request
    assert len(t) == 4
    resolved = t.is_resolved.to_dict()
    assert resolved == {"3627": True, "92": False, "554": True, "649": False}  # not_planned is not resolved
    assert t.loc["92", "state"] == "closed:not_planned"


def test_vendor_csv_exports(store, shared):
    files = sorted((shared / "github-issues-llm-vendors").glob("*.csv"))
    c = ingest_github(store, files, encoding="utf-8,gb18030").attrs["counts"]
    assert c["threads_new"] == 4987
    t = store.threads()
    assert t.source.nunique() == 19
    oa = t[t.source == "github:openai/openai-python"]
    # 528 "Closed issue", 181 "Closed as not planned issue", 74 open.
    assert len(oa) == 783 and int(oa.is_resolved.sum()) == 528
    recipes = t[t.source == "github:meta-llama/llama-recipes"].set_index("source_id")
    assert len(recipes) == 356
    assert recipes.loc["738", "title"] == "Learning rate scheduler"


def test_gb18030_needs_its_encoding(store):
    c = ingest_github(store, [FIXTURES / "vendors_gb18030.csv"], encoding="gb18030").attrs["counts"]
    assert c["threads_new"] == 12
    texts = " ".join(store.threads().body_text)
    assert "\ufffd" not in texts
