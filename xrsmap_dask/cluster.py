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
    dashboard binds to 127.0.0.1 unless asked (reach it through an SSH tunnel).

Everything the context started (cluster, client, process pool) is released on exit, also on an
exception or Ctrl-C.  Progress: ``dask.diagnostics.ProgressBar`` on the local schedulers,
``distributed.progress`` on a cluster; both write to ``stream`` (stderr by default) and are
off with ``quiet=True``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, TextIO

from .errors import InputError
from .progress import text_counter

#: options that only a dask-jobqueue cluster uses
_JOBQUEUE_ONLY = ("cores", "memory", "walltime", "queue", "account", "interface",
                  "job_directives")
KINDS = ("threads", "processes", "pathos", "local", "address", "slurm", "pbs")
#: kinds that run on a distributed scheduler (futures, dashboard, worker faults)
DISTRIBUTED_KINDS = ("local", "address", "slurm", "pbs")
#: the default dashboard port of a cluster we start (bound to ``host``)
DASHBOARD_PORT = 8787
_ADDRESS_RE = re.compile(r"^[a-z][a-z0-9+]*://\S+$")
_WALLTIME_RE = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")


@dataclass(frozen=True)
class ExecutionSpec:
    """Where and how dask graphs run; validated once on creation.

    Parameters
    ----------
    kind : {'threads', 'processes', 'pathos', 'local', 'address', 'slurm', 'pbs'}
    n_workers : int, optional
        Threads (``threads``), processes (``processes``, ``pathos``), workers (``local``) or
        total workers to scale to (``slurm``/``pbs``; one job runs ``cores //
        threads_per_worker`` of them).  ``None``: dask's default / one job.
    threads_per_worker : int, optional
        Threads per worker process (``local``, ``slurm``, ``pbs``).
    address : str, optional
        ``kind='address'`` only: ``tcp://host:port`` (any distributed protocol) or the path of
        a scheduler file.
    cores, memory, walltime, queue, account : optional
        Per job (``slurm``/``pbs``): cores, memory (``'16GiB'``), walltime (``'HH:MM:SS'``,
        ``'D-HH:MM:SS'``), partition/queue, account.  ``None``: jobqueue's config.
    adaptive_min, adaptive_max : int, optional
        Adaptive scaling between this many *jobs* (``slurm``/``pbs``) or workers (``local``).
    dashboard : bool or str
        ``True``: a dashboard on ``host:8787`` (another port if taken) for clusters we start;
        ``False``: none; a string: the address to bind (``'0.0.0.0:8787'`` to expose it).
    host : str, optional
        Interface a ``local`` cluster binds to (default 127.0.0.1); for ``slurm``/``pbs`` the
        scheduler host (default: jobqueue's ``interface``/``scheduler-options`` config).
    interface : str, optional
        ``slurm``/``pbs``: network interface of workers and scheduler (e.g. ``'ib0'``).
    job_directives : tuple of str
        ``slurm``/``pbs``: extra ``#SBATCH``/``#PBS`` directives (without the prefix).
    local_directory : str, optional
        Worker scratch directory (``local``, ``slurm``, ``pbs``).
    """

    kind: str = "threads"
    n_workers: int | None = None
    threads_per_worker: int | None = None
    address: str | None = None
    cores: int | None = None
    memory: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    adaptive_min: int | None = None
    adaptive_max: int | None = None
    dashboard: bool | str = True
    host: str | None = None
    interface: str | None = None
    job_directives: tuple[str, ...] = ()
    local_directory: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"must be one of {', '.join(KINDS)} (or a scheduler address), "
                             f"got {self.kind!r}", argument="scheduler")
        for name in ("n_workers", "threads_per_worker", "cores"):
            _check_positive(getattr(self, name), name)
        for name in ("adaptive_min", "adaptive_max"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise InputError(f"must be an int >= 0, got {value!r}", argument=name)
        if (self.adaptive_min is not None and self.adaptive_max is not None
                and self.adaptive_min > self.adaptive_max):
            raise InputError(f"adaptive_min {self.adaptive_min} > adaptive_max "
                             f"{self.adaptive_max}", argument="adaptive_min")
        if self.adaptive_min is not None and self.adaptive_max is None:
            raise InputError("adaptive scaling needs adaptive_max", argument="adaptive_max")
        if self.kind == "address":
            if not self.address or not isinstance(self.address, str):
                raise InputError("kind='address' needs a scheduler address (tcp://host:port) "
                                 "or a scheduler file", argument="address")
        elif self.address is not None:
            raise InputError(f"only for kind='address', not {self.kind!r}", argument="address")
        if self.memory is not None:
            from dask.utils import parse_bytes

            try:
                if parse_bytes(str(self.memory)) <= 0:
                    raise ValueError
            except (ValueError, TypeError):
                raise InputError(f"not a memory size like '16GiB': {self.memory!r}",
                                 argument="memory") from None
        if self.walltime is not None and not _WALLTIME_RE.match(str(self.walltime)):
            raise InputError(f"expected HH:MM:SS, D-HH:MM:SS or minutes, got "
                             f"{self.walltime!r}", argument="walltime")
        if not isinstance(self.dashboard, (bool, str)):
            raise InputError(f"must be true, false or an address, got {self.dashboard!r}",
                             argument="dashboard")
        if not isinstance(self.job_directives, tuple):
            object.__setattr__(self, "job_directives", tuple(self.job_directives))
        if self.kind in ("threads", "processes", "pathos") and self.threads_per_worker:
            raise InputError(f"not used by kind={self.kind!r} (use n_workers)",
                             argument="threads_per_worker")
        if self.kind not in ("slurm", "pbs"):
            for name in _JOBQUEUE_ONLY:
                if getattr(self, name):
                    raise InputError(f"only for slurm/pbs, not {self.kind!r}", argument=name)
        if self.kind == "address":
            for name in ("n_workers", "threads_per_worker", "adaptive_min", "adaptive_max",
                         "host", "local_directory"):
                if getattr(self, name) is not None:
                    raise InputError("not used with an existing scheduler (its workers are "
                                     "already started)", argument=name)

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def from_scheduler(cls, scheduler: str | None = None, **kwargs: Any) -> "ExecutionSpec":
        """Spec from a ``--scheduler`` value: a kind, ``proto://host:port`` or a scheduler file.

        ``None`` is the default kind (``threads``).  Keyword arguments are the other fields;
        ``None`` values are dropped (field defaults apply).
        """
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if scheduler is None or scheduler in KINDS:
            return cls(kind=scheduler or "threads", **kwargs)
        scheduler = str(scheduler)
        if _ADDRESS_RE.match(scheduler) or scheduler.endswith(".json") or os.path.isfile(scheduler):
            return cls(kind="address", address=scheduler, **kwargs)
        raise InputError(f"must be one of {', '.join(KINDS)}, a scheduler address "
                         f"(tcp://host:port) or a scheduler file (*.json), got {scheduler!r}",
                         argument="scheduler")

    def replace(self, **changes: Any) -> "ExecutionSpec":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def distributed(self) -> bool:
        """True when the work runs on a distributed scheduler."""
        return self.kind in DISTRIBUTED_KINDS

    def dashboard_address(self, default_host: str = "127.0.0.1") -> str | None:
        """Bind address of a dashboard we start, or ``None`` for no dashboard."""
        if self.dashboard is False:
            return None
        if self.dashboard is True:
            return f"{self.host or default_host}:{DASHBOARD_PORT}"
        return self.dashboard


_OPTION_ALIASES = {"workers": "n_workers", "job_directive": "job_directives"}


def spec_from_options(options: dict, overrides: dict | None = None,
                      argument: str = "cluster") -> ExecutionSpec:
    """ExecutionSpec from a mapping of options (a job spec's ``cluster:`` section).

    Keys: ``scheduler`` (a kind, an address or a scheduler file) and the other
    :class:`ExecutionSpec` fields (``workers`` = ``n_workers``; ``-`` or ``_``).
    ``overrides`` (e.g. command-line options) win over ``options``; when they name another
    ``scheduler``, ``options`` are not used at all.
    """
    merged: dict[str, Any] = {}
    options, overrides = options or {}, overrides or {}
    if overrides.get("scheduler") is not None and \
            overrides.get("scheduler") != options.get("scheduler"):
        options = {}  # another scheduler was chosen: the options written for the first go
    for source in options, overrides:
        if not isinstance(source, dict):
            raise InputError("must be a mapping of execution options", argument=argument)
        for key, value in source.items():
            key = str(key).replace("-", "_")
            merged[_OPTION_ALIASES.get(key, key)] = value
    scheduler = merged.pop("scheduler", None)
    fields = set(ExecutionSpec.__dataclass_fields__) - {"kind", "address"}
    unknown = set(merged) - fields
    if unknown:
        raise InputError(f"unknown options {sorted(unknown)}; allowed: scheduler, workers, "
                         + ", ".join(sorted(fields - {"n_workers"})), argument=argument)
    if isinstance(merged.get("job_directives"), (list, tuple)):
        merged["job_directives"] = tuple(merged["job_directives"])
    if scheduler is not None and not isinstance(scheduler, str):
        raise InputError(f"scheduler must be a string, got {scheduler!r}", argument=argument)
    return ExecutionSpec.from_scheduler(scheduler, **merged)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive(value, name: str) -> None:
    if value is not None and (not _is_int(value) or value < 1):
        raise InputError(f"must be an int >= 1, got {value!r}", argument=name)


# -- faults --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerLost:
    """A worker the scheduler lost while we computed (its tasks were rescheduled)."""

    worker: str
    processing_tasks: int
    lost_results: int


# -- pathos --------------------------------------------------------------------------------
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


# -- the executor --------------------------------------------------------------------------
@dataclass
class Executor:
    """Computes dask collections where an :class:`ExecutionSpec` says; made by :func:`execution`.

    Attributes
    ----------
    spec : ExecutionSpec
    client : distributed.Client or None
        The client of a distributed kind.
    cluster : LocalCluster, SLURMCluster, PBSCluster or None
        A cluster this executor started (closed on exit).
    dashboard_link : str or None
    faults : list of WorkerLost
        Workers lost during :meth:`compute` calls (their tasks were rescheduled).
    """

    spec: ExecutionSpec
    quiet: bool = False
    stream: TextIO | None = None
    client: Any = None
    cluster: Any = None
    dashboard_link: str | None = None
    faults: list[WorkerLost] = field(default_factory=list)
    _pool: Any = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def counter(self, label: str):
        """:func:`text_counter` on this executor's progress stream (``None`` when quiet)."""
        return text_counter(label, quiet=self.quiet, stream=self.stream)

    # -- lifecycle -------------------------------------------------------------------------
    def _start(self) -> None:
        import dask

        spec = self.spec
        kind = spec.kind
        if kind == "threads":
            cfg = {"scheduler": "threads"}
            if spec.n_workers:
                cfg["num_workers"] = spec.n_workers
            self._stack.enter_context(dask.config.set(cfg))
        elif kind == "processes":
            cfg = {"scheduler": "processes"}
            if spec.n_workers:
                cfg["num_workers"] = spec.n_workers
            self._stack.enter_context(dask.config.set(cfg))
        elif kind == "pathos":
            from pathos.pools import ProcessPool

            n = spec.n_workers or os.cpu_count() or 1
            self._pool = ProcessPool(nodes=n)
            self._stack.callback(_close_pathos, self._pool)
            self._stack.enter_context(dask.config.set(scheduler=pathos_get(self._pool, n)))
        else:
            self._start_distributed()
            self._stack.enter_context(dask.config.set(scheduler=self._distributed_get))
            self.dashboard_link = _dashboard_link(self.client)
            if self.dashboard_link:
                self._say(f"dask dashboard: {self.dashboard_link}")

    def _start_distributed(self) -> None:
        from distributed import Client, LocalCluster
        from distributed.security import Security

        spec = self.spec
        if spec.kind == "address":
            security = Security()  # dask config's distributed.comm.tls.* settings
            address = spec.address
            if not _ADDRESS_RE.match(address) and not os.path.isfile(address):
                raise InputError("scheduler file not found (start `dask scheduler "
                                 "--scheduler-file FILE` first)", path=address)
            where = {"address": address} if _ADDRESS_RE.match(address) else \
                {"scheduler_file": address}
            try:
                self.client = Client(**where, security=security, set_as_default=True)
            except (OSError, TimeoutError, TypeError, ValueError) as exc:
                # unreachable, wrong protocol, or tls:// without TLS settings in dask's config
                raise InputError(f"cannot connect to the scheduler: {exc}",
                                 argument="scheduler") from None
            self._stack.callback(self.client.close)
            return
        if spec.kind == "local":
            host = spec.host or "127.0.0.1"
            self.cluster = LocalCluster(
                n_workers=spec.n_workers or min(4, os.cpu_count() or 1),
                threads_per_worker=spec.threads_per_worker or 1,
                processes=True, host=host, silence_logs=logging.ERROR,
                dashboard_address=spec.dashboard_address(host),
                local_directory=spec.local_directory)
            self._stack.callback(self.cluster.close)
            if spec.adaptive_max is not None:
                self.cluster.adapt(minimum=spec.adaptive_min or 0, maximum=spec.adaptive_max)
        else:
            import shutil

            submit = "sbatch" if spec.kind == "slurm" else "qsub"
            if shutil.which(submit) is None:
                # jobqueue would fail to submit in the background and the job wait forever
                raise InputError(f"--scheduler {spec.kind} submits worker jobs with "
                                 f"{submit!r}, which is not on this node's PATH; run on a "
                                 "login node, or start workers by hand "
                                 "(deploy/start_dask_manual.sh)", argument="scheduler")
            self.cluster = make_jobqueue_cluster(spec)
            self._stack.callback(self.cluster.close)
            if spec.adaptive_max is not None:
                self.cluster.adapt(minimum_jobs=spec.adaptive_min or 0,
                                   maximum_jobs=spec.adaptive_max)
            elif spec.n_workers:
                self.cluster.scale(n=spec.n_workers)
            else:
                self.cluster.scale(jobs=1)
        self.client = Client(self.cluster, set_as_default=True)
        self._stack.callback(self.client.close)

    def close(self) -> None:
        """Release everything this executor started (idempotent)."""
        self._stack.close()

    # -- computing -------------------------------------------------------------------------
    @property
    def scheduler(self):
        """What to pass as dask's ``scheduler=``: a name or a get function.

        On a cluster it is a get function that submits the graph to the client, shows
        ``distributed.progress`` and records lost workers, so ``dask.compute(...,
        scheduler=ex.scheduler)`` anywhere (e.g. in :func:`xrsmap_dask.store.write_maps`)
        gets the same progress bar and fault report as :meth:`compute`.
        """
        if self.client is not None:
            return self._distributed_get
        if self._pool is not None:
            return pathos_get(self._pool, self.spec.n_workers or os.cpu_count() or 1)
        return self.spec.kind

    def compute(self, *collections, label: str | None = None, **kwargs) -> tuple:
        """Compute dask collections (with a progress bar) and return their results.

        ``label`` is printed before the bar.  Workers lost meanwhile are recorded in
        :attr:`faults` and reported on the stream.
        """
        if not collections:
            return ()
        if label:
            self._say(label)
        import dask

        with self.progress():
            return dask.compute(*collections, scheduler=self.scheduler, **kwargs)

    def _distributed_get(self, dsk, keys, **kwargs):
        """dask get function on the client: progress bar and lost-worker report."""
        seen = self._fault_ids()
        futures = self.client.get(dsk, keys, sync=False, **kwargs)
        try:
            if not self.quiet:
                from distributed import progress

                with contextlib.redirect_stdout(self._out()):
                    progress(futures, notebook=False,
                             scheduler=self.client.scheduler.address)
                self._out().write("\n")
            return self.client.gather(futures)
        finally:
            self._record_faults(seen)
            del futures

    def persist(self, *collections, **kwargs) -> tuple:
        """Persist collections (in worker memory on a cluster, computed in place locally)."""
        if self.client is not None:
            out = self.client.persist(list(collections), **kwargs)
            return tuple(out)
        import dask

        with self.progress():
            return dask.persist(*collections, scheduler=self.scheduler, **kwargs)

    @contextlib.contextmanager
    def progress(self) -> Iterator[None]:
        """A progress bar over local-scheduler computations made inside the block.

        (On a cluster the bar comes from :meth:`compute`; this is then a no-op.)
        """
        if self.quiet or self.client is not None:
            yield
            return
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=self._out(), dt=0.2):
            yield

    @property
    def retries(self) -> int:
        """Tasks that ran on a worker that was lost and were rescheduled."""
        return sum(f.processing_tasks + f.lost_results for f in self.faults)

    # -- helpers ---------------------------------------------------------------------------
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=self._out(), flush=True)

    def _lost_events(self) -> list[dict]:
        try:
            events = self.client.get_events("all")
        except Exception:  # an old or remote scheduler without events: no report
            return []
        return [msg for _, msg in events
                if isinstance(msg, dict) and msg.get("action") == "remove-worker"
                and not msg.get("expected", False)]

    def _fault_ids(self) -> set:
        return {(m.get("worker"), m.get("stimulus_id")) for m in self._lost_events()}

    def _record_faults(self, seen: set) -> None:
        for m in self._lost_events():
            if (m.get("worker"), m.get("stimulus_id")) in seen:
                continue
            fault = WorkerLost(str(m.get("worker")), len(m.get("processing-tasks") or ()),
                               len(m.get("lost-computed-tasks") or ()))
            self.faults.append(fault)
            self._say(f"warning: worker {fault.worker} was lost; {fault.processing_tasks} "
                      f"running and {fault.lost_results} finished tasks were rescheduled")


