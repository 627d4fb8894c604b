"""Browsing: the overview, thread lists with facets, one thread, topics, hotspots, ask."""

from __future__ import annotations

import pandas as pd
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from devquarry.errors import InputError
from devquarry.serve import queries
from devquarry.serve.app import form_of, render

BYS = ("source", "code", "category", "topic", "period")


def group_query(by: str, group, codebook: str | None, codes_from: str | None) -> dict | None:
    """The thread-list filter of one group of a metrics or hotspots table (None: no such filter)."""
    group = str(group)
    if group == "(all)":
        return None
    if by == "source":
        return {"source": group}
    if by == "topic":
        return {"topic": group.split(":", 1)[0]}
    if by == "code" and codebook:
        # codes of a classify run filter by machine code; hand labels by hand code
        return {"codebook": codebook, "hand" if (codes_from or "").startswith("hand labels") else "machine": group}
    return None


def codebook_of(request: Request, store) -> str | None:
    from devquarry.metrics import default_codebook

    return request.query_params.get("codebook") or default_codebook(store)


def _overview(store, wb, by: str, codebook: str | None, source: str | None, since=None, until=None) -> dict:
    from devquarry.hotspots import hotspots
    from devquarry.metrics import metrics

    sources = [source] if source else None
    out = {
        "per_source": store.query(
            """SELECT source, count(*) AS threads, avg(coalesce(is_resolved, false)::INT) AS resolved,
                  min(created_at) AS first, max(created_at) AS last FROM threads GROUP BY 1 ORDER BY 2 DESC"""
        ).to_dict("records")
    }
    notes = []
    try:
        m = wb.cached(
            ("metrics", by, codebook, source, since, until),
            metrics,
            by,
            codebook=codebook if by == "code" else None,
            sources=sources,
            since=since,
            until=until,
        )
        out["metrics"] = m.to_dict("records")
        out["metrics_link"] = lambda g: group_query(by, g, m.attrs.get("codebook", codebook), m.attrs.get("codes_from"))
        if m.attrs.get("codes_from"):
            notes.append(f"codes from {m.attrs['codes_from']}")
    except InputError as exc:
        out["metrics"], out["metrics_link"], _ = [], None, notes.append(exc.message)
    try:
        h = wb.cached(
            ("hotspots", codebook, source, since, until),
            hotspots,
            "code" if codebook else "source",
            codebook=codebook,
            sources=sources,
            since=since,
            until=until,
        )
        out["hotspots"] = h.to_dict("records")
        out["hot_link"] = lambda g: group_query(h.attrs.get("by", "code"), g, h.attrs.get("codebook"), h.attrs.get("codes_from"))
    except InputError as exc:
        out["hotspots"], out["hot_link"], _ = [], None, notes.append(exc.message)
    out["notes"] = notes
    return out


async def overview(request: Request):
    wb = request.app.state.wb
    p = request.query_params
    by = p.get("by") or "source"
    if by not in BYS:
        raise InputError(None, f"unknown grouping {by!r}; use one of {', '.join(BYS)}", field="by")

    def work(store):
        codebook = codebook_of(request, store)
        from devquarry.metrics import store_codebooks

        return (
            codebook,
            store_codebooks(store),
            _overview(store, wb, by, codebook, p.get("source"), p.get("since") or None, p.get("until") or None),
            wb.cached(("facets", codebook), queries.facets, codebook),
        )

    codebook, codebooks, data, facets = await wb.run(work)
    return render(
        request,
        "overview.html.j2",
        by=by,
        bys=BYS,
        codebook=codebook,
        codebooks=codebooks,
        data=data,
        facets=facets,
        source=p.get("source") or "",
        since=p.get("since") or "",
        until=p.get("until") or "",
    )


async def threads(request: Request):
    wb = request.app.state.wb
    p = request.query_params
    try:
        offset = max(0, int(p.get("offset") or 0))
    except ValueError:
        raise InputError(None, "offset must be a whole number", field="offset") from None

    def work(store):
        codebook = codebook_of(request, store)
        flt = queries.Filter.from_params(p, codebook)
        table = wb.summary()
        rows, total = queries.thread_page(store, flt, offset, table=table)
        return codebook, flt, rows.to_dict("records"), total, wb.cached(("facets", codebook), queries.facets, codebook)

    codebook, flt, rows, total, facets = await wb.run(work)
    params = {**flt.values, "codebook": codebook or ""}
    return render(
        request,
        "threads.html.j2",
        rows=rows,
        total=total,
        offset=offset,
        page=queries.PAGE,
        params=params,
        flt=flt.values,
        codebook=codebook,
        facets=facets,
    )


