"""Coding threads into a codebook's codes, and running the coders (``devquarry.coders``) over the store.

- supervised (``coders.supervised``): learns from hand labels;
- zero-shot (``coders.zeroshot``): from the codebook's own text;
- topic: every member of a topic takes the topic's most frequent hand-labelled code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from devquarry.classify_labels import IRRELEVANT, _labels_with_text, training_labels
from devquarry.classify_reuse import kept_rows, reusable_run
from devquarry.codebooks import Codebook, load_codebook
from devquarry.coders.supervised import CHAR_FEATURES, WORD_FEATURES, SupervisedCoder, ThreadFeatures
from devquarry.coders.zeroshot import UNCLASSIFIED, ZeroShotCoder
from devquarry.errors import InputError
from devquarry.reuse import labels_fingerprint, threads_fingerprint
from devquarry.store import TEXT_COLUMNS, Store
from devquarry.text import thread_text

__all__ = [
    "CHAR_FEATURES",
    "IRRELEVANT",
    "WORD_FEATURES",
    "SupervisedCoder",
    "ThreadFeatures",
    "UNCLASSIFIED",
    "ZeroShotCoder",
    "classify",
    "training_labels",
]

MIN_EXAMPLES = 3
METHODS = ("supervised", "zero-shot", "topic", "llm")
# A multi-label codebook's runner-up codes at least this likely are kept as secondary codes.
SECONDARY_MIN_SCORE = 0.3


def counting(cb: Codebook) -> str:
    """How a codebook's codes are counted in shares: by each thread's ``primary`` code, or ``any``
    code it has (a multi-label codebook whose coders named no code first)."""
    return "primary" if cb.primary_code or not cb.multi_label else "any"


def _inputs(coder: str, features: ThreadFeatures):
    """What a coder is given for a frame of threads: the shared TF-IDF rows (lexical) or the texts."""

    def x(frame):
        if coder == "lexical":
            return features.of(frame)
        return [thread_text(t, b) for t, b in zip(frame.title, frame.body_text)]

    return x


# Threads featurised and coded at a time (a job each on a cluster, where a larger one pays better):
# the memory of a run stays that of one chunk whatever the store's size.
PREDICT_ROWS, REMOTE_PREDICT_ROWS = 5_000, 200_000


def chunked_proba(engine, model, x, frame: pd.DataFrame, also=None, features: ThreadFeatures | None = None):
    """``model``'s probabilities for the threads of ``frame`` (inputs ``x(rows)``), chunk by chunk;
    with ``also`` (a second fitted model on the same inputs, the relevance gate), the pair, each
    chunk's inputs made once for both. ``features`` (the inputs are ``features.of``): on the local
    engine the chunks are then featurised and coded by as many processes as ``workers()`` allows,
    with the same rows as in one process (a row depends on its own text only)."""
    from devquarry.engine import is_local, predict_proba
    from devquarry.workers import workers

    step = PREDICT_ROWS if is_local(engine) else REMOTE_PREDICT_ROWS
    starts = range(0, max(len(frame), 1), step)
    n_jobs = min(workers(), len(starts)) if features is not None and is_local(engine) else 1
    if n_jobs > 1:
        from joblib import Parallel, delayed

        # Character n-grams are made in Python, one core each: the chunks go to worker processes.
        cols = frame[TEXT_COLUMNS]
        pairs = Parallel(n_jobs=n_jobs)(delayed(_feature_chunk)(features, model, also, cols.iloc[i : i + step]) for i in starts)
        ours, theirs = [p[0] for p in pairs], [p[1] for p in pairs]
    else:
        ours, theirs = [], []
        for i in starts:
            rows = x(frame.iloc[i : i + step])
            ours.append(predict_proba(engine, model, rows))
            if also is not None:
                theirs.append(predict_proba(engine, also, rows))
    proba = np.vstack(ours) if len(ours) > 1 else ours[0]
    if also is None:
        return proba
    return proba, (np.vstack(theirs) if len(theirs) > 1 else theirs[0])


def _feature_chunk(features: ThreadFeatures, model, also, rows: pd.DataFrame):
    """One chunk's probabilities (and the second model's) from its TF-IDF rows, in a worker."""
    x = features.of(rows)
    return model.predict_proba(x), (None if also is None else also.predict_proba(x))


def _make(coder: str, store: Store | None, progress: Callable[[int], None] | None = None, engine=None):
    from devquarry.coders.registry import EMBEDDING, make_coder

    if EMBEDDING.get(coder) and store is not None:
        from devquarry.coders.stacked import store_embed

        # The store's embedding cache: a second run embeds nothing it embedded before.
        return make_coder(coder, embed=store_embed(store, EMBEDDING[coder], progress, engine))
    return make_coder(coder)


def coder_name(cb: Codebook, coder: str | None, relevance: bool = False) -> str:
    from devquarry.coders.registry import available, default_coder

    name = coder or default_coder(cb.id, relevance=relevance)
    if not available(name):
        if coder:
            from devquarry.coders.registry import CODERS, EXTRA

            here = ", ".join(c for c in CODERS if available(c))
            raise InputError(
                None,
                f"coder {coder!r} needs the '{EXTRA[coder]}' extra: pip install 'devquarry[{EXTRA[coder]}]' (coders here: {here})",
                field="coder",
            )
        name = "lexical"
    return name


def code_threads(
    threads: pd.DataFrame,
    labels: pd.DataFrame,
    cb: Codebook,
    *,
    coder: str = "lexical",
    features: ThreadFeatures | None = None,
    store: Store | None = None,
    progress: Callable[[int], None] | None = None,
    engine=None,
    also=None,
) -> tuple[pd.DataFrame, dict]:
    """Train a coder on ``labels`` (threads with ``primary`` and ``codes``, text included) and code
    ``threads``. Returns one row per (thread, code) with its score and rank (0 = primary), and what
    was learnt. A thread's codes depend only on the training labels and its own text. ``progress``
    hears of the texts a coder with a dense half embeds (or finds cached), in batches. ``engine``
    (``devquarry.engine``; default local) embeds and codes the threads: the coder is trained here and
    sent fitted to the engine's workers, with the same codes and scores as in this process."""

    counts = labels.primary.value_counts()
    # Calibration needs a few examples of each code; rarer codes cannot be learnt.
    too_rare = sorted(counts[counts < MIN_EXAMPLES].index)
    keyed = labels[~labels.primary.isin(too_rare)]
    if keyed.primary.nunique() < 2:
        raise InputError(
            None,
            f"supervised coding needs labelled threads of at least two codes with {MIN_EXAMPLES}+ labels each "
            f"(the training labels have {keyed.primary.nunique()})",
            field="rater",
        )
    features = features or ThreadFeatures(keyed, apply_to=[threads])
    x = _inputs(coder, features)

    info = {"coder": coder, "codes_too_rare_to_learn": too_rare, "training_threads": len(keyed)}
    if cb.multi_label and not cb.primary_code:
        # Every code a coder gave (at this level) is a target; a thread may get several.
        from devquarry.coders.supervised import SupervisedCoder as MultiCoder

        targets = [[c for c in codes if c not in too_rare] or [p] for codes, p in zip(keyed.codes, keyed.primary)]
        model = MultiCoder().fit(features.of(keyed), targets)
        proba = chunked_proba(engine, model, features.of, threads, features=features)
        # The coder's own rule (SupervisedCoder.predict): every code at 0.5 or more, else the best one.
        picked = [[model.classes_[i] for i in np.flatnonzero(row >= 0.5)] or [model.classes_[int(row.argmax())]] for row in proba]
        col = {c: i for i, c in enumerate(model.classes_)}
        chosen = [sorted(cs, key=lambda c, i=i: -proba[i, col[c]]) for i, cs in enumerate(picked)]
        info["coder"] = "lexical (multi-label)"
    else:
        model = _make(coder, store, progress, engine).fit(x(keyed), keyed.primary.tolist())
        proba = chunked_proba(engine, model, x, threads, also=also, features=features if coder == "lexical" else None)
        if also is not None:  # the gate's probabilities, from the same inputs (see _code_supervised)
            proba, info["also_proba"] = proba
        col = {c: i for i, c in enumerate(model.classes_)}
        chosen = []
        for row in proba:
            order = [model.classes_[i] for i in np.argsort(-row, kind="stable")]
            # A multi-label codebook keeps the runners-up that are likely enough as secondary codes.
            chosen.append(order[:1] + ([c for c in order[1:] if row[col[c]] >= SECONDARY_MIN_SCORE] if cb.multi_label else []))
    src, sid = threads.source.tolist(), threads.source_id.tolist()
    out = pd.DataFrame(
        [(src[i], sid[i], c, float(proba[i, col[c]]), rank) for i, codes in enumerate(chosen) for rank, c in enumerate(codes)],
        columns=["source", "source_id", "code", "score", "rank"],
    )
    info["classes"] = [str(c) for c in model.classes_]
    info["proba"] = proba
    return out, info


