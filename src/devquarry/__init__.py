"""devquarry: mine developer discussions for the challenges of building on LLMs.

Every step is a function over the store that returns a pandas DataFrame::

    import devquarry as dq
    store = dq.Store("devquarry.duckdb")
    dq.ingest_stackexchange(store, "dump/")
    dq.info(store)
    dq.metrics(store, "source")

Names load on first use (PEP 562), so ``import devquarry`` stays cheap: pandas, DuckDB and
scikit-learn are imported by the first step that needs them.

Several steps share their name with the module that holds them (``dq.metrics`` is the function
``devquarry.metrics.metrics``). The function keeps the name even after the module is imported;
reach a module with ``from devquarry.metrics import ...`` or ``importlib.import_module``.
"""

from __future__ import annotations

import importlib
import sys
import types

# name -> module that defines it (under the same name)
_API = {
    "__version__": "devquarry._version",
    "InputError": "devquarry.errors",
    "MissingExtra": "devquarry.extras",
    "Link": "devquarry.model",
    "Reply": "devquarry.model",
    "Thread": "devquarry.model",
    "Store": "devquarry.store",
    "default_db": "devquarry.store",
    "ingest": "devquarry.ingest",
    "ingest_discourse": "devquarry.ingest",
    "ingest_github": "devquarry.ingest",
    "ingest_stackexchange": "devquarry.ingest",
    "ingest_table": "devquarry.ingest",
    "ingest_transcripts": "devquarry.ingest",
    "info": "devquarry.info",
    "bot_replies": "devquarry.bots",
    "set_count_bots": "devquarry.bots",
    "metrics": "devquarry.metrics",
    "distribution": "devquarry.distributions",
    "reproduce": "devquarry.reproduce",
    "series": "devquarry.trends",
    "trends": "devquarry.trends",
    "compare": "devquarry.compare",
    "side_by_side": "devquarry.compare",
    "hotspots": "devquarry.hotspots",
    "fit_topics": "devquarry.topics",
    "topic_runs": "devquarry.topics",
    "topic_table": "devquarry.topics",
    "theme_table": "devquarry.topics",
    "topics_over_time": "devquarry.topics",
    "list_codebooks": "devquarry.codebooks",
    "load_codebook": "devquarry.codebooks",
    "sample_size": "devquarry.labeling",
    "stratified_sample": "devquarry.labeling",
    "write_sheet": "devquarry.labeling",
    "read_sheet": "devquarry.labeling",
    "import_labels": "devquarry.labeling",
    "import_labels_from_threads": "devquarry.labeling",
    "label_shares": "devquarry.labeling",
    "agreement": "devquarry.labeling",
    "classify": "devquarry.classify",
    "evaluate": "devquarry.evaluate",
    "ask": "devquarry.ask",
    "build_report": "devquarry.report",
    "report_data": "devquarry.report.data",
    "write_tables": "devquarry.report.export",
    "write_figures": "devquarry.report.export",
    "run_demo": "devquarry.demo",
    "export": "devquarry.export",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'devquarry' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    object.__setattr__(sys.modules[__name__], name, value)  # cached: the next lookup skips this
    return value


def __dir__() -> list[str]:
    # the steps, not this module's own helpers (importlib, sys, types)
    return sorted({name for name in globals() if name.startswith("__")} | set(_API))


class _Package(types.ModuleType):
    """Importing ``devquarry.metrics`` binds the submodule to the package's ``metrics``; the
    step function keeps that name instead, whichever is imported first. A sub-package (``ask``)
    is bound as usual, so ``import devquarry.ask.answer`` works; it is callable as its step."""

    def __setattr__(self, name: str, value) -> None:
        if name in _API and isinstance(value, types.ModuleType) and not hasattr(value, "__path__"):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
