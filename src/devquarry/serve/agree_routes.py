"""Agreement between two raters, live, and adjudication into the ``consensus`` rater."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from devquarry.codebooks import load_codebook
from devquarry.errors import InputError
from devquarry.serve import agree, queue
from devquarry.serve.app import form_of, qs, render


def _raters(value: str | None) -> list[str] | None:
    names = [queue.check_rater(r.strip()) for r in (value or "").split(",") if r.strip()]
    if names and len(names) != 2:
        raise InputError(None, "name two raters: ?raters=ana,ben", field="raters")
    return names or None


async def agree_page(request: Request):
    wb = request.app.state.wb
    p = request.query_params
    raters = _raters(p.get("raters"))

    def work(store):
        from devquarry.metrics import store_codebooks

        codebook = p.get("codebook") or next(iter(store_codebooks(store)), None)
        if not codebook:
            return None, [], None, None
        pairs = agree.overlap_raters(store, codebook)
        picked = raters or (list(pairs.iloc[0][["rater_a", "rater_b"]]) if len(pairs) else None)
        results = agree.live_agreement(store, codebook, picked) if picked else None
        return codebook, pairs.to_dict("records"), picked, results

    codebook, pairs, picked, results = await wb.run(work)
    return render(request, "agree.html.j2", codebook=codebook, pairs=pairs, raters=picked, results=results)


async def adjudicate_page(request: Request):
    wb = request.app.state.wb
    p = request.query_params
    raters = _raters(p.get("raters"))
    if not p.get("codebook") or not raters:
        raise InputError(None, "adjudication needs ?codebook=...&raters=a,b", field="raters")

    def work(store):
        cb = load_codebook(p["codebook"], store=store)
        return cb, agree.to_adjudicate(store, cb.id, raters).to_dict("records")

    cb, rows = await wb.run(work)
    return render(request, "adjudicate.html.j2", cb=cb, raters=raters, rows=rows)


async def consensus_post(request: Request):
    wb = request.app.state.wb
    form = await form_of(request)
    raters = _raters(form.get("raters"))
    codes = [form.get("other") or ""] if form.get("use_other") == "1" else [c for c in (form.get("code") or "").split(",") if c]

    def work(store):
        return queue.write_label(
            store,
            wb.runs,
            wb.codebook(form.get("codebook") or ""),
            form.get("source") or "",
            form.get("source_id") or "",
            agree.CONSENSUS,
            codes,
            irrelevant=form.get("irrelevant") == "1",
        )

    await wb.run(work)
    return RedirectResponse(
        f"/adjudicate?{qs({'codebook': form.get('codebook'), 'raters': ','.join(raters or [])})}", status_code=303
    )


ROUTES = [
    Route("/agree", agree_page),
    Route("/adjudicate", adjudicate_page),
    Route("/adjudicate", consensus_post, methods=["POST"]),
]
