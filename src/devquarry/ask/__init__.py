"""Ask: the resolved threads that answer a new question, the likely fix, and a grounded draft."""

from devquarry.ask.answer import ask, open_index, similar_resolved
from devquarry.ask.index import HybridIndex

__all__ = ["HybridIndex", "ask", "open_index", "similar_resolved"]


class _Step(__import__("types").ModuleType):
    """``dq.ask(store, question)`` works whether ``dq.ask`` is this package or its function."""

    def __call__(self, *args, **kwargs):
        return ask(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _Step
