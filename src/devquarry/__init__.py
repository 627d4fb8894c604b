"""devquarry: mine developer discussions for the challenges of building on LLMs.

Every step is a function over the store that returns a pandas DataFrame::

    import devquarry as dq
    store = dq.Store("devquarry.duckdb")
    dq.ingest_stackexchange(store, "dump/")
    dq.info(store)
"""

__version__ = "0.1.0"

from devquarry.errors import InputError
from devquarry.model import Link, Reply, Thread
from devquarry.store import Store
from devquarry.ingest import (
    ingest,
    ingest_discourse,
    ingest_github,
    ingest_stackexchange,
    ingest_table,
    ingest_transcripts,
)
from devquarry.info import info
from devquarry.report import build_report

__all__ = [
    "InputError",
    "Link",
    "Reply",
    "Store",
    "Thread",
    "build_report",
    "info",
    "ingest",
    "ingest_discourse",
    "ingest_github",
    "ingest_stackexchange",
    "ingest_table",
    "ingest_transcripts",
]