def classify(
    store: Store,
    codebook: str,
    *,
    method: str = "supervised",
    coder: str | None = None,
    rater: str | None = None,
    train_raters: list[str] | None = None,
    train_sources: list[str] | None = None,
    level: int | None = None,
    embedding: str | None = None,
    threshold: float = 0.15,
    sources: list[str] | None = None,
    topic_run: int | None = None,
    relevance: bool | None = None,
    llm=None,
    max_threads: int | None = None,
    progress=None,
    notify=None,
    engine=None,
    reuse: bool = True,
) -> pd.DataFrame:
    """Code every thread (of ``sources``) and save the result as a run; returns one row per
    (thread, code) with its score and rank (0 = the primary code, the one shares count).

    The training labels are chosen apart from the threads coded: those of ``train_raters`` (or
    ``rater``; default every rater) on threads of ``train_sources`` (default every source). The
    coder (``coder``, default the codebook's best measured one, see ``devquarry.coders.registry``)
    learns from them only, so a thread's code does not depend on what else is in the store.

    ``relevance`` (supervised only; by default on when the hand labels mark at least a few threads
    irrelevant to the codebook): a first coder, trained on relevant against irrelevant labels,
    sets aside the threads it finds irrelevant (code ``irrelevant``) before the codes are given.

    ``engine`` (``devquarry.engine.get_engine``; default local): where a supervised coder embeds
    and codes the threads (training and saving the run stay here); the codes are the same.

    ``reuse`` (supervised coders): when the latest run of the codebook had the same coder, settings,
    training labels and versions, the threads no ingest has written since keep its codes and only
    the others are coded (``devquarry.classify_reuse``); False codes every thread again."""
    from devquarry.engine import get_engine

    engine = get_engine(engine)  # an unknown engine or a missing extra stops here, before any work
    started = datetime.now(UTC)
    cb = load_codebook(codebook, store=store)
    if method not in METHODS:
        raise InputError(None, f"unknown method {method!r}; use one of {', '.join(METHODS)}", field="method")
    if method == "zero-shot":
        from devquarry.embeddings import get_embedder

        get_embedder(embedding or "minilm")  # a missing extra (minilm, static) stops here, before the threads are read
    raters = list(train_raters or ([rater] if rater else [])) or None
    # The LLM coder's prompt may name a thread's tags, category or url; the others read the text only.
    every = store.threads() if method == "llm" else store.threads(columns=TEXT_COLUMNS)
    threads = every[every.source.isin(sources)] if sources else every
    threads = threads.reset_index(drop=True)
    if threads.empty:
        raise InputError(store.path, "no threads to classify" + (f" in {', '.join(sources)}" if sources else ""))
    info: dict = {}
    gate = None
    if method == "zero-shot":
        texts = [thread_text(t, b) for t, b in zip(threads.title, threads.body_text)]
        zs = ZeroShotCoder(cb.id, embedding or "minilm", threshold, level).fit(texts)
        codes, scores = zs.predict_with_scores(texts)
        out = pd.DataFrame({"source": threads.source, "source_id": threads.source_id, "code": codes, "score": scores})
    elif method == "llm":
        out, info = _llm(store, cb, threads, every, raters, train_sources, level, llm, max_threads, progress, notify, engine)
    else:
        level = 0 if level is None else level
        labels = _labels_with_text(store, cb, every, raters, train_sources, level)
        info["trained_raters"] = sorted(set(labels.rater))
        if method == "topic":
            codes, scores = _topic_codes(store, threads, labels, topic_run)
            out = pd.DataFrame({"source": threads.source, "source_id": threads.source_id, "code": codes, "score": scores})
        else:
            info["coder"] = coder_name(cb, coder)
            settings = {
                "method": method,
                "coder": info["coder"],
                "train_raters": raters,
                "train_sources": train_sources,
                "level": level,
                "embedding": embedding,
                "threshold": threshold,
                "sources": sources,
                "relevance_asked": relevance,
            }
            info["relevance_asked"] = relevance
            prev = reusable_run(store, cb.id, settings, labels_fingerprint(store, cb.id)) if reuse else None
            kept = kept_rows(store, prev, threads) if prev else None
            todo = threads
            if kept is not None and len(kept):
                done = kept[["source", "source_id"]].drop_duplicates()
                todo = threads.merge(done, on=["source", "source_id"], how="left", indicator=True)
                todo = todo[todo._merge == "left_only"].drop(columns="_merge").reset_index(drop=True)
                info.update(reused_from=prev, recoded=len(todo))
            if todo.empty:  # nothing new: the earlier run's codes, with what it learnt
                earlier = json.loads(store.con.execute("SELECT params FROM run WHERE run_id = ?", [prev]).fetchall()[0][0])
                info.update({k: earlier[k] for k in ("codes_too_rare_to_learn", "training_threads", "classes") if k in earlier})
                out = kept
                gate = True if earlier.get("relevance") else None
            else:
                out, gate = _code_supervised(
                    store, cb, every, todo, labels, raters, train_sources, level, relevance, coder, info, progress, notify, engine
                )
                if kept is not None and len(kept):
                    out = pd.concat([kept, out], ignore_index=True)
    # One frame whichever way the rows came (coded now, or kept from a run and read from the store).
    out = _ranked(out).astype({"source": str, "source_id": str, "code": str, "score": "float64", "rank": "int64"})
    run_id = _save(
        store,
        cb,
        method,
        out,
        {
            "method": method,
            **info,
            "train_raters": raters,
            "train_sources": train_sources,
            "level": level,
            "embedding": embedding,
            "threshold": threshold,
            "sources": sources,
            "counting": counting(cb),
            "relevance": gate is not None,
            "engine": engine.name,
            "inputs": f"{threads_fingerprint(every)}/{labels_fingerprint(store, cb.id)}",
        },
        started,
    )
    out.attrs.update(run_id=run_id, counting=counting(cb), **{k: v for k, v in info.items() if k != "classes"})
    return out


