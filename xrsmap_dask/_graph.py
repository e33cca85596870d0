"""The one way this package writes a dask graph by hand.

Every hand-written graph (the ROI reads of :mod:`xrsmap_dask.lazy`, the map units of
:mod:`xrsmap_dask.maps`, the pixel tiles of :mod:`xrsmap_dask.stats`, the chunk writes of
:mod:`xrsmap_dask.store`) is a few named layers of tasks: a layer name is a readable prefix
plus a token of everything the tasks depend on (``read-roi-<token>``, ``map-unit-<token>``),
so the same work gets the same keys and the dashboard shows what runs.

>>> g = Graph()
>>> name = g.add(layer_name("read-roi", ims.token, roi), {(name, 0, 0, 0): task, ...})
>>> arr = g.array(name, chunks, dtype)                                    # doctest: +SKIP

Tasks are dask's tuples ``(callable, *args)``; an argument that is itself such a tuple runs
inside the same task (that is how a store task reads, reduces and writes in one task).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping


def layer_name(prefix: str, *token_parts: Any) -> str:
    """``prefix-<token>``: the token is dask's hash of ``token_parts``."""
    from dask.base import tokenize

    return f"{prefix}-{tokenize(*token_parts)}"


class Graph:
    """Layers of tasks and their dependencies, turned into a dask collection at the end.

    Parameters
    ----------
    *collections : dask collections
        Collections whose graphs the new layers may depend on (their layers are included).
    """

    def __init__(self, *collections):
        self.layers: dict[str, Mapping] = {}
        self.dependencies: dict[str, set] = {}
        for coll in collections:
            self.include(coll)

    def include(self, collection) -> None:
        """Add the layers of a dask collection (or of a HighLevelGraph)."""
        from dask.highlevelgraph import HighLevelGraph

        graph = collection if isinstance(collection, HighLevelGraph) else \
            collection.__dask_graph__()
        if not isinstance(graph, HighLevelGraph):  # a plain dict graph: one layer
            graph = HighLevelGraph.from_collections(
                f"included-{id(graph)}", dict(graph), dependencies=())
        self.layers.update(graph.layers)
        self.dependencies.update({k: set(v) for k, v in graph.dependencies.items()})

    def add(self, name: str, tasks: Mapping, depends_on: Iterable[str] = ()) -> str:
        """Add layer ``name`` holding ``tasks``, depending on the layers ``depends_on``."""
        self.layers[name] = dict(tasks)
        self.dependencies[name] = set(depends_on)
        return name

    def hlg(self):
        """The :class:`dask.highlevelgraph.HighLevelGraph` of every layer."""
        from dask.highlevelgraph import HighLevelGraph

        return HighLevelGraph(dict(self.layers), {k: set(v) for k, v in
                                                  self.dependencies.items()})

    def array(self, name: str, chunks, dtype):
        """A dask array over layer ``name`` (keys ``(name, i, j, ...)``)."""
        import dask.array as da

        return da.Array(self.hlg(), name, chunks, dtype=dtype)

    def delayed(self, key):
        """A :class:`dask.delayed.Delayed` computing ``key``."""
        from dask.delayed import Delayed

        return Delayed(key, self.hlg())


def array_from_tasks(name: str, tasks: Mapping, chunks, dtype, collections=()):
    """A dask array of one layer of ``tasks`` (keys ``(name, i, j, ...)``)."""
    g = Graph(*collections)
    g.add(name, tasks, [layer for c in collections for layer in c.__dask_layers__()])
    return g.array(name, chunks, dtype)


def compute_threads() -> int:
    """Threads that run tasks: every thread of the active distributed client's workers,
    else dask's ``num_workers`` setting, else the CPU count."""
    import sys

    if "distributed" in sys.modules:
        try:
            from distributed import get_client

            workers = get_client().scheduler_info().get("workers", {})
            threads = sum(int(w.get("nthreads") or 1) for w in workers.values())
            if threads:
                return threads
        except (ImportError, ValueError):
            pass
        except Exception:  # noqa: BLE001 - a client that cannot answer counts as no client
            pass
    import dask

    n = dask.config.get("num_workers", None)
    return int(n) if n else (os.cpu_count() or 1)
