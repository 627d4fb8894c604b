"""The lexical coder's chunks go to worker processes on the local engine, with the codes of one process."""

import sys

from devquarry import Store
from devquarry.classify import classify
from devquarry.workers import WORKERS_ENV

CB = "chen2025-so-api"


def test_chunks_coded_by_two_workers_get_the_codes_of_one_process(so_labelled_copy, monkeypatch):
    monkeypatch.setattr(sys.modules["devquarry.classify"], "PREDICT_ROWS", 700)  # 2,299 threads: four chunks
    runs = {}
    with Store(so_labelled_copy) as s:
        for n in ("1", "2"):
            monkeypatch.setenv(WORKERS_ENV, n)
            out = classify(s, CB, coder="lexical", reuse=False)
            runs[n] = out.sort_values(["source", "source_id", "rank"], ignore_index=True)
    assert runs["1"].source_id.nunique() == 2299 and runs["1"].code.nunique() >= 5
    assert runs["2"].equals(runs["1"])