def _code_supervised(
    store, cb, every, threads, labels, raters, train_sources, level, relevance, coder, info, progress, notify, engine
):
    """Train the supervised coder (and the relevance gate) and code ``threads``: (rows, gate used)."""
    gate_labels = None
    if relevance is not False:
        gate_labels = _labels_with_text(store, cb, every, raters, train_sources, level, keep_irrelevant=True)
    # The vocabulary comes from the training threads only; every thread coded is transformed once.
    features = ThreadFeatures(labels if gate_labels is None else gate_labels, apply_to=[threads])
    if notify:
        _announce_embedding(store, info["coder"], labels, threads, notify)
    embedded = [0]

    def on_embed(n: int) -> None:
        embedded[0] += n
        if progress:
            progress(embedded[0], None)

    gate_model = None
    if gate_labels is not None and _gate_applies(store, cb, gate_labels, relevance):
        name = coder_name(cb, None, relevance=True) if coder is None else coder
        if name == info["coder"] and not cb.multi_label:  # same inputs: both coders read each chunk once
            gate_model = _fit_gate(store, features, gate_labels, name, engine)
    out, learnt = code_threads(
        threads,
        labels,
        cb,
        coder=info["coder"],
        features=features,
        store=store,
        progress=on_embed,
        engine=engine,
        also=gate_model,
    )
    info.update({k: v for k, v in learnt.items() if k not in ("proba", "also_proba")})
    gate = None
    if gate_labels is not None:
        done = (gate_model, threads, learnt["also_proba"]) if gate_model is not None else None
        gate = _relevance(store, features, gate_labels, cb, out, relevance, threads, coder, engine, done=done)
        if gate is not None:
            out = gate
    return out, gate


