"""The :class:`Executor` that computes dask collections where an ``ExecutionSpec`` says,
made and released by :func:`execution`; progress, the dashboard link, lost workers."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

from ..errors import InputError
from ..progress import text_counter
from . import jobqueue as _jobqueue
from .jobqueue import is_loopback, make_jobqueue_cluster
from .pathos import close_pathos, pathos_get
from .spec import _ADDRESS_RE, ExecutionSpec

# -- faults --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerLost:
    """A worker the scheduler lost while we computed (its tasks were rescheduled)."""

    worker: str
    processing_tasks: int
    lost_results: int


class ClusterGet:
    """dask ``get`` function computing on an executor's cluster (its progress bar and lost-
    worker report).  Set as dask's ``scheduler`` config, it pickles as ``None``: nannies hand
    dask's config to the worker processes they start (adaptive scaling, restarts), and an
    executor, with its client and streams, cannot travel nor means anything there."""

    def __init__(self, executor: "Executor"):
        self.executor = executor

    def __call__(self, dsk, keys, **kwargs):
        return self.executor._distributed_get(dsk, keys, **kwargs)

    def __reduce__(self):
        return (_no_scheduler, ())


def _no_scheduler():
    return None


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
            self._stack.callback(close_pathos, self._pool)
            self._stack.enter_context(dask.config.set(scheduler=pathos_get(self._pool, n)))
        else:
            self._start_distributed()
            self._stack.enter_context(dask.config.set(scheduler=ClusterGet(self)))
            self.dashboard_link = dashboard_link(self.client, self.cluster)
            if self.dashboard_link:
                self._say(f"dask dashboard: {self.dashboard_link}"
                          + tunnel_hint(self.dashboard_link, self.spec))

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
            tls = {}
            if spec.wants_tls(host):
                tls = {"protocol": "tls://", "security": Security.temporary()}
            start = spec.n_workers or min(4, os.cpu_count() or 1)
            if spec.adaptive_max is not None:  # adaptive: from its minimum up
                start = spec.adaptive_min or 0
            self.cluster = LocalCluster(
                n_workers=start,
                threads_per_worker=spec.threads_per_worker or 1,
                processes=True, host=host, silence_logs=logging.ERROR,
                dashboard_address=spec.dashboard_address(host),
                local_directory=spec.local_directory, **tls)
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
            _scale_jobqueue(self.cluster, spec)
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
            return ClusterGet(self)
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

                self._wait_for_workers(futures)
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

    def _wait_for_workers(self, futures, interval: float = 1.0) -> None:
        """While a cluster we started has no worker (jobs queued, adaptive start), show
        ``waiting for workers: N running, M pending`` (rewritten in place on a terminal,
        one line per change otherwise) until a worker runs or the work is done."""
        from distributed import futures_of, wait

        if self.cluster is None or not hasattr(self.cluster, "plan"):
            return
        out, flat = self._out(), futures_of(futures)
        tty = getattr(out, "isatty", lambda: False)()
        last = None
        while not all(f.done() for f in flat):
            running = len(self.cluster.observed)
            pending = len(self.cluster.plan - self.cluster.observed)
            if running:
                break
            if (running, pending) != last:
                out.write(("\r" if tty else "") + f"waiting for workers: {running} running, "
                          f"{pending} pending" + ("" if tty else "\n"))
                out.flush()
                last = (running, pending)
            try:
                wait(flat, timeout=interval)
            except TimeoutError:
                pass
        if last is not None and tty:
            out.write("\n")

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


def dashboard_link(client, cluster=None) -> str | None:
    """The dashboard's URL: for a cluster we started, where its scheduler's HTTP server is
    bound (a scheduler listening on an interface address while its dashboard is on
    127.0.0.1 gives ``http://127.0.0.1:PORT/status``); for a remote scheduler, the
    scheduler's host and the dashboard port it reports.  ``None`` without a dashboard.
    Formatted by dask's ``distributed.dashboard.link`` template."""
    from distributed.comm.utils import get_tcp_server_addresses
    from distributed.utils import format_dashboard_link

    server = getattr(getattr(cluster, "scheduler", None), "http_server", None)
    if server is not None and getattr(server, "_sockets", None):
        host, port = get_tcp_server_addresses(server)[0][:2]
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.gethostname()
        return format_dashboard_link(f"[{host}]" if ":" in host else host, port)
    try:
        if not client.scheduler_info().get("services", {}).get("dashboard"):
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a scheduler that cannot tell: no link
        return None


def tunnel_hint(link: str, spec: ExecutionSpec) -> str:
    """For a dashboard on this node's loopback behind a batch cluster: how to reach it."""
    from urllib.parse import urlsplit

    parts = urlsplit(link)
    if spec.kind not in ("slurm", "pbs") or not is_loopback(parts.hostname):
        return ""
    import socket

    port, node = parts.port, socket.gethostname()
    return (f"\n  (bound to {node}'s loopback; from your computer: ssh -N -L "
            f"{port}:127.0.0.1:{port} {node}, then open http://localhost:{port}{parts.path})")


def _scale_jobqueue(cluster, spec: ExecutionSpec) -> None:
    """Scale a jobqueue cluster as the spec says.  Workers with a lifetime retire: a fixed
    size then runs adaptively with minimum = maximum, so that retired jobs are replaced."""
    if spec.adaptive_max is not None:
        cluster.adapt(minimum_jobs=spec.adaptive_min or 0, maximum_jobs=spec.adaptive_max)
    elif _jobqueue.uses_lifetime(cluster):
        if spec.n_workers:
            cluster.adapt(minimum=spec.n_workers, maximum=spec.n_workers)
        else:
            cluster.adapt(minimum_jobs=1, maximum_jobs=1)
    elif spec.n_workers:
        cluster.scale(n=spec.n_workers)
    else:
        cluster.scale(jobs=1)


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
