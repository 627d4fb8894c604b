"""Live collection: Discourse forums, the Stack Exchange API and GitHub issues, politely,
resumably and incrementally (see ``base`` for the checkpoint and ``http`` for the client)."""

from devquarry.crawl.discourse import DiscourseCrawler
from devquarry.crawl.github import GitHubCrawler
from devquarry.crawl.http import Archive, CrawlError, HttpClient, NotFound
from devquarry.crawl.stackexchange import StackExchangeCrawler

__all__ = ["Archive", "CrawlError", "DiscourseCrawler", "GitHubCrawler", "HttpClient", "NotFound", "StackExchangeCrawler"]