# MiniLM on 2 cores embeds about 10 long posts a second at 256 tokens, 50 at 64: worth saying
# before a first run over thousands of threads, with the cheaper coders' names.
_SLOW_EMBEDDINGS = {"minilm": 10.0, "minilm@64": 50.0}


def _announce_embedding(store: Store, coder: str, labels: pd.DataFrame, threads: pd.DataFrame, notify) -> None:
    from devquarry.coders.registry import EMBEDDING
    from devquarry.embeddings.cache import uncached

    spec = EMBEDDING.get(coder)
    if spec not in _SLOW_EMBEDDINGS:
        return
    texts = [thread_text(t, b) for frame in (labels, threads) for t, b in zip(frame.title, frame.body_text)]
    todo = uncached(store, spec, texts)
    minutes = todo / _SLOW_EMBEDDINGS[spec] / 60
    if minutes >= 1:
        notify(
            f"the {coder} coder embeds {todo:,} texts with {spec} first (about {minutes:,.0f} min on 2 cores, "
            "cached for later runs); --coder stacked-static or lexical code in seconds (README: Which coder)"
        )


def _llm(store, cb, threads, every, raters, train_sources, level, settings, max_threads, progress, notify, engine=None):
    from devquarry.coders.llm import LLMSettings, estimate, llm_code

    settings = settings or LLMSettings.from_env()
    examples = None
    try:
        # Labels at their own depth: the coder rolls deeper codes up to the level it codes.
        examples = _labels_with_text(store, cb, every, raters, train_sources, None)
    except InputError:
        if raters or train_sources:
            raise
    todo = threads.head(max_threads) if max_threads is not None else threads
    cost = estimate(cb, todo, examples, settings, level=level, store=store)
    if notify:  # before any call: what the run will cost
        notify(
            f"estimate: {cost['threads']:,} threads, {cost['calls']:,} calls to {settings.model} "
            f"({cost['cached']:,} answers cached), about {cost['prompt_tokens']:,} prompt and "
            f"{cost['answer_tokens']:,} answer tokens"
        )
    out = llm_code(store, cb, threads, examples, settings, level=level, max_threads=max_threads, progress=progress, engine=engine)
    info = {"model": settings.model, "samples": settings.samples, "examples": settings.examples, "max_threads": max_threads}
    if examples is not None:
        info["trained_raters"] = sorted(set(examples.rater))
    info.update({k: v for k, v in out.attrs.items() if isinstance(v, (int, float, str))})
    return out, info


