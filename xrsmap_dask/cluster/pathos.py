"""dask's local scheduler on a pathos ``ProcessPool`` (xrsmap's pathos mode)."""
from __future__ import annotations

import os

def pathos_get(pool, num_workers: int):
    """A dask ``get`` function running the graph's tasks on a pathos ``ProcessPool``.

    dask's own asynchronous local scheduler hands batches of ready tasks to
    ``pool.pipe`` (pathos' blocking apply, called from ``num_workers`` feeder threads);
    tasks and results are serialised with cloudpickle, as dask's ``processes`` scheduler does.
    """
    from concurrent.futures import ThreadPoolExecutor

    import cloudpickle
    from dask.local import get_async
    from dask.multiprocessing import pack_exception, reraise
    from dask.optimization import cull, fuse
    from dask.utils import ensure_dict

    def get(dsk, keys, **kwargs):
        kwargs.pop("num_workers", None)
        if hasattr(dsk, "__dask_graph__"):
            dsk = dsk.__dask_graph__()
        dsk = ensure_dict(dsk)
        dsk2, deps = cull(dsk, keys)
        dsk3, deps = fuse(dsk2, keys, deps)
        with ThreadPoolExecutor(num_workers, thread_name_prefix="pathos-feed") as feeders:
            def submit(fn, *args):
                return feeders.submit(pool.pipe, fn, *args)

            return get_async(submit, num_workers, dsk3, keys, get_id=os.getpid,
                             dumps=cloudpickle.dumps, loads=cloudpickle.loads,
                             pack_exception=pack_exception, raise_exception=reraise,
                             chunksize=1, **kwargs)

    return get


def close_pathos(pool) -> None:
    pool.close()
    pool.join()
    pool.clear()
