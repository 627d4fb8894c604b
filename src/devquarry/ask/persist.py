"""How a ``HybridIndex`` is saved and opened: whole generations swapped in one step.

A save is whole or nothing: the files go into a new generation folder (``.STORE.index.gen/NAME.gen-*``,
beside the index folder, which keeps one entry per index), segments kept from the previous one as
hard links, and the index's own path, a symbolic link, is then swapped to it in one ``os.replace``.
A process killed mid-save leaves the previous index in place. An index is checked when opened
(every file there and loadable, as many documents as vectors as BM25 documents in each segment)
and rebuilt when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np

from devquarry.ask.segments import Segment, link_file

FILES = ("docs.parquet", "tokens.arrow", "bm25", "vectors.npy", "meta.arrow", "live.npy", "embedder.joblib", "index.json")
SAVE_STEPS = (*FILES, "swap")
# Tests only: the save step after which the process kills itself, to prove no kill breaks the index.
KILL_AT_ENV = "DEVQUARRY_TEST_KILL_INDEX_SAVE_AT"


def _step(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync(path: Path) -> None:
    """Flush a file (or folder) to disk, so a generation is whole before it becomes the index."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(path: Path):
    """One saver at a time per index (the lock goes with the process, however it ends)."""
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fitted_backend(embedding: str) -> bool:
    """Whether the embedding is fitted on the corpus it embeds (so it is persisted, and refitted as it grows)."""
    return embedding.split(":")[0].split("@")[0] == "lsa"


class SavedIndex:
    """The persistence of ``HybridIndex`` (which supplies ``folder``, ``embedding``, ``segments``,
    ``live``, ``embedder``, ``embedder_file``, ``fitted_on``, ``docs``, ``size`` and ``_assemble``)."""

    @property
    def generations(self) -> Path:
        """Where the saved generations of the indexes in ``folder.parent`` live."""
        return self.folder.parent.with_name(f".{self.folder.parent.name}.gen")

    def _load(self) -> None:
        """Open the saved index, or start empty (to be rebuilt) when there is none or it does not hold
        together: any failure to read it (a truncated file, a missing one, counts that differ) means
        rebuild, never an error for the user nor an index that silently leaves threads out."""
        self.discarded = None
        if not (self.folder / "index.json").exists() and not self.folder.exists():
            return
        try:
            self._read()
        except Exception as exc:  # noqa: BLE001 - parquet, numpy, joblib and json each fail their own way
            self.discarded = f"{type(exc).__name__}: {exc}"
            self.segments, self.live, self.embedder, self.embedder_file, self.fitted_on = [], None, None, None, 0
            self._assemble()

    def _read(self) -> None:
        info = json.loads((self.folder / "index.json").read_text())
        if info.get("embedding") != self.embedding:
            return
        n = int(info["documents"])
        self.segments = [Segment.read(self.folder / name) for name in info["segments"]]
        positions = sum(len(s) for s in self.segments)
        self.live = None
        if info.get("dead"):
            self.live = np.load(self.folder / "live.npy", allow_pickle=False)
            if self.live.dtype != bool or len(self.live) != positions:
                raise ValueError(f"{len(self.live)} live flags for {positions} positions")
        self._assemble()
        if self.size != n:
            raise ValueError(f"{self.size} documents; index.json says {n}")
        if len({v.shape[1] for s in self.segments for v in [s.vectors] if len(v)}) > 1:
            raise ValueError("the segments' vectors differ in length")
        if fitted_backend(self.embedding) and n:
            # Its arrays memory-mapped: a query reads the columns of its terms, not all of the SVD's
            # components (256 x the vocabulary, 134 MB at 100,000 threads: a second of every ask).
            self.embedder = joblib.load(self.folder / "embedder.joblib", mmap_mode="r")
            self.embedder_file = self.folder / "embedder.joblib"
            if np.asarray(self.embedder.encode(["check"])).shape[-1] != self.dimension:
                raise ValueError("the fitted embedder does not match the vectors")
        self.fitted_on = info.get("fitted_on", 0)

    def _save(self) -> None:
        """Write a whole new generation, then make it the index in one step (see the module's doc)."""
        parent, name = self.folder.parent, self.folder.name
        gens = self.generations
        parent.mkdir(parents=True, exist_ok=True)
        gens.mkdir(exist_ok=True)
        prefix = f"{name}.gen-"
        with _locked(gens / f"{name}.lock"):
            gen = Path(tempfile.mkdtemp(prefix=prefix, dir=gens))
            for seg in self.segments:
                seg.write(gen / seg.name, _step)
            if self.live is not None:
                np.save(gen / "live.npy", self.live)
            _step("live.npy")
            if self.embedder is not None and fitted_backend(self.embedding):
                if self.embedder_file is not None and self.embedder_file.exists():
                    link_file(self.embedder_file, gen / "embedder.joblib")  # not refitted: 1.4 s of pickling saved
                else:
                    joblib.dump(self.embedder, gen / "embedder.joblib")
            _step("embedder.joblib")
            info = {
                "embedding": self.embedding,
                "documents": self.size,
                "fitted_on": self.fitted_on,
                "segments": [s.name for s in self.segments],
                "dead": len(self.docs) - self.size,
            }
            (gen / "index.json").write_text(json.dumps(info))
            _step("index.json")
            for f in [*gen.rglob("*"), gen]:  # linked files cost nothing: nothing of theirs is unwritten
                _fsync(f)
            link = gens / f"{gen.name}.link"  # its target is read from the index folder, where it goes
            os.symlink(Path("..", gens.name, gen.name), link)  # relative: both folders may move with the store
            if self.folder.is_dir() and not self.folder.is_symlink():  # an index saved in place by an older version
                self.folder.rename(gen.with_name(gen.name + ".old"))
            os.replace(link, self.folder)
            _fsync(parent)
            _step("swap")
            for seg in self.segments:  # read from the index's path: the same files, whichever generation is there
                seg.folder = self.folder / seg.name
            if self.embedder is not None and fitted_backend(self.embedding):
                self.embedder_file = self.folder / "embedder.joblib"
            # Generations of earlier saves, and any that a killed save left half-written.
            for p in gens.iterdir():
                if p.name.startswith(prefix) and p != gen:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    @property
    def state_file(self) -> Path:
        """The store's state (``answer.store_state``) when this index last matched it; kept beside the
        generations, outside them, so that an unchanged store costs no save."""
        return self.generations / f"{self.folder.name}.state"

    def read_state(self) -> str | None:
        try:
            info = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        # Only for the generation it was written for: a save since then (another process) voids it.
        return info.get("state") if info.get("documents") == self.size and info.get("target") == self._target() else None

    def write_state(self, state: str) -> None:
        self.generations.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(self.state_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"state": state, "documents": self.size, "target": self._target()}))
        os.replace(tmp, self.state_file)

    def _target(self) -> str | None:
        return os.readlink(self.folder) if self.folder.is_symlink() else None