def _gate_applies(store: Store, cb: Codebook, labels: pd.DataFrame, wanted: bool | None) -> bool:
    """Whether the hand labels mark enough threads irrelevant for a relevance coder (an error when
    one was asked for and they do not)."""
    n_irrelevant = int((labels.status == IRRELEVANT).sum())
    if n_irrelevant < MIN_EXAMPLES or n_irrelevant == len(labels):
        if wanted:
            raise InputError(
                store.path, f"relevance coding needs hand labels marking threads irrelevant to {cb.id} (found {n_irrelevant})"
            )
        return False
    return True


def _fit_gate(store: Store, features: ThreadFeatures, labels: pd.DataFrame, name: str, engine=None):
    target = np.where(labels.status == IRRELEVANT, IRRELEVANT, "relevant")
    return _make(name, store, engine=engine).fit(_inputs(name, features)(labels), target.tolist())


def _relevance(
    store: Store,
    features: ThreadFeatures,
    labels: pd.DataFrame,
    cb: Codebook,
    coded: pd.DataFrame,
    wanted: bool | None,
    threads: pd.DataFrame,
    coder: str | None,
    engine=None,
    done=None,
) -> pd.DataFrame | None:
    """Replace the codes of the threads a relevant-vs-irrelevant coder finds irrelevant. ``done``:
    (the fitted gate, the threads it scored, their probabilities) when they were computed with
    the codes."""
    if not _gate_applies(store, cb, labels, wanted):
        return None
    ids = coded[["source", "source_id"]].drop_duplicates().reset_index(drop=True)
    if done is not None:
        gate, scored, proba = done
        at = pd.MultiIndex.from_frame(scored[["source", "source_id"]]).get_indexer(pd.MultiIndex.from_frame(ids))
        proba = proba[at]
    else:
        name = coder_name(cb, None, relevance=True) if coder is None else coder
        gate = _fit_gate(store, features, labels, name, engine)
        ids = ids.merge(threads[["source", "source_id", "title", "body_text"]], on=["source", "source_id"], how="left")
        proba = chunked_proba(engine, gate, _inputs(name, features), ids, features=features if name == "lexical" else None)
    col = list(gate.classes_).index(IRRELEVANT)
    ids["p_irrelevant"] = proba[:, col]
    off = ids[ids.p_irrelevant >= 0.5]
    keep = coded.merge(off[["source", "source_id"]], on=["source", "source_id"], how="left", indicator=True)
    keep = keep[keep._merge == "left_only"].drop(columns="_merge")
    aside = pd.DataFrame(
        {"source": off.source, "source_id": off.source_id, "code": IRRELEVANT, "score": off.p_irrelevant, "rank": 0}
    )
    return pd.concat([keep, aside], ignore_index=True)


