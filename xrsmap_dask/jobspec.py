"""Survey job specs (YAML) parsed into validated settings; nothing is opened or run.

See :mod:`xrsmap_dask.jobs` for the format; this module holds the parser
(:func:`load_job` -> :class:`SurveyJob` of :class:`~xrsmap_dask.settings.ScanJob`).
A scan's keys are the structure keys (``name``, ``inputs``, ``mesh``, ``output``,
``group``) and the option table's options of the ``job`` face, parsed by the same
functions as the command line's and ``Mapper``'s.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import InputError
from .inputs import resolve_inputs
from .scan import ScanGeometry
from .settings import Context, ScanJob, options_for, parse_values, relabel
from .settings.fields import parse_mesh, resolve_path
from .settings.options import JOB, read_options

TOP_KEYS = ("output", "summary", "defaults", "scans", "cluster", "scans_in_flight")
#: keys that shape the spec rather than set an option
STRUCTURE_KEYS = ("name", "inputs", "mesh", "npt_y", "npt_x", "output", "group")
SECTIONS = tuple(dict.fromkeys(o.section for o in options_for(JOB) if o.section))
SCAN_KEYS = tuple(dict.fromkeys(STRUCTURE_KEYS + tuple(o.name for o in options_for(JOB)
                                                         if not o.section) + SECTIONS))
# a scan name or group path component: never '.' or '..' (the output must stay in its store)
_NAME_RE = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SurveyJob:
    """A whole job spec: its scans (in file order) and where the summary goes."""

    path: str
    scans: tuple[ScanJob, ...]
    summary: str
    cluster: dict | None = None
    scans_in_flight: int | None = None


# -- parsing --------------------------------------------------------------------------------
class _Where:
    """Names the place in the spec an error is about (``scan 'x', key 'roi'``)."""

    def __init__(self, path: str, scan: str | None):
        self.path, self.scan = path, scan

    def key(self, key: str) -> str:
        return f"scan {self.scan!r}, key {key!r}" if self.scan else f"key {key!r}"

    def error(self, key: str, reason: str) -> InputError:
        return InputError(reason, path=self.path, argument=self.key(key))

    def relabel(self, exc: InputError) -> InputError:
        return relabel(exc, JOB, where=self.key, path=self.path)


def _option_values(d: dict, w: _Where) -> dict:
    """The scan's option values (sections flattened), unknown keys refused."""
    raw = {k: v for k, v in d.items() if k not in STRUCTURE_KEYS and k not in SECTIONS}
    for section in SECTIONS:
        sub = d.get(section)
        if sub is None:
            continue
        allowed = [o.name for o in options_for(JOB) if o.section == section]
        if not isinstance(sub, dict):
            raise w.error(section, f"must be a mapping of {', '.join(allowed)}")
        unknown = set(sub) - set(allowed)
        if unknown:
            raise w.error(section, f"unknown keys {sorted(unknown)} (allowed: "
                                   f"{', '.join(allowed)})")
        raw.update(sub)
    return raw


def _with_defaults(raw: dict, defaults: dict) -> dict:
    """A scan's keys over the spec's ``defaults``; a section (``corrections:``) key by key,
    so a scan's own ``corrections: {mask: ...}`` keeps the default background."""
    d = {**defaults, **raw}
    for section in SECTIONS:
        if isinstance(defaults.get(section), dict) and isinstance(raw.get(section), dict):
            d[section] = {**defaults[section], **raw[section]}
    return d


def _mesh(d: dict, w: _Where) -> tuple[int, int]:
    try:
        if "mesh" in d:
            return parse_mesh(d["mesh"])
        if d.get("npt_y") is None or d.get("npt_x") is None:
            raise InputError("missing: [npt_y, npt_x] (or npt_y and npt_x)", argument="mesh")
        return parse_mesh([d["npt_y"], d["npt_x"]])
    except InputError as exc:
        raise w.relabel(exc) from None


