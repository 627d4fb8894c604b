"""Crawl a repository's GitHub issues (pull requests skipped) with their comments, ``state_reason``
and ``closed_at``, page by page through the ``Link`` headers; the rate-limit headers are honoured
by the client. Incremental: ``since`` = the latest ``updated_at`` of the last finished crawl."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pandas as pd

from devquarry.crawl.base import DEFAULT_MAX_PAGES, Crawler, later, shape
from devquarry.sources.github import GitHubSource

API = "https://api.github.com"
PER_PAGE = 100
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


def next_link(headers: dict) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), None)
    m = _NEXT.search(link or "")
    return m.group(1) if m else None


class GitHubCrawler(Crawler):
    name = "github"

    def __init__(
        self, store, client, repo: str, *, api_url: str = API, since=None, progress=None, max_pages=DEFAULT_MAX_PAGES
    ) -> None:
        self.repo = repo.strip("/")
        self.api = api_url.rstrip("/")
        super().__init__(store, client, f"{self.api}|{self.repo}", since=since, progress=progress, max_pages=max_pages)
        client.trust(self.api)
        self._parser = GitHubSource([Path(repo)], repo=self.repo)

    def params(self) -> dict:
        return {**super().params(), "repo": self.repo, "api_url": self.api}

    def comments(self, url: str) -> list[dict]:
        out, params = [], {"per_page": PER_PAGE}
        pages = self.pager("comments")
        while url:
            resp = self.client.get_json(url, params, expect=list)
            url, params = next_link(resp.headers), None
            pages.turn(resp.url, resp.url)
            out.extend(resp.data)
        return out

    def run(self) -> dict:
        run_id = self.start()
        high = self.cursor.get("high_water") if self.cursor else None
        if self.cursor:
            url, params = self.cursor["url"], None
        else:
            url = f"{self.api}/repos/{self.repo}/issues"
            params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": PER_PAGE}
            if self.since:  # GitHub's since is inclusive: start just after the last one seen
                params["since"] = (pd.Timestamp(self.since) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        pages = self.pager("issue list")
        while url:
            resp = self.client.get_json(url, params, expect=list)
            self.counts["pages"] += 1
            url, params = next_link(resp.headers), None
            pages.turn(resp.url, resp.url)
            records = []
            for i, issue in enumerate(resp.data):
                with shape(resp.url):
                    high = later(high, issue.get("updated_at"))
                    if issue.get("pull_request"):
                        continue
                    n = issue.get("comments") or 0
                    comments_url = issue["comments_url"] if n else None
                comments = self.comments(comments_url) if n else []
                with shape(resp.url):
                    issue = dict(issue, comments=comments, comments_count=n)
                    records.extend(self._parser._issue(issue, Path(resp.url), i, self.repo))
                self.progress(1)
            self.commit(
                run_id,
                records,
                {"url": url, "run_id": run_id, "high_water": high, "since": self.since}
                if url
                else {"url": None, "run_id": run_id, "high_water": high, "since": self.since},
            )
        self.finish(run_id, high)
        return self.counts | {"run_id": run_id}