async def thread(request: Request):
    wb = request.app.state.wb
    source, source_id = request.query_params.get("source"), request.query_params.get("id")
    if not source or not source_id:
        raise HTTPException(404, "name the thread: /thread?source=...&id=...")

    def work(store):
        runs = wb.cached(("latest_runs",), queries.latest_runs)
        d = queries.thread_detail(store, source, source_id, summary=wb.summary(), runs=runs)
        if d is not None:
            index = wb.cached(("index",), queries.ask_index, threads_only=True)
            d["similar"] = queries.similar(store, d["thread"], index, summary=wb.summary())
        return d

    d = await wb.run(work)
    if d is None:
        raise HTTPException(404, "no such thread")
    return render(request, "thread.html.j2", **d)


async def topics(request: Request):
    wb = request.app.state.wb

    def work(store):
        from devquarry.topics import theme_table, topic_table

        if queries.topic_run(store) is None:
            return None, None
        return topic_table(store).to_dict("records"), theme_table(store).to_dict("records")

    topic_rows, themes = await wb.run(work)
    return render(request, "topics.html.j2", topics=topic_rows, themes=themes)


async def hotspots_page(request: Request):
    wb = request.app.state.wb

    def work(store):
        from devquarry.hotspots import hotspots

        codebook = codebook_of(request, store)
        try:
            h = wb.cached(("hotspots", codebook, None), hotspots, "code" if codebook else "source", codebook=codebook)
        except InputError as exc:
            return codebook, [], exc.message, None
        link = lambda g: group_query(h.attrs.get("by", "code"), g, h.attrs.get("codebook"), h.attrs.get("codes_from"))  # noqa: E731
        return codebook, h.to_dict("records"), h.attrs.get("grouping_note"), link

    codebook, rows, note, link = await wb.run(work)
    return render(request, "hotspots.html.j2", rows=rows, codebook=codebook, note=note, hot_link=link)


def ask_embedding(store) -> str:
    """`ask`'s default embedding, unless only an index of LSA exists (built by the report or by
    `devquarry ask --embedding lsa`): the page then reuses it rather than embed every thread anew."""
    from devquarry.ask.answer import default_embedding, index_folder

    default = default_embedding()
    if not index_folder(store, default).exists() and index_folder(store, "lsa").exists():
        return "lsa"
    return default


def draft_model() -> str | None:
    """The chat model the ask page can draft with: set by the server's environment, as for `ask --draft`."""
    import os

    if os.environ.get("DEVQUARRY_OPENAI_BASE_URL") and os.environ.get("DEVQUARRY_CHAT_MODEL"):
        return os.environ["DEVQUARRY_CHAT_MODEL"]
    return None


async def ask_page(request: Request):
    wb = request.app.state.wb
    # A draft calls a (paid) endpoint: only a POST with the CSRF token asks for one, never a link.
    form = await form_of(request) if request.method == "POST" else {}
    question = (form.get("q") or request.query_params.get("q") or "").strip()[:2000]
    drafting = request.method == "POST" and form.get("draft") == "1" and draft_model() is not None
    hits, attrs, error, answer = [], {}, None, None
    if question:

        def work(store):
            from devquarry.ask import ask
            from devquarry.ask.answer import hit_bodies

            h = ask(store, question, k=5, codebook=codebook_of(request, store), embedding=ask_embedding(store))
            return h, (hit_bodies(store, h) if drafting else {})

        try:
            found, bodies = await wb.run(work)
            hits, attrs = found.to_dict("records"), dict(found.attrs)
            if drafting:
                from starlette.concurrency import run_in_threadpool

                from devquarry.ask.draft import draft

                answer = await run_in_threadpool(draft, question, found, bodies, confident=bool(attrs.get("confident")))
        except InputError as exc:
            error = exc.message
        except OSError as exc:  # a read-only store whose index cannot be written beside it
            error = f"the ask index cannot be built here ({exc.__class__.__name__}); run `devquarry ask` once"
    return render(
        request,
        "ask.html.j2",
        question=question,
        hits=hits,
        attrs=attrs,
        error=error,
        isna=pd.isna,
        model=draft_model(),
        answer=answer,
    )


ROUTES = [
    Route("/", overview),
    Route("/threads", threads),
    Route("/thread", thread),
    Route("/topics", topics),
    Route("/hotspots", hotspots_page),
    Route("/ask", ask_page, methods=["GET", "POST"]),
]
