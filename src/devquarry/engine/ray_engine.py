"""The Ray Data engine: the same batch functions, run by workers of a Ray cluster.

The frame is staged as Parquet shards, read by ``ray.data.read_parquet`` and mapped with
``map_batches`` by a pool of actors (each makes the batch function once: a model loads once per
worker); the results come back as they are done and are put in input order by a row number.
Only the work travels: the store stays with the caller, which writes the results in one transaction.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from devquarry.engine.base import BATCH_ROWS, Engine, checked, made
from devquarry.extras import require

ROW = "__devquarry_row"
WHAT = "the ray engine"


class _Rowed:
    """The batch function on a worker, carrying each row's number through it."""

    def __init__(self, fn, args) -> None:
        self.call = made(fn, args)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch[ROW].to_numpy()
        out = checked(batch, self.call(batch.drop(columns=[ROW]).reset_index(drop=True)))
        return out.assign(**{ROW: rows})


class RayEngine(Engine):
    """``address``: a running cluster (``HEAD:6379``, ``ray://HEAD:10001``, ``auto``); None starts a
    local one (or joins the one ``ray.init`` already made in this process).

    ``staging``: a folder every node can read (a shared file system) for the Parquet shards; by
    default a temporary folder, read directly when all of the cluster runs on this machine and
    otherwise sent through Ray's object store (a remote node cannot read a local folder)."""

    name = "ray"
    local = False

    def __init__(self, address: str | None = None, staging: str | Path | None = None) -> None:
        require("ray", "ray", WHAT)  # a missing extra stops a command here, before its long work
        self.address = address
        self.staging = staging or os.environ.get("DEVQUARRY_RAY_STAGING") or None

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r})"

    def _ray(self):
        ray = require("ray", "ray", WHAT)
        require("ray.data", "ray", WHAT)  # ray without its [data] part
        for name in ("ray", "ray.data"):  # Ray's start and progress lines are noise in a command's output
            logging.getLogger(name).setLevel(logging.WARNING)
        # Its warning that the bars we turn off below are off, too.
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        if not ray.is_initialized():
            options = {"logging_level": logging.WARNING, "log_to_driver": True}
            if self.address is None:
                options["include_dashboard"] = False  # a local cluster for one command: no web server
            ray.init(address=self.address, **options)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller draws its own bar from `progress`
        context.print_on_execution_start = False
        return ray

    def workers(self) -> int:
        """CPUs of the cluster: the most actors one map runs at once."""
        return max(1, int(self._ray().cluster_resources().get("CPU", 1)))

    def gpus(self) -> int:
        return int(self._ray().cluster_resources().get("GPU", 0))

    def _one_machine(self, ray) -> bool:
        here = ray.util.get_node_ip_address()
        return all(n["NodeManagerAddress"] == here for n in ray.nodes() if n.get("Alive"))

    def map_batches(self, frame, fn, *, args=(), batch_rows=BATCH_ROWS, gpus=False, progress=None) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        ray = self._ray()
        n = len(frame)
        if n == 0:
            return pd.DataFrame()
        frame = frame.reset_index(drop=True).assign(**{ROW: np.arange(n, dtype=np.int64)})
        workers = self.workers()
        # Shards of whole batches (a batch never spans two), enough of them to keep every worker busy.
        batches = -(-n // batch_rows)
        per_shard = -(-batches // min(batches, 4 * workers)) * batch_rows
        tables = [pa.Table.from_pandas(frame.iloc[i : i + per_shard], preserve_index=False) for i in range(0, n, per_shard)]
        gpu_count = self.gpus() if gpus else 0
        # At least one actor, at most one per CPU (per GPU for work that uses one), never more than shards.
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, min(gpu_count or workers, len(tables))))
        with tempfile.TemporaryDirectory(prefix="devquarry-ray-", dir=self.staging) as folder:
            if self.staging or self._one_machine(ray):
                paths = []
                for i, table in enumerate(tables):
                    paths.append(str(Path(folder) / f"part-{i:05d}.parquet"))
                    pq.write_table(table, paths[-1])
                # The folder, not the list of files: Ray resolves a list's paths in threads that import
                # fsspec's HTTP module at once, which fails at random where aiohttp is not installed.
                ds = ray.data.read_parquet(folder, override_num_blocks=len(paths))
            else:
                ds = ray.data.from_arrow(tables)
            ds = ds.map_batches(
                _Rowed,
                fn_constructor_args=(fn, args),
                batch_format="pandas",
                batch_size=batch_rows,
                num_gpus=1 if gpu_count else None,
                compute=pool,
            )
            parts = []
            for part in ds.iter_batches(batch_format="pandas", batch_size=None):
                parts.append(part)
                if progress:
                    progress(len(part))
        out = pd.concat(parts, ignore_index=True).sort_values(ROW, kind="stable")
        if len(out) != n or not np.array_equal(out[ROW].to_numpy(), np.arange(n)):
            raise RuntimeError(f"the ray engine got {len(out)} result rows back for {n}")
        out = out.drop(columns=[ROW]).reset_index(drop=True)
        # Ray hands back Arrow-backed columns: the local engine's numpy dtypes, so that both return the same frame.
        return out.astype({c: t.numpy_dtype for c, t in out.dtypes.items() if isinstance(t, pd.ArrowDtype)})
