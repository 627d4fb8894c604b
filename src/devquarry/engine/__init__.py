"""Engines for devquarry's heavy per-thread work (HTML to text, embedding, coding with a trained coder).

``get_engine("local")`` (the default) runs it in this process, as devquarry always has;
``get_engine("ray", address)`` runs it on a Ray cluster with Ray Data (the ``[ray]`` extra), with
the same results. Training and writing to the store stay with the caller either way.
"""

from devquarry.engine.base import ENGINES, Engine, LocalEngine, get_engine, is_local
from devquarry.engine.tasks import encode, html_to_texts, predict_proba

__all__ = ["ENGINES", "Engine", "LocalEngine", "encode", "get_engine", "html_to_texts", "is_local", "predict_proba"]
