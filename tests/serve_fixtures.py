"""Helpers of the workbench tests: a small real store (the bundled Stack Overflow corpus with the
study's labels, a Stack Exchange dump with replies, hostile posts) and `devquarry serve` run as a
real process on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

from devquarry import Store

FIXTURES = Path(__file__).parent / "fixtures"
CODEBOOK = "chen2025-so-api"
EVIL_TITLE = '<script>alert("t")</script> Why does <img src=x onerror=alert(1)> break my RAG?'
EVIL_BODY = "<script>alert('b')</script><img src=x onerror=alert(2)> see javascript:alert(3)"


def build_store(path: Path) -> Path:
    """The demo corpus (4,081 questions, the study's labels as rater ``study``), ``se_small`` (a
    Stack Exchange site with answers, one accepted) and ``evil-forum``: posts whose title, body
    and url try to run script."""
    from devquarry import ingest_stackexchange, ingest_table
    from devquarry.demo import demo_source
    from devquarry.ingest import ingest
    from devquarry.labeling import import_labels_from_threads

    evil = path.with_name("evil.csv")
    rows = [
        {
            "url": "javascript:alert(document.cookie)" if i == 0 else f"https://example.org/t/{i}",
            "title": EVIL_TITLE if i == 0 else f"evil forum thread {i} <b>bold?</b>",
            "body": EVIL_BODY,
            "views": 100 - i,
            "resolved": i % 2 == 0,
            "created_at": f"2024-0{1 + i % 9}-01",
        }
        for i in range(6)
    ]
    pd.DataFrame(rows).to_csv(evil, index=False)
    with Store(path) as s:
        ingest(s, demo_source())
        import_labels_from_threads(s, CODEBOOK, "stackoverflow", rater="study")
        ingest_stackexchange(s, FIXTURES / "se_small", site="cstheory.meta.stackexchange.com")
        ingest_table(s, [evil], source="evil-forum", mapping="is_resolved=resolved")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`devquarry serve` in a process of its own; ``url`` once it answers."""

    def __init__(self, db: Path, *args: str, host: str = "127.0.0.1") -> None:
        self.db, self.args, self.host = db, args, host
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devquarry",
                "serve",
                "--db",
                str(self.db),
                "--host",
                self.host,
                "--port",
                str(self.port),
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devquarry serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                urllib.request.urlopen(self.url + "/static/app.css", timeout=2).close()
                return self
            except urllib.error.HTTPError:  # answered (403 without the token): it is up
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("devquarry serve did not answer in time")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no checkpoint; what the store holds is what was committed."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc:
            for stream in (self.proc.stdout, self.proc.stderr):
                stream.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_store(tmp_path_factory) -> Path:
    """The store of ``build_store``, built once per session (``conftest.built_once``)."""
    from conftest import built_once

    return built_once(tmp_path_factory, "serve", lambda folder: build_store(folder / "serve.duckdb")) / "serve.duckdb"


def private_copy(db: Path, folder: Path) -> Path:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / db.name
    shutil.copy(db, copy)
    return copy
