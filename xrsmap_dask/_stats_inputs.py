"""Where statistics run and what they read: the active distributed client's workers (memory
limits, threads), the default memory budget, and the checks of the ``data``,
``memory_budget`` and ``method`` arguments of :mod:`xrsmap_dask.stats`."""
from __future__ import annotations

import builtins
import os
import sys

from . import _stat_kernels as K
from .errors import InputError
from .imageseries import as_imageseries

# -- environment -------------------------------------------------------------------------------
def _client():
    if "distributed" not in sys.modules:  # no client can be active; importing it is slow
        return None
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def _worker_info() -> tuple[int | None, int | None]:
    """(smallest worker memory limit, largest worker thread count) of the active client."""
    client = _client()
    if client is None:
        return None, None
    try:
        workers = client.scheduler_info().get("workers", {})
    except Exception:  # noqa: BLE001 - a client that cannot answer counts as no client
        return None, None
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    threads = [w.get("nthreads") or 1 for w in workers.values()]
    limits = [m for m in limits if m]
    return (builtins.min(limits) if limits else None,
            builtins.max(threads) if threads else None)


def default_memory_budget() -> int:
    """:data:`xrsmap_dask.stats.DEFAULT_BUDGET_FRACTION` of the smallest worker's memory
    limit (with an active distributed client) or of the machine's total memory (psutil)."""
    limit, _ = _worker_info()
    if limit is None:
        import psutil

        limit = psutil.virtual_memory().total
    from . import stats  # the fraction is read where users set it

    return int(limit * stats.DEFAULT_BUDGET_FRACTION)


def _threads() -> int:
    _, threads = _worker_info()
    if threads:
        return int(threads)
    import dask

    n = dask.config.get("num_workers", None)
    return int(n) if n else (os.cpu_count() or 1)


# -- inputs ------------------------------------------------------------------------------------
def _is_dask(obj) -> bool:
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, da.Array)


def _as_input(data):
    if _is_dask(data):
        if data.ndim != 3:
            raise InputError(f"expected a (frames, rows, cols) dask array, got {data.ndim}-D",
                             argument="data")
        return data
    try:
        return as_imageseries(data)
    except TypeError as exc:
        raise InputError(str(exc), argument="data") from None


def _budget(memory_budget) -> int:
    if memory_budget is None:
        return default_memory_budget()
    try:
        b = int(memory_budget)
    except (TypeError, ValueError):
        b = 0
    if b <= 0:
        raise InputError(f"must be a positive number of bytes, got {memory_budget!r}",
                         argument="memory_budget")
    return b


def _check_method(method: str) -> str:
    if method not in K.METHODS:
        raise InputError(f"must be one of {K.METHODS}, got {method!r}", argument="method")
    return method
