"""Engines: map a batch function over a pandas DataFrame and return the results in input order.

A batch function takes a frame of input rows and returns a frame with one row per input row
(same order). It is either a plain function or a class: a class is made once per worker (once
in-process for the local engine) with ``args``, so a model loads once and serves many batches.
Both must be picklable (module-level) for the Ray engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd

from devquarry.errors import InputError

ENGINES = ("local", "ray")
# Rows a batch function is given at once: a multiple of every embedder's own batch (64, 128), so a
# remote batch is split the way the local loop splits it.
BATCH_ROWS = 1024

BatchFn = Callable[[pd.DataFrame], pd.DataFrame] | type


def made(fn: BatchFn, args: tuple = ()) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The callable for ``fn``: a class is instantiated with ``args``, a function used as is."""
    return fn(*args) if isinstance(fn, type) else fn


def checked(batch: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
    if len(out) != len(batch):
        raise RuntimeError(f"a batch function returned {len(out)} rows for {len(batch)}: it must map rows one to one")
    return out.reset_index(drop=True)


class Engine:
    """Where the heavy per-thread work runs. ``local`` is True for the in-process engine, whose
    callers keep their own direct code path (exactly what they did before engines existed)."""

    name = "base"
    local = True

    def map_batches(
        self,
        frame: pd.DataFrame,
        fn: BatchFn,
        *,
        args: tuple = (),
        batch_rows: int = BATCH_ROWS,
        gpus: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """``fn`` over ``frame`` in batches of ``batch_rows``; the results concatenated in input order
        (index 0..n-1). ``gpus``: the work can use a GPU (an engine with some may give each worker one);
        ``progress`` hears the rows done, batch by batch."""
        raise NotImplementedError


class LocalEngine(Engine):
    """A plain loop in this process."""

    name = "local"
    local = True

    def map_batches(self, frame, fn, *, args=(), batch_rows=BATCH_ROWS, gpus=False, progress=None) -> pd.DataFrame:
        call = made(fn, args)
        frame = frame.reset_index(drop=True)
        parts = []
        for start in range(0, len(frame), batch_rows):
            batch = frame.iloc[start : start + batch_rows].reset_index(drop=True)
            parts.append(checked(batch, call(batch)))
            if progress:
                progress(len(batch))
        if not parts:  # no rows: the function's columns are unknown
            return pd.DataFrame()
        return pd.concat(parts, ignore_index=True)

    def __repr__(self) -> str:
        return "LocalEngine()"


def get_engine(name: str | Engine | None = None, address: str | None = None) -> Engine:
    """``"local"`` (the default) or ``"ray"`` (``address``: a running cluster, e.g. ``HEAD:6379``;
    default ``$DEVQUARRY_RAY_ADDRESS``, else a local cluster started on first use); an Engine is
    returned as is."""
    if isinstance(name, Engine):
        return name
    name = (name or "local").strip().lower()
    if name == "local":
        if address:
            raise InputError(None, "--ray-address needs --engine ray", field="engine")
        return LocalEngine()
    if name == "ray":
        from devquarry.engine.ray_engine import RayEngine

        return RayEngine(address or os.environ.get("DEVQUARRY_RAY_ADDRESS") or None)
    raise InputError(None, f"unknown engine {name!r}; use one of {', '.join(ENGINES)}", field="engine")


def is_local(engine: Engine | str | None) -> bool:
    return engine is None or engine == "local" or isinstance(engine, Engine) and engine.local