def _close_pathos(pool) -> None:
    pool.close()
    pool.join()
    pool.clear()


def _dashboard_link(client) -> str | None:
    try:
        info = client.scheduler_info()
        if not info.get("services", {}).get("dashboard"):
            return None
        return client.dashboard_link
    except Exception:
        return None


def jobqueue_kwargs(spec: ExecutionSpec) -> dict:
    """Keyword arguments for dask-jobqueue's cluster class from a ``slurm``/``pbs`` spec.

    Only options set in the spec are passed: the rest come from dask's ``jobqueue.<kind>.*``
    config.  The dashboard binds to 127.0.0.1 unless ``spec.dashboard`` names an address.
    """
    import dask

    if spec.kind not in ("slurm", "pbs"):
        raise InputError(f"not a jobqueue kind: {spec.kind!r}", argument="scheduler")
    try:
        import dask_jobqueue  # noqa: F401 - loads jobqueue's config defaults
    except ImportError:
        raise InputError("needs dask-jobqueue (pip install 'xrsmap-dask[jobqueue]')",
                         argument="scheduler") from None
    kw: dict[str, Any] = {}
    for name in ("cores", "memory", "walltime", "queue", "account", "interface",
                 "local_directory"):
        value = getattr(spec, name)
        if value is not None:
            kw[name] = value
    cores = spec.cores or dask.config.get(f"jobqueue.{spec.kind}.cores", None)
    if spec.threads_per_worker:
        if not cores or cores % spec.threads_per_worker:
            raise InputError(f"threads_per_worker {spec.threads_per_worker} does not divide "
                             f"the job's cores {cores}", argument="threads_per_worker")
        kw["processes"] = cores // spec.threads_per_worker
    if spec.job_directives:
        kw["job_extra_directives"] = list(spec.job_directives)
    options = dict(dask.config.get(f"jobqueue.{spec.kind}.scheduler-options", None) or {})
    if spec.dashboard is False:
        options["dashboard"] = False
        options["dashboard_address"] = None
    elif spec.dashboard is not True or "dashboard_address" not in options:
        options["dashboard_address"] = spec.dashboard_address()
    if spec.host is not None:
        options["host"] = spec.host
    kw["scheduler_options"] = options
    return kw


