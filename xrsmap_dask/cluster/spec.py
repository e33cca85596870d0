"""Where the work runs, as one validated, frozen :class:`ExecutionSpec` (see the package
docstring for the kinds), and :func:`spec_from_options` for a job spec's ``cluster:``
section."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError
from . import jobqueue as _jobqueue
from .jobqueue import is_loopback

#: options that only a dask-jobqueue cluster uses
_JOBQUEUE_ONLY = ("cores", "memory", "walltime", "queue", "account", "interface",
                  "job_directives", "lifetime", "lifetime_stagger", "worker_memory_fraction")
KINDS = ("threads", "processes", "pathos", "local", "address", "slurm", "pbs")
#: kinds that run on a distributed scheduler (futures, dashboard, worker faults)
DISTRIBUTED_KINDS = ("local", "address", "slurm", "pbs")
#: the default dashboard port of a cluster we start (bound to ``host``)
DASHBOARD_PORT = 8787
_ADDRESS_RE = re.compile(r"^[a-z][a-z0-9+]*://\S+$")


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
    lifetime, lifetime_stagger : str, optional
        ``slurm``/``pbs``: the workers' ``--lifetime`` / ``--lifetime-stagger`` (``'55m'``);
        ``None`` derives both from the walltime, ``'none'`` sets none.
    worker_memory_fraction : float, optional
        ``slurm``/``pbs``: the workers' memory limits add up to this fraction of the job's
        memory (default 0.9; the rest is headroom).
    tls : bool, optional
        Clusters we start: ``None`` (default) TLS when listening beyond the loopback
        interface; ``True`` always; ``False`` never.
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
    lifetime: str | None = None
    lifetime_stagger: str | None = None
    worker_memory_fraction: float | None = None
    tls: bool | None = None

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
        if self.walltime is not None:
            _jobqueue.walltime_seconds(self.walltime, self.kind)  # InputError if malformed
        for name in ("lifetime", "lifetime_stagger"):
            object.__setattr__(self, name, _jobqueue.parse_lifetime(getattr(self, name)))
        object.__setattr__(self, "worker_memory_fraction",
                           _jobqueue.parse_memory_fraction(self.worker_memory_fraction))
        if self.tls is not None and not isinstance(self.tls, bool):
            raise InputError(f"must be true, false or unset, got {self.tls!r}", argument="tls")
        if self.tls is not None and self.kind not in ("local", "slurm", "pbs"):
            raise InputError(f"only for clusters we start (local, slurm, pbs), not "
                             f"{self.kind!r}", argument="tls")
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

    def wants_tls(self, listen: str | None) -> bool:
        """Whether a cluster we start that listens on ``listen`` (a host, an interface name,
        ``None`` = all interfaces) uses TLS: ``tls`` if set, else when not loopback."""
        if self.tls is not None:
            return self.tls
        return not (is_loopback(listen) or listen == "lo")

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