def _topic_codes(store: Store, threads: pd.DataFrame, labels: pd.DataFrame, topic_run: int | None):
    from devquarry.topics import latest_topic_run

    run_id = topic_run or latest_topic_run(store)
    assign = store.query("SELECT source, source_id, topic_id FROM topic_assignment WHERE run_id = ?", [run_id])
    merged = assign.merge(labels[["source", "source_id", "primary"]], on=["source", "source_id"])
    if merged.empty:
        raise InputError(store.path, f"no labelled thread is in topic run {run_id}")
    top = merged.groupby("topic_id").primary.agg(lambda s: s.value_counts().index[0])
    share = merged.groupby("topic_id").primary.agg(lambda s: s.value_counts(normalize=True).iloc[0])
    per = threads[["source", "source_id"]].merge(assign, on=["source", "source_id"], how="left")
    codes = [top.get(t, UNCLASSIFIED) if pd.notna(t) else UNCLASSIFIED for t in per.topic_id]
    scores = [float(share.get(t, float("nan"))) if pd.notna(t) else float("nan") for t in per.topic_id]
    return codes, scores


def _ranked(out: pd.DataFrame) -> pd.DataFrame:
    if "rank" in out:
        return out
    # A thread's codes ranked by score: the first is its primary code.
    out = out.assign(_s=out.score.fillna(-1.0)).sort_values(["source", "source_id", "_s"], ascending=[True, True, False])
    return out.assign(rank=out.groupby(["source", "source_id"]).cumcount()).drop(columns="_s").reset_index(drop=True)


def _save(store: Store, cb: Codebook, method: str, out: pd.DataFrame, params: dict, started) -> int:
    with store.transaction() as con:
        run_id = store.next_run_id()
        batch = pa.table(  # noqa: F841 (read by DuckDB)
            {
                "run_id": [run_id] * len(out),
                "codebook": [cb.id] * len(out),
                "source": out.source.tolist(),
                "source_id": out.source_id.tolist(),
                "code": [str(c) for c in out.code],
                "score": [None if pd.isna(s) else float(s) for s in out.score],
                "method": [method] * len(out),
                "rank": [int(r) for r in out["rank"]],
            }
        )
        con.execute("INSERT INTO classification BY NAME SELECT * FROM batch")
        counts = out.code.value_counts().to_dict()
        store.record_run(
            run_id,
            "classify",
            {**params, "codebook": cb.id},
            {"threads": int(out[["source", "source_id"]].drop_duplicates().shape[0]), "assignments": len(out), "codes": counts},
            started,
        )
    return run_id
