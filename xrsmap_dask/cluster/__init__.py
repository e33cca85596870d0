"""Where the work runs: one :class:`ExecutionSpec`, one :func:`execution` context.

>>> from xrsmap_dask.cluster import ExecutionSpec, execution
>>> spec = ExecutionSpec.from_scheduler("local", n_workers=2)            # doctest: +SKIP
>>> with execution(spec) as ex:                                          # doctest: +SKIP
...     (sum_map,) = ex.compute(lazy_sum_map)

Kinds (``ExecutionSpec.kind``):

``threads``
    dask's threaded scheduler (the default; no extra processes).
``processes``
    dask's multiprocessing scheduler (``n_workers`` processes).
``pathos``
    a pathos ``ProcessPool`` runs the graph's tasks (for users of xrsmap's pathos mode).  The
    read tasks are batched (many frames per task), so this is coarse-grained; results travel
    back to the calling process, as with ``processes``.
``local``
    a ``distributed.LocalCluster`` of ``n_workers`` worker processes; the scheduler and the
    dashboard bind to ``host`` (127.0.0.1 unless asked).
``address``
    an existing scheduler: ``tcp://host:8786`` / ``tls://...`` or the path of a scheduler file
    (``dask scheduler --scheduler-file``).  TLS settings from dask's config
    (``distributed.comm.tls.*``) are honoured through distributed's own ``Security``.
``slurm`` / ``pbs``
    dask-jobqueue's ``SLURMCluster`` / ``PBSCluster``; options left unset fall back to dask's
    ``jobqueue.slurm.*`` / ``jobqueue.pbs.*`` config (``~/.config/dask/jobqueue.yaml``), as
    jobqueue users expect.  Scaled to ``n_workers`` workers, or adaptively between
    ``adaptive_min`` and ``adaptive_max`` *jobs*.  The scheduler must be reachable from the
    compute nodes, so it listens on jobqueue's ``interface`` (or ``host`` if given); its
    dashboard binds to 127.0.0.1 unless asked (reach it through an SSH tunnel).  Workers
    retire before the walltime (``--lifetime`` from it) and their memory limits leave
    headroom in the job's memory: see :mod:`xrsmap_dask._jobqueue`.

Security: a cluster we start that listens beyond the loopback interface (``local`` with
another ``host``; ``slurm``/``pbs`` unless their host is loopback) uses TLS with
distributed's temporary credentials (``tls=False`` to refuse, ``tls=True`` to force it).

Everything the context started (cluster, client, process pool) is released on exit, also on an
exception or Ctrl-C.  Progress: ``dask.diagnostics.ProgressBar`` on the local schedulers,
``distributed.progress`` on a cluster (after a ``waiting for workers: N running, M pending``
line while a cluster we started has no worker yet); both write to ``stream`` (stderr by
default) and are off with ``quiet=True``.  The dashboard link printed is where the scheduler's
dashboard is bound (:func:`dashboard_link`).
"""
from __future__ import annotations

from .executor import (Executor, WorkerLost, dashboard_link, execution,  # noqa: F401
                       text_counter, tunnel_hint)
from .jobqueue import jobqueue_kwargs, make_jobqueue_cluster  # noqa: F401
from .pathos import pathos_get  # noqa: F401
from .spec import (DASHBOARD_PORT, DISTRIBUTED_KINDS, KINDS, ExecutionSpec,  # noqa: F401
                   spec_from_options)

__all__ = ["ExecutionSpec", "spec_from_options", "execution", "Executor", "WorkerLost",
           "dashboard_link", "tunnel_hint", "text_counter", "pathos_get", "jobqueue_kwargs",
           "make_jobqueue_cluster", "KINDS", "DISTRIBUTED_KINDS", "DASHBOARD_PORT"]
