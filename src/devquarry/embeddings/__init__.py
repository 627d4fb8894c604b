"""Embedding backends by name, and a cache of vectors in the store.

``get_embedder("lsa")`` (the default), ``get_embedder("static")``, ``get_embedder("minilm")``,
``get_embedder("openai:text-embedding-3-small")``; a backend may name its model after a colon:
``static:/path/to/model2vec-folder`` or ``minilm:/path/to/sentence-transformers-folder``.
"""

from devquarry.embeddings.base import DEFAULT_EMBEDDING, Embedder, get_embedder, register
from devquarry.embeddings.cache import embed_texts, embed_threads

__all__ = ["DEFAULT_EMBEDDING", "Embedder", "embed_texts", "embed_threads", "get_embedder", "register"]
