"""Shared test helpers: the real corpora in ../shared/data, a fresh store, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devquarry import Store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(os.environ.get("DEVQUARRY_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def models_home(tmp_path_factory) -> Path:
    """A fresh devquarry model folder for the session; the static model is built in it on first use."""
    home = tmp_path_factory.mktemp("devquarry-home")
    os.environ["DEVQUARRY_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def static_model(models_home) -> Path:
    """The default static model, built offline from the packaged MiniLM by the real command."""
    proc = run_cli("embeddings", "build-static")
    assert proc.returncode == 0, proc.stderr
    folder = models_home / "models" / "static-minilm-256"
    assert (folder / "model.safetensors").stat().st_size > 10_000_000
    return folder


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real corpora not found at {SHARED} (set DEVQUARRY_SHARED_DATA)")
    return SHARED


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "test.duckdb")
    yield s
    s.close()


def run_cli(*args: str, db: Path | None = None, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed console command as a user would."""
    cmd = [sys.executable, "-m", "devquarry", *args]
    if db is not None:
        cmd += ["--db", str(db)]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DEVQUARRY_DB", None) if env is None or "DEVQUARRY_DB" not in env else None
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=600)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    """One `devquarry demo` store for the whole session (built by the real command, once).
    Read it only; a test that writes takes `demo_copy`."""
    folder = tmp_path_factory.mktemp("demo")
    db = folder / "demo.duckdb"
    proc = run_cli("demo", "--out", str(folder / "report.html"), db=db)
    assert proc.returncode == 0, proc.stderr
    (folder / "demo.stderr").write_text(proc.stderr)  # what a user saw: the steps' summary lines
    return db


@pytest.fixture
def demo_copy(demo_db, tmp_path) -> Path:
    """A private copy of the session's demo store (and its ask index, if one was built)."""
    import shutil

    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db, db)
    index = demo_db.with_name(demo_db.name + ".index")
    if index.is_dir():
        shutil.copytree(index, db.with_name(db.name + ".index"))
    return db
