"""The hand labels a supervised coder learns from: chosen by rater and source, joined to their text."""

from __future__ import annotations

import pandas as pd

from devquarry.codebooks import Codebook
from devquarry.errors import InputError
from devquarry.store import Store

IRRELEVANT = "irrelevant"


def training_labels(
    store: Store,
    codebook: Codebook,
    rater: str | None = None,
    level: int | None = None,
    keep_irrelevant: bool = False,
    *,
    raters: list[str] | None = None,
    sources: list[str] | None = None,
) -> pd.DataFrame:
    """Threads with their hand-labelled primary code (at ``level``) and all codes, for training:
    the labels of ``raters`` (or ``rater``; default every rater) on threads of ``sources``."""
    from devquarry.labeling import labels_frame

    df = labels_frame(store, codebook.id, level)
    wanted = list(raters or ([rater] if rater else []))
    if wanted:
        missing = sorted(set(wanted) - set(df.rater))
        if missing:
            raise InputError(
                store.path,
                f"no labels by {', '.join(missing)} for {codebook.id}; raters: {', '.join(sorted(set(df.rater)))}",
                field="rater",
            )
        df = df[df.rater.isin(wanted)]
    if sources:
        df = df[df.source.isin(sources)]
    df = df[
        ((df.status == "coded") & df.primary.notna()) | (df.status == IRRELEVANT)
        if keep_irrelevant
        else (df.status == "coded") & df.primary.notna()
    ]
    # One label per thread: the first rater's in name order.
    return df.sort_values("rater").drop_duplicates(["source", "source_id"]).reset_index(drop=True)


def _labels_with_text(
    store: Store,
    cb: Codebook,
    every: pd.DataFrame,
    raters: list[str] | None,
    sources: list[str] | None,
    level: int | None,
    keep_irrelevant: bool = False,
) -> pd.DataFrame:
    """The training labels joined to their threads' text; an empty set is an error naming the filter."""
    labels = training_labels(store, cb, level=level, raters=raters, sources=sources, keep_irrelevant=keep_irrelevant)
    if labels.empty:
        picked = " and ".join(
            p for p in (f"raters {', '.join(raters)}" if raters else "", f"sources {', '.join(sources)}" if sources else "") if p
        )
        raise InputError(
            store.path,
            f"no hand labels for {cb.id}{' from ' + picked if picked else ''} to learn from; "
            "import some with `devquarry labels import`",
        )
    return every.merge(labels, on=["source", "source_id"], how="inner")
