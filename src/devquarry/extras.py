"""Optional dependencies: what each extra brings, and one clear message when one is missing.

The core install (ingest, crawl, store, LSA embeddings, the default topic pipeline, supervised
coding, metrics, the report and BM25 + LSA ``ask``) needs none of these. A step that needs an
extra imports it through :func:`require`, which turns a missing package into an
:class:`~devquarry.errors.InputError` (exit 2) naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from devquarry.errors import InputError

EXTRAS = {
    "bertopic": "BERTopic with UMAP + HDBSCAN clustering, KeyBERT-like keywords, a saved BERTopic model per topic run",
    "minilm": "sentence-transformers and the packaged all-MiniLM-L6-v2: the dense half of `ask`, zero-shot coding",
    "static": "model2vec static embeddings distilled from MiniLM",
    "figures": "kaleido: PNG and SVG figures from `devquarry tables --figures`",
    "serve": "starlette and uvicorn: the workbench (`devquarry serve`)",
    "ray": "Ray Data: embedding and coding on a Ray cluster (`--engine ray`)",
}


class MissingExtra(InputError):
    """A step needs an optional dependency that is not installed."""

    def __init__(self, extra: str, module: str, what: str) -> None:
        super().__init__(None, f"{what} needs the '{extra}' extra ({module} is not installed): pip install 'devquarry[{extra}]'")
        self.extra, self.module = extra, module


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:  # the package, or one it needs: either way the extra is not (fully) there
        raise MissingExtra(extra, module, what) from None


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None


def ensure(module: str, extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` now if ``module`` is not installed, without paying for its import
    (sentence-transformers takes seconds): a step can fail before its long work, and import later."""
    if not available(module):
        raise MissingExtra(extra, module, what)