def _parse_scan(raw: Any, defaults: dict, index: int, base: str, yaml_path: str,
                output: str | None) -> ScanJob:
    name = raw.get("name") if isinstance(raw, dict) else None
    w = _Where(yaml_path, str(name) if name is not None else f"#{index}")
    if not isinstance(raw, dict):
        raise w.error("scans", f"scan {index} must be a mapping, got {raw!r}")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise w.error("name", "every scan needs a name of letters, digits, '_', '-', '.' "
                              f"(used as its zarr group), got {name!r}")
    unknown = set(raw) - set(SCAN_KEYS)
    if unknown:
        raise w.error(sorted(unknown)[0], f"unknown key; allowed: {', '.join(SCAN_KEYS)}")
    d = _with_defaults(raw, defaults)
    if "inputs" not in d:
        raise w.error("inputs", "missing: where the frames are (glob, list, file.h5:/data)")
    raw_values = _option_values(d, w)          # its errors are already in spec words
    try:
        values = parse_values(raw_values, JOB, Context(base))
        inputs = resolve_inputs(d["inputs"], base, "inputs",
                                allow_missing=values["on_error"] == "fill",
                                options=read_options(values))
    except InputError as exc:
        raise w.relabel(exc) from None
    npt_y, npt_x = _mesh(d, w)
    out = d.get("output", output)
    if out is None:
        raise w.error("output", "missing: the zarr store to write (top-level or per scan)")
    group = d.get("group", name)
    if not isinstance(group, str) or not all(_NAME_RE.match(p) for p in group.split("/")):
        raise w.error("group", f"must be a group name like 'a' or 'a/b', got {group!r}")
    try:
        from .settings import scan_job_from_values
        from .settings.specs import nexus_output

        scan = ScanGeometry(npt_y, npt_x, kind=values["scan_order"],
                            allow_incomplete=values["allow_incomplete"])
        store, nexus = nexus_output(resolve_path(out, "output", base))
        return scan_job_from_values(values, name=name, inputs=inputs, scan=scan,
                                    output=store, group=group, nexus=nexus)
    except InputError as exc:
        raise w.relabel(exc) from None


def _check_unique_outputs(jobs: Sequence[ScanJob], yaml_path: str) -> None:
    """Every scan writes its own group, and no group lies inside another scan's (an
    ``--overwrite`` of scan ``a`` would otherwise replace scan ``a/sub``'s finished
    output)."""
    seen: dict = {}
    for job in jobs:
        path = os.path.realpath(job.output_path)
        if path in seen:
            raise _Where(yaml_path, job.name).error(
                "name", f"writes the same output group as scan {seen[path]!r}")
        for other, name in seen.items():
            inner, outer = (path, other) if path.startswith(other + os.sep) else \
                (other, path) if other.startswith(path + os.sep) else (None, None)
            if inner is not None:
                who = job.name if inner == path else name
                host = name if inner == path else job.name
                raise _Where(yaml_path, who).error(
                    "group", f"its output {inner} lies inside the output of scan {host!r} "
                             f"({outer}); give each scan its own group")
        seen[path] = job.name


def _check_cluster(cluster: Any, w: _Where) -> None:
    from .cluster import spec_from_options

    if not isinstance(cluster, dict):
        raise w.error("cluster", "must be a mapping of execution options")
    try:
        spec_from_options(cluster)  # validated now, used (with CLI overrides) by `run`
    except InputError as exc:
        raise w.error("cluster", exc.reason) from None


def load_job(path) -> SurveyJob:
    """Read and validate a job spec (YAML); nothing is opened or run.

    Raises :class:`InputError` (or :class:`~xrsmap_dask.errors.UnsafeInputError` for YAML
    with Python tags) naming the file, the scan and the key.
    """
    from .imageseries._yaml import load_yaml

    yaml_path = os.path.abspath(os.fspath(path))
    doc = load_yaml(yaml_path)
    base = os.path.dirname(yaml_path)
    w = _Where(yaml_path, None)
    if not isinstance(doc, dict):
        raise InputError("a job spec must be a YAML mapping with a 'scans' list",
                         path=yaml_path)
    unknown = set(doc) - set(TOP_KEYS)
    if unknown:
        raise w.error(sorted(unknown)[0], f"unknown key; allowed: {', '.join(TOP_KEYS)}")
    scans = doc.get("scans")
    if not isinstance(scans, list) or not scans:
        raise w.error("scans", "must be a non-empty list of scans")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise w.error("defaults", "must be a mapping")
    bad = set(defaults) - set(SCAN_KEYS) | ({"name", "group"} & set(defaults))
    if bad:
        raise w.error(f"defaults.{sorted(bad)[0]}", "not allowed in defaults; allowed: "
                      + ", ".join(k for k in SCAN_KEYS if k not in ("name", "group")))
    jobs = tuple(_parse_scan(raw, defaults, i, base, yaml_path, doc.get("output"))
                 for i, raw in enumerate(scans))
    _check_unique_outputs(jobs, yaml_path)
    summary = doc.get("summary")
    if summary is None:
        stem = os.path.splitext(os.path.basename(yaml_path))[0]
        summary = os.path.join(base, f"{stem}_summary.csv")
    else:
        try:
            summary = resolve_path(summary, "summary", base)
        except InputError as exc:
            raise w.relabel(exc) from None
    cluster = doc.get("cluster")
    if cluster is not None:
        _check_cluster(cluster, w)
    in_flight = doc.get("scans_in_flight")
    if in_flight is not None:
        from .settings.fields import parse_int

        try:
            in_flight = parse_int(in_flight, "scans_in_flight")
        except InputError as exc:
            raise w.relabel(exc) from None
    return SurveyJob(yaml_path, jobs, summary, cluster, in_flight)
