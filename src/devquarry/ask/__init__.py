"""Ask: the resolved threads that answer a new question, the likely fix, and a grounded draft."""

from devquarry.ask.answer import ask, open_index, similar_resolved
from devquarry.ask.index import HybridIndex

__all__ = ["HybridIndex", "ask", "open_index", "similar_resolved"]
