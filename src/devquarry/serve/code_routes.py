"""Coding: a rater's queue for a codebook, one thread at a time, coded by keyboard (static/code.js)
or by the buttons without script; each POST writes one label and redirects to the next thread."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from devquarry.errors import InputError
from devquarry.serve import queries, queue
from devquarry.serve.app import form_of, qs, render

QUEUE_KEYS = ("codebook", "rater", "n", "seed", "order", "mode", *queries.FILTER_KEYS)


def _queue_params(values) -> dict:
    return {k: values.get(k) for k in QUEUE_KEYS if values.get(k)}


def _int(value, default: int, name: str) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise InputError(None, f"{name} must be a whole number", field=name) from None


async def code_page(request: Request):
    wb = request.app.state.wb
    p = request.query_params
    params = _queue_params(p)
    if wb.read_only:
        return render(request, "error.html.j2", status=403, message="the workbench was started with --read-only: coding is off")
    if not p.get("codebook") or not p.get("rater"):

        def choices(store):
            from devquarry.metrics import store_codebooks

            return store_codebooks(store)

        filters = [(k, v) for k, v in params.items() if k in queries.FILTER_KEYS and k != "rater"]
        return render(
            request, "code_start.html.j2", codebooks=await wb.run(choices), params=params, filters=filters, sheets=list(wb.sheets)
        )
    rater = queue.check_rater(p.get("rater"))
    n, seed = _int(p.get("n"), 50, "n"), _int(p.get("seed"), 42, "seed")
    mode = p.get("mode") or "blind"
    if mode not in ("blind", "assisted"):
        raise InputError(None, "mode is blind or assisted", field="mode")

    def work(store):
        cb = wb.codebook(p["codebook"])
        flt = queries.Filter.from_params(p, cb.id)
        table = wb.summary()
        order = p.get("order") or "sample"
        # a queue's threads depend on the threads only, not on labels: made once per queue
        keys = wb.cached(
            ("queue", cb.id, tuple(sorted(flt.values.items())), n, seed, order),
            queue.queue_keys,
            flt,
            n,
            seed,
            order,
            table=table,
            sheets=wb.sheets,
            threads_only=True,
        )
        keys, done = queue.progress(store, keys, cb.id, rater)
        todo = keys[~keys.done]
        current = None
        if len(todo):
            first = todo.iloc[0]
            current = queue.card(store, first.source, first.source_id, cb.id, assisted=mode == "assisted", summary=table)
        return cb, len(keys), done, current

    cb, total, done, current = await wb.run(work)
    return render(
        request,
        "code.html.j2",
        cb=cb,
        keys=queue.key_map(cb),
        rater=rater,
        mode=mode,
        total=total,
        done=done,
        current=current,
        params=params,
        last=p.get("last") or "",
        message=p.get("msg") or "",
    )


async def label_post(request: Request):
    wb = request.app.state.wb
    form = await form_of(request)
    params = _queue_params(form)
    rater = queue.check_rater(form.get("rater"))
    codes = [c for c in (form.get("code") or "").split(",") if c]
    irrelevant = form.get("irrelevant") == "1"

    def work(store):
        return queue.write_label(
            store,
            wb.runs,
            wb.codebook(form.get("codebook") or ""),
            form.get("thread_source") or "",
            form.get("thread_id") or "",
            rater,
            codes,
            irrelevant=irrelevant,
            uncertain=form.get("unsure") == "1",
            note=form.get("note"),
        )

    await wb.run(work)
    last = f"{form.get('thread_source')}|{form.get('thread_id')}"
    back = form.get("back")
    if back and back.startswith("/") and not back.startswith("//"):
        return RedirectResponse(back, status_code=303)
    return RedirectResponse(f"/code?{qs(params, last=last)}", status_code=303)


async def undo_post(request: Request):
    wb = request.app.state.wb
    form = await form_of(request)
    params = _queue_params(form)
    rater = queue.check_rater(form.get("rater"))
    source, _, source_id = (form.get("last") or "").partition("|")
    if not source_id:
        return RedirectResponse(f"/code?{qs(params, msg='nothing to undo')}", status_code=303)
    n = await wb.run(queue.undo_label, form.get("codebook") or "", source, source_id, rater)
    return RedirectResponse(f"/code?{qs(params, msg=f'undone: {n} label rows removed')}", status_code=303)


ROUTES = [
    Route("/code", code_page),
    Route("/code/label", label_post, methods=["POST"]),
    Route("/code/undo", undo_post, methods=["POST"]),
]
