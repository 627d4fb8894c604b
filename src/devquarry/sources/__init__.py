"""One module per source, all behind :class:`devquarry.sources.base.Source`."""

from devquarry.sources.base import Source
from devquarry.sources.discourse import DiscourseSource
from devquarry.sources.github import GitHubSource
from devquarry.sources.stackexchange_dump import StackExchangeDump
from devquarry.sources.tabular import TableSource
from devquarry.sources.transcripts import TranscriptSource

__all__ = ["DiscourseSource", "GitHubSource", "Source", "StackExchangeDump", "TableSource", "TranscriptSource"]
