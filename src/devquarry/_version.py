"""devquarry's version, in a module of its own so that anything may read it without importing the
package's steps (the crawler's User-Agent, ``devquarry --version``)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("devquarry")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.1.0"
