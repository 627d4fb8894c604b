"""Shared test helpers: the real corpora in ../shared/data, a fresh store, the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devquarry import Store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(os.environ.get("DEVQUARRY_SHARED_DATA", ROOT.parent / "shared" / "data"))


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A session fixture's folder, built once for the whole run: under pytest-xdist the first worker
    to ask builds it (``build(folder)``) while the others wait on a lock; every worker then gets a
    private copy, so that no two processes open one DuckDB file or write one folder."""
    import shutil

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    done = shared / f"built-{name}"
    with FileLock(str(shared / f"built-{name}.lock")):
        if not (done / ".complete").exists():
            shutil.rmtree(done, ignore_errors=True)
            done.mkdir()
            build(done)
            (done / ".complete").touch()
    if shared == root:
        return done
    mine = root / f"copy-{name}"
    if not mine.exists():
        shutil.copytree(done, mine, symlinks=True)
    return mine


@pytest.fixture(scope="session", autouse=True)
def models_home(tmp_path_factory) -> Path:
    """A fresh devquarry model folder for the session; the static model is built in it on first use."""
    home = tmp_path_factory.mktemp("devquarry-home")
    os.environ["DEVQUARRY_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def static_model(models_home, tmp_path_factory) -> Path:
    """The default static model, built offline from the packaged MiniLM by the real command."""
    import shutil

    def build(folder: Path) -> None:
        proc = run_cli("embeddings", "build-static", "--out", str(folder / "static-minilm-256"))
        assert proc.returncode == 0, proc.stderr

    built = built_once(tmp_path_factory, "static-model", build) / "static-minilm-256"
    folder = models_home / "models" / "static-minilm-256"
    if not folder.exists():
        shutil.copytree(built, folder)
    assert (folder / "model.safetensors").stat().st_size > 10_000_000
    return folder


@pytest.fixture
def shared() -> Path:
    return _shared_or_skip()


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "test.duckdb")
    yield s
    s.close()


def run_cli(
    *args: str, db: Path | None = None, cwd: Path | None = None, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run the installed console command as a user would."""
    cmd = [sys.executable, "-m", "devquarry", *args]
    if db is not None:
        cmd += ["--db", str(db)]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DEVQUARRY_DB", None) if env is None or "DEVQUARRY_DB" not in env else None
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)


SO_MAP = "created_at=created_time,accepted_at=accepted_time,is_resolved=has_accepted_answer,score=votes,label=type"
FORUM_MAP = "source_id=ID,title=Title,url=Link,is_resolved=Solved,label=Label"

# Building these fixtures takes longer than a quick loop should: a test that uses one is `slow`.
SLOW_FIXTURES = {"demo_db", "demo_copy", "static_model"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def copy_store(db: Path, folder: Path) -> Path:
    """A private copy of a store (and its ask index, if it has one) in ``folder``."""
    import shutil

    copy = folder / db.name
    shutil.copy(db, copy)
    index = db.with_name(db.name + ".index")
    if index.is_dir():
        shutil.copytree(index, copy.with_name(copy.name + ".index"))
    return copy


def _shared_or_skip() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real corpora not found at {SHARED} (set DEVQUARRY_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def so_db(tmp_path_factory) -> Path:
    """The 2,299 hand-labelled Stack Overflow questions, ingested once per session (labels not imported).
    Open it read-only; a test that writes takes ``so_copy`` (or ``copy_store`` in a module fixture)."""
    path = _shared_or_skip() / "stackoverflow-openai-api" / "questions_labelled.csv.gz"
    from devquarry import ingest_table

    def build(folder: Path) -> None:
        with Store(folder / "so.duckdb") as s:
            ingest_table(s, [path], source="stackoverflow", mapping=SO_MAP)

    return built_once(tmp_path_factory, "so", build) / "so.duckdb"


@pytest.fixture(scope="session")
def so_labelled_db(so_db, tmp_path_factory) -> Path:
    """``so_db`` with the study's hand labels imported into chen2025-so-api (rater "study")."""
    from devquarry.labeling import import_labels_from_threads

    db = copy_store(so_db, tmp_path_factory.mktemp("so-labelled"))
    with Store(db) as s:
        counts = import_labels_from_threads(s, "chen2025-so-api", "stackoverflow", "study")
    assert counts.coded.iloc[0] == 2299
    return db


@pytest.fixture(scope="session")
def forum_labelled_db(tmp_path_factory) -> Path:
    """The 1,183 hand-labelled forum questions with the paper's labels imported into chen2024-forum."""
    path = _shared_or_skip() / "openai-forum-labelled" / "annotated_questions.csv.gz"
    from devquarry import ingest_table
    from devquarry.labeling import import_labels_from_threads

    def build(folder: Path) -> None:
        with Store(folder / "forum.duckdb") as s:
            ingest_table(s, [path], source="openai-forum-labelled", mapping=FORUM_MAP)
            import_labels_from_threads(s, "chen2024-forum", "openai-forum-labelled", "paper")

    return built_once(tmp_path_factory, "forum-labelled", build) / "forum.duckdb"


@pytest.fixture
def so_copy(so_db, tmp_path) -> Path:
    return copy_store(so_db, tmp_path)


@pytest.fixture
def so_labelled_copy(so_labelled_db, tmp_path) -> Path:
    return copy_store(so_labelled_db, tmp_path)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    """One `devquarry demo` store for the whole session (built by the real command, once).
    Read it only; a test that writes takes `demo_copy`."""

    def build(folder: Path) -> None:
        # The default coder embeds the 4,081 questions with MiniLM: minutes on 2 cores another worker shares.
        proc = run_cli("demo", "--out", str(folder / "report.html"), db=folder / "demo.duckdb", timeout=1800)
        assert proc.returncode == 0, proc.stderr
        (folder / "demo.stderr").write_text(proc.stderr)  # what a user saw: the steps' summary lines

    return built_once(tmp_path_factory, "demo", build) / "demo.duckdb"


@pytest.fixture
def demo_copy(demo_db, tmp_path) -> Path:
    """A private copy of the session's demo store (and its ask index, if one was built)."""
    return copy_store(demo_db, tmp_path)


# Debian's Chromium, driven by Playwright in the report and workbench tests (.ci/run installs it).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (.ci/run installs it)")


def launch_chromium(playwright):
    """Headless Chromium that reaches for nothing beyond the pages it is given."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )
