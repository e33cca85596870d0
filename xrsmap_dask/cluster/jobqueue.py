"""dask-jobqueue clusters for :mod:`xrsmap_dask.cluster`: job resources, worker lifetimes,
memory headroom and TLS, derived once from an ``ExecutionSpec``.

What a worker job gets, unless the spec (or dask's ``jobqueue.<kind>.*`` config) says
otherwise:

* ``--lifetime`` and ``--lifetime-stagger`` from the job's walltime
  (:func:`worker_lifetime`): workers retire gracefully, handing their results to the others,
  a few minutes before the batch system would kill them; the cluster then runs adaptively
  (a fixed size is ``minimum = maximum``), so retired jobs are replaced;
* worker memory limits that add up to :data:`WORKER_MEMORY_FRACTION` of the job's memory
  (the rest is headroom for the nanny processes, the interpreter and the OS), so dask pauses
  and spills before the batch system's memory limit kills the job;
* TLS with distributed's temporary credentials (``Security.temporary()``) when the scheduler
  listens beyond the loopback interface, which it must for workers on other nodes.  The
  workers' copies of the credentials are written (mode 0600) to jobqueue's
  ``shared-temp-directory`` or the current directory, which the compute nodes must see.
"""
from __future__ import annotations

import os
import re
from typing import Any

from ..errors import InputError

#: the worker memory limits of one job add up to this fraction of the job's memory
WORKER_MEMORY_FRACTION = 0.9
#: lifetime stagger: this fraction of the walltime, at most ``MAX_STAGGER_S``
STAGGER_FRACTION, MAX_STAGGER_S = 0.05, 300
#: time left after the latest lifetime for a graceful retirement: this fraction of the
#: walltime, within [MIN_GRACE_S, MAX_GRACE_S]
GRACE_FRACTION, MIN_GRACE_S, MAX_GRACE_S = 0.05, 120, 600
#: below this walltime no lifetime is set (too short to retire gracefully)
MIN_LIFETIME_WALLTIME_S = 300
_WALLTIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_LOOPBACK = ("localhost", "::1", "[::1]")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an IP or a name, no port) is this machine's loopback interface."""
    return host is not None and (host in _LOOPBACK or host.startswith("127."))


def walltime_seconds(walltime: str, kind: str) -> int:
    """A batch walltime in seconds.

    ``HH:MM:SS``, ``MM:SS``, ``D-HH[:MM[:SS]]``; a bare number is minutes for SLURM
    (``--time=90``) and seconds for PBS (``walltime=5400``).
    """
    m = _WALLTIME_RE.match(str(walltime).strip())
    if not m:
        raise InputError(f"expected HH:MM:SS or D-HH:MM:SS, got {walltime!r}",
                         argument="walltime")
    days, a, b, c = (int(v) if v is not None else None for v in m.groups())
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        return days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:
        return a * 3600 + b * 60 + c
    if b is not None:
        return a * 60 + b
    return a * 60 if kind == "slurm" else a


def worker_lifetime(walltime_s: float) -> tuple[int, int] | None:
    """``(lifetime, stagger)`` in seconds for workers of jobs of ``walltime_s`` seconds.

    Every worker retires at ``lifetime +- stagger`` (distributed draws it uniformly), the
    last one at least ``grace`` before the walltime: ``stagger = min(5 min, 5 %)`` and
    ``grace = 5 %`` within [2 min, 10 min] of the walltime; 2 h gives 109 min +- 5 min.
    ``None`` below 5 minutes of walltime.
    """
    if walltime_s < MIN_LIFETIME_WALLTIME_S:
        return None
    stagger = min(MAX_STAGGER_S, STAGGER_FRACTION * walltime_s)
    grace = min(MAX_GRACE_S, max(MIN_GRACE_S, GRACE_FRACTION * walltime_s))
    return int(walltime_s - stagger - grace), int(stagger)


def parse_lifetime(value) -> str | None:
    """A spec's ``lifetime``/``lifetime_stagger``: ``None`` (derive from the walltime),
    ``'none'`` (no lifetime) or a duration dask understands (``'55m'``, ``'3300s'``)."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("none", "off", "false"):
        return "none"
    from dask.utils import parse_timedelta

    try:
        if parse_timedelta(text, default="s") <= 0:
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise InputError(f"expected a duration like '55m' or 'none', got {value!r}",
                         argument="lifetime") from None
    return text


def parse_memory_fraction(value) -> float | None:
    """``worker_memory_fraction``: ``None`` (default :data:`WORKER_MEMORY_FRACTION`) or a
    number in (0, 1]."""
    if value is None:
        return None
    try:
        frac = float(value)
    except (TypeError, ValueError):
        frac = float("nan")
    if not 0 < frac <= 1:
        raise InputError(f"must be a number in (0, 1], got {value!r}",
                         argument="worker_memory_fraction")
    return frac


def lifetime_args(spec, walltime: str | None) -> list[str]:
    """``dask worker`` arguments for the spec's lifetime: as given, or derived from the
    walltime (:func:`worker_lifetime`); none for ``lifetime='none'`` or no walltime."""
    if spec.lifetime == "none":
        return []
    lifetime, stagger = spec.lifetime, spec.lifetime_stagger
    if lifetime is None:
        derived = walltime and worker_lifetime(walltime_seconds(walltime, spec.kind))
        if not derived:
            return []
        lifetime = f"{derived[0]}s"
        stagger = stagger or f"{derived[1]}s"
    args = ["--lifetime", lifetime]
    if stagger and stagger != "none":
        args += ["--lifetime-stagger", stagger]
    return args


def job_class(kind: str, memory_fraction: float):
    """jobqueue's SLURM/PBS job class whose workers' memory limits add up to
    ``memory_fraction`` of the job's memory (the job itself still asks for all of it)."""
    import dask_jobqueue

    base = dask_jobqueue.slurm.SLURMJob if kind == "slurm" else dask_jobqueue.pbs.PBSJob

    class HeadroomJob(base):
        @property
        def worker_process_memory(self):
            from dask.utils import format_bytes

            per = self.worker_memory * memory_fraction / self.worker_processes
            return format_bytes(per).replace(" ", "")

    HeadroomJob.__name__ = HeadroomJob.__qualname__ = f"Headroom{base.__name__}"
    return HeadroomJob


