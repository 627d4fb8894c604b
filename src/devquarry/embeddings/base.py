"""The embedder contract and the registry of backends."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from devquarry.errors import InputError

# Chosen by bench/embeddings.py (see README): on the labelled Stack Overflow questions LSA was
# the fastest and best on topic coherence and diversity, label prediction and retrieval.
DEFAULT_EMBEDDING = "lsa"

# Models load from installed packages or local folders only; never from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Embedder:
    """Turns texts into L2-normalised float32 vectors.

    ``backend`` and ``model_id`` key the cache; ``cacheable`` is False for backends whose
    vectors depend on the corpus they are fitted on (LSA).
    """

    backend: str = "base"
    cacheable: bool = True

    @property
    def model_id(self) -> str:
        raise NotImplementedError

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        raise NotImplementedError

    # BERTopic calls these when it embeds words or documents itself (KeyBERT-like labels).
    def embed(self, documents, verbose: bool = False) -> np.ndarray:
        return self.encode(list(documents))


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def encode_batches(
    encode_batch: Callable[[list[str]], np.ndarray],
    texts: list[str],
    batch_size: int,
    dim: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Encode in batches so a progress bar can move; returns normalised vectors."""
    out = []
    for i in range(0, len(texts), batch_size):
        batch = list(texts[i : i + batch_size])
        out.append(encode_batch(batch))
        if progress:
            progress(len(batch))
    if not out:
        return np.zeros((0, dim), dtype=np.float32)
    return normalise(np.vstack(out))


_REGISTRY: dict[str, Callable[[str | None], Embedder]] = {}


def register(name: str):
    def deco(factory):
        _REGISTRY[name] = factory
        return factory

    return deco


def get_embedder(spec: str | Embedder | None = None) -> Embedder:
    """``"name"`` or ``"name:model"`` -> an Embedder; an Embedder is returned as is."""
    if isinstance(spec, Embedder):
        return spec
    spec = spec or DEFAULT_EMBEDDING
    name, _, model = spec.partition(":")
    if "@" in name:  # minilm@128: an option with no model named
        name, _, option = name.partition("@")
        model = f"{model}@{option}"
    _load_backends()
    if name not in _REGISTRY:
        raise InputError(None, f"unknown embedding backend {name!r}; known: {', '.join(sorted(_REGISTRY))}", field="embedding")
    return _REGISTRY[name](model or None)


def _load_backends() -> None:
    # Imported here so that `import devquarry` does not pull in torch.
    from devquarry.embeddings import lsa, minilm, openai_api, static  # noqa: F401