def make_jobqueue_cluster(spec: ExecutionSpec):
    """An unscaled ``SLURMCluster``/``PBSCluster`` for ``spec`` (the caller closes it)."""
    try:
        import dask_jobqueue
    except ImportError:
        raise InputError("needs dask-jobqueue (pip install 'xrsmap-dask[jobqueue]')",
                         argument="scheduler") from None
    cls = dask_jobqueue.SLURMCluster if spec.kind == "slurm" else dask_jobqueue.PBSCluster
    try:
        return cls(**jobqueue_kwargs(spec))
    except ValueError as exc:  # e.g. cores/memory neither given nor in the config
        raise InputError(f"{spec.kind} cluster: {exc}", argument="scheduler") from None


@contextlib.contextmanager
def execution(spec: ExecutionSpec | None = None, *, quiet: bool = False,
              stream: TextIO | None = None) -> Iterator[Executor]:
    """Context that runs dask work where ``spec`` says and releases what it started.

    Inside the block dask's default scheduler is the spec's (so plain ``.compute()`` calls use
    it too); the yielded :class:`Executor` adds progress bars and fault reports.  Any cluster,
    client or pool started here is closed on exit, also on an exception or KeyboardInterrupt.
    """
    ex = Executor(spec or ExecutionSpec(), quiet=quiet, stream=stream)
    try:
        ex._start()
        yield ex
    except BaseException:
        # interrupted: tear down without distributed's shutdown tracebacks (workers caught
        # mid-start or mid-task log errors that say nothing about the user's problem)
        log = logging.getLogger("distributed")
        level = log.level
        log.setLevel(logging.CRITICAL)
        try:
            ex.close()
        finally:
            log.setLevel(level)
        raise
    finally:
        ex.close()

