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


def token(*parts: Any) -> str:
    """dask's hash of ``parts`` (equal parts, equal token)."""
    from dask.base import tokenize

    return tokenize(*parts)


def layer_name(prefix: str, *token_parts: Any) -> str:
    """``prefix-<token>``: the token is dask's hash of ``token_parts``."""
    return f"{prefix}-{token(*token_parts)}"


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

    def copy(self) -> "Graph":
        g = Graph()
        g.layers, g.dependencies = dict(self.layers), {k: set(v) for k, v in
                                                       self.dependencies.items()}
        return g

    def subgraph(self, names):
        """The HighLevelGraph of the layers ``names`` and those they depend on."""
        from dask.highlevelgraph import HighLevelGraph

        keep, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name not in keep:
                keep.add(name)
                todo.extend(self.dependencies.get(name, ()))
        return HighLevelGraph({k: self.layers[k] for k in keep},
                              {k: set(self.dependencies[k]) & keep for k in keep})

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


def compute_units(layout, graph, keys, **compute_kwargs) -> dict:
    """Compute the unit tasks ``keys`` of ``graph`` (unit ``u`` at ``keys[u]``, each giving
    ``{array name: block}``) and assemble the arrays of ``layout`` (an
    :class:`~xrsmap_dask.layout.OutputLayout`) as numpy; no task beyond the units runs."""
    import dask
    from dask.delayed import Delayed

    import numpy as np

    results = dask.compute(*[Delayed(k, graph, layer=k[0] if isinstance(k, tuple) else k)
                             for k in keys], **compute_kwargs)
    out = {}
    for a in layout.arrays:
        out[a.name] = np.array(a.values, dtype=a.dtype) if a.values is not None else \
            np.full(a.shape, a.fill, dtype=a.dtype)
    for u, blocks in enumerate(results):
        for name, block in blocks.items():
            out[name][layout.region(u, name)] = block
    return out


def compute_request(request, prefix: str = "unit", **compute_kwargs) -> dict:
    """Compute an :class:`~xrsmap_dask.layout.OutputRequest` in memory: one task per unit
    (named ``prefix-<token>``), arrays assembled as :func:`compute_units` does."""
    g = Graph()
    deps = []
    if request.graph is not None:
        g.include(request.graph)
        deps = list(request.graph.layers)
    name = layer_name(prefix, request.job_digest(), request.layout.to_attrs())
    keys = [(name, u) for u in range(request.layout.nunits)]
    g.add(name, {k: request.unit_task(u) for u, k in enumerate(keys)}, deps)
    return compute_units(request.layout, g.hlg(), keys, **compute_kwargs)


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