def _import_jobqueue():
    try:
        import dask_jobqueue
    except ImportError:
        raise InputError("needs dask-jobqueue (pip install 'xrsmap-dask[jobqueue]')",
                         argument="scheduler") from None
    return dask_jobqueue


def scheduler_options(spec) -> dict:
    """The scheduler's options: jobqueue's config, then the spec's dashboard and host."""
    import dask

    options = dict(dask.config.get(f"jobqueue.{spec.kind}.scheduler-options", None) or {})
    if spec.dashboard is False:
        options["dashboard"] = False
        options["dashboard_address"] = None
    elif spec.dashboard is not True or "dashboard_address" not in options:
        options["dashboard_address"] = spec.dashboard_address()
    if spec.host is not None:
        options["host"] = spec.host
    return options


def jobqueue_kwargs(spec) -> dict:
    """Keyword arguments for dask-jobqueue's cluster class from a ``slurm``/``pbs`` spec.

    Only options set in the spec are passed, plus what we derive (lifetime, memory headroom,
    TLS): the rest come from dask's ``jobqueue.<kind>.*`` config.  The dashboard binds to
    127.0.0.1 unless ``spec.dashboard`` names an address.
    """
    import dask

    if spec.kind not in ("slurm", "pbs"):
        raise InputError(f"not a jobqueue kind: {spec.kind!r}", argument="scheduler")
    _import_jobqueue()  # loads jobqueue's config defaults
    cfg = f"jobqueue.{spec.kind}"
    kw: dict[str, Any] = {}
    for name in ("cores", "memory", "walltime", "queue", "account", "interface",
                 "local_directory"):
        value = getattr(spec, name)
        if value is not None:
            kw[name] = value
    cores = spec.cores or dask.config.get(f"{cfg}.cores", None)
    if spec.threads_per_worker:
        if not cores or cores % spec.threads_per_worker:
            raise InputError(f"threads_per_worker {spec.threads_per_worker} does not divide "
                             f"the job's cores {cores}", argument="threads_per_worker")
        kw["processes"] = cores // spec.threads_per_worker
    if spec.job_directives:
        kw["job_extra_directives"] = list(spec.job_directives)
    options = scheduler_options(spec)
    kw["scheduler_options"] = options
    walltime = spec.walltime or dask.config.get(f"{cfg}.walltime", None)
    extra = list(dask.config.get(f"{cfg}.worker-extra-args", None) or [])
    if not any(a.startswith("--lifetime") for a in extra):
        extra += lifetime_args(spec, walltime)
    kw["worker_extra_args"] = extra
    kw["job_cls"] = job_class(spec.kind, spec.worker_memory_fraction or WORKER_MEMORY_FRACTION)
    listen = options.get("host") or options.get("interface") or spec.interface or \
        dask.config.get(f"{cfg}.interface", None)
    if spec.wants_tls(listen):
        from distributed.security import Security

        kw["security"] = Security.temporary()
        kw["protocol"] = "tls://"
        kw["shared_temp_directory"] = os.path.expanduser(os.path.expandvars(
            dask.config.get(f"{cfg}.shared-temp-directory", None) or os.getcwd()))
    return kw


def make_jobqueue_cluster(spec):
    """An unscaled ``SLURMCluster``/``PBSCluster`` for ``spec`` (the caller closes it)."""
    dask_jobqueue = _import_jobqueue()
    cls = dask_jobqueue.SLURMCluster if spec.kind == "slurm" else dask_jobqueue.PBSCluster
    try:
        return cls(**jobqueue_kwargs(spec))
    except ValueError as exc:  # e.g. cores/memory neither given nor in the config
        raise InputError(f"{spec.kind} cluster: {exc}", argument="scheduler") from None


def uses_lifetime(cluster) -> bool:
    """Whether the workers of a jobqueue cluster retire at a lifetime."""
    template = getattr(getattr(cluster, "_dummy_job", None), "_command_template", "")
    return "--lifetime" in template
