"""Survey job specs: many scans in one YAML file, validated before anything runs.

A job spec (YAML, loaded with ``yaml.safe_load`` only; paths relative to the YAML file's
directory, never executed)::

    output: survey.zarr            # one zarr store; scan NAME is written to group NAME
    summary: survey_summary.csv    # optional; a markdown table (.md) is written beside it
    defaults:                      # shared by every scan; a scan's own keys override them
      mesh: [4, 5]                 # [npt_y, npt_x]: map rows (slow axis), map columns
      scan_order: raster           # raster | snake | column
      allow_incomplete: false      # true: fewer frames than points (unfilled points NaN)
      roi: [8, 8, 55, 55]          # xrsmap (x0, y0, x1, y1), bounds inclusive, rows from top
      binning: 4                   # sum of 4 x 4 blocks; must divide the ROI
      rings:                       # annulus maps: pixel centres with |d - radius| <= width/2
        - {cen_y: 30.1, cen_x: 33.9, radius: 11.5, width: 3}
      stats: [max, mean, median, {percentile: 99}]   # pixel-wise images over all frames
      corrections: {mask: mask.edf, dark: null, flat: null, background: [bkg_*.edf],
                    dummy: 0}
      on_error: raise              # raise | fill (unreadable frames -> NaN, listed in attrs)
      frames_per_chunk: auto
    scans:
      - name: scan1
        inputs: scan1/scan_*.edf   # glob, list of paths, @list.txt, file.h5:/dataset, *.yml
      - name: scan2
        inputs: scan2/scan.h5:/imageseries/images
        mesh: [10, 12]

Everything is checked into frozen dataclasses (:class:`SurveyJob`, :class:`ScanJob`) before a
frame is read; a bad spec fails in seconds with an :class:`InputError` naming the scan and the
key.  :func:`run_survey` then processes the scans on one executor (see
:mod:`xrsmap_dask.cluster`), each to its own zarr group, skipping complete outputs and
resuming incomplete ones, and writes the summary table.
"""
from __future__ import annotations

import csv
import glob as _glob
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import InputError

SCAN_KEYS = ("name", "inputs", "mesh", "npt_y", "npt_x", "scan_order", "allow_incomplete",
             "roi", "roi_origin",
             "binning", "rings", "composite", "roi_sum", "stats", "corrections", "on_error",
             "frames_per_chunk", "output", "group")
TOP_KEYS = ("output", "summary", "defaults", "scans", "cluster")
CORRECTION_KEYS = ("mask", "dark", "flat", "background", "background_method",
                   "background_pct", "norm", "dummy")
STAT_NAMES = ("max", "min", "mean", "median", "percentile")
# a scan name or group path component: never '.' or '..' (the output must stay in its store)
_NAME_RE = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.-]+$")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")
_IMAGE_SERIES_SUFFIXES = _HDF5_SUFFIXES + (".npz", ".fch5", ".zarr", ".yml", ".yaml")


# -- inputs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """Where a scan's frames are: resolved absolute paths, not yet opened.

    ``kind`` is ``'files'`` (image files, in order), ``'hdf5'`` / ``'zarr'`` (one file and a
    dataset path inside it) or ``'series'`` (a file ``imageseries.open`` reads: imageseries
    YAML, frame-cache npz/fch5, a zarr store).
    """

    kind: str
    paths: tuple[str, ...]
    dataset: str | None = None

    def describe(self) -> str:
        if self.kind == "files":
            first = self.paths[0]
            return first if len(self.paths) == 1 else f"{len(self.paths)} files ({first} ...)"
        return self.paths[0] + (f":{self.dataset}" if self.dataset else "")


def _split_dataset(item: str) -> tuple[str, str | None]:
    """``file.h5:/group/data`` -> (``file.h5``, ``/group/data``); else (item, None)."""
    head, sep, tail = item.rpartition(":")
    if sep and tail.startswith("/") and head.lower().rstrip("/").endswith(
            _HDF5_SUFFIXES + (".zarr",)):
        return head, tail
    return item, None


def _is_glob(item: str) -> bool:
    return any(ch in item for ch in "*?[")


def resolve_inputs(items: str | Sequence[str], base_dir: str | None = None,
                   argument: str = "inputs", allow_missing: bool = False) -> InputSpec:
    """Resolve input strings (CLI arguments or a YAML ``inputs`` value) to an :class:`InputSpec`.

    Each item is a path, a glob (sorted), ``@list.txt`` (one path per line, ``#`` comments,
    relative to the list file), ``file.h5:/path/to/dataset`` (also ``store.zarr:/group``) or
    an imageseries file (YAML, npz, fch5, zarr, h5).  Several items must all be image files.
    Relative paths are taken relative to ``base_dir`` (default: the working directory).  Files
    are checked to exist (a listed image file may be missing with ``allow_missing``: with
    ``on_error='fill'`` it becomes a NaN frame); nothing is opened or run.
    """
    if isinstance(items, (str, os.PathLike)):
        items = [os.fspath(items)]
    if not isinstance(items, (list, tuple)) or not items:
        raise InputError("give at least one input (path, glob, @list.txt or file.h5:/dataset)",
                         argument=argument)
    base = os.path.abspath(base_dir) if base_dir else os.getcwd()

    def absolute(p: str, rel_to: str = base) -> str:
        p = os.path.expanduser(str(p))
        return os.path.normpath(p if os.path.isabs(p) else os.path.join(rel_to, p))

    files: list[str] = []
    for raw in items:
        if not isinstance(raw, (str, os.PathLike)):
            raise InputError(f"inputs must be strings, got {raw!r}", argument=argument)
        item = os.fspath(raw).strip()
        if item.startswith("@"):
            listfile = absolute(item[1:])
            try:
                with open(listfile, encoding="utf-8") as f:
                    lines = [ln.strip() for ln in f]
            except OSError as exc:
                raise InputError(f"cannot read the file list: {exc.strerror}",
                                 path=listfile) from None
            names = [ln for ln in lines if ln and not ln.startswith("#")]
            if not names:
                raise InputError("the file list is empty", path=listfile)
            files.extend(absolute(n, os.path.dirname(listfile)) for n in names)
            continue
        path, dataset = _split_dataset(item)
        if dataset is not None or (len(items) == 1 and not _is_glob(item)
                                   and path.lower().rstrip("/").endswith(_IMAGE_SERIES_SUFFIXES)):
            if len(items) != 1:
                raise InputError("an HDF5/zarr dataset or imageseries file must be the only "
                                 f"input, got {len(items)} inputs", argument=argument)
            full = absolute(path)
            if not os.path.exists(full):
                raise InputError("file not found", path=full, argument=argument)
            low = full.lower().rstrip("/")
            if dataset is not None:
                kind = "zarr" if low.endswith(".zarr") else "hdf5"
            else:
                kind = "hdf5" if low.endswith(_HDF5_SUFFIXES) else "series"
            return InputSpec(kind, (full,), dataset)
        if _is_glob(item):
            found = sorted(_glob.glob(absolute(item)))
            if not found:
                raise InputError("no file matches this pattern", path=absolute(item),
                                 argument=argument)
            files.extend(found)
        else:
            files.append(absolute(item))
    missing = [p for p in files if not os.path.exists(p)]
    if len(missing) == len(files) or (missing and not allow_missing):
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"file not found{more}", path=missing[0], argument=argument)
    return InputSpec("files", tuple(files))


def open_inputs(spec: InputSpec, on_error: str = "raise", progress=None):
    """Open an :class:`InputSpec` as an ImageSeries (headers only for image files;
    ``progress(done, total)`` follows the header reads)."""
    from . import imageseries

    if spec.kind == "files":
        return imageseries.from_files(list(spec.paths), on_error=on_error, progress=progress)
    path = spec.paths[0]
    if spec.kind in ("hdf5", "zarr"):
        group, name = None, "images"
        if spec.dataset:
            group, _, name = spec.dataset.strip("/").rpartition("/")
            group = group or None
        if spec.kind == "hdf5":
            return imageseries.open(path, "hdf5", path=group, dataname=name, on_error=on_error)
        return imageseries.open(path, "zarr", path=group, dataname=name, on_error=on_error)
    fmt = imageseries.guess_format(path)
    if fmt in ("image-files", "raw-image", "zarr"):  # the openers with a bad-frame policy
        return imageseries.open(path, fmt, on_error=on_error)
    if on_error != "raise":
        raise InputError(f"on_error={on_error!r} is not supported for {fmt} inputs (their "
                         "frames are read whole at open)", path=path, argument="on_error")
    return imageseries.open(path, fmt)


# -- spec dataclasses -----------------------------------------------------------------------
@dataclass(frozen=True)
class StatRequest:
    """One pixel-wise statistic over all frames: ``name`` and, for a percentile, ``q``."""

    name: str
    q: float | None = None

    @property
    def label(self) -> str:
        """Array name in the output (``median``, ``percentile_99``, ``percentile_99.5``)."""
        from .stats import stat_label

        return stat_label(self.name, self.q)


@dataclass(frozen=True)
class CorrectionFiles:
    """Correction inputs (absolute paths) and the composite's dummy value."""

    mask: str | None = None
    dark: str | None = None
    flat: str | None = None
    background: tuple[str, ...] = ()
    background_method: str = "mean"
    background_pct: float | None = None
    norm: str | None = None
    dummy: float = 0.0


@dataclass(frozen=True)
class ScanJob:
    """One scan of a survey, fully resolved and validated.

    ``roi`` is xrsmap style ``(x0, y0, x1, y1)``, bounds inclusive (``None`` = whole frame);
    ``mesh`` is ``(npt_y, npt_x)``; ``rings`` are :class:`xrsmap_dask.maps.Ring`.
    """

    name: str
    inputs: InputSpec
    npt_y: int
    npt_x: int
    output: str
    group: str
    scan_order: str = "raster"
    allow_incomplete: bool = False
    roi: tuple[int, int, int, int] | None = None
    roi_origin: str = "upper"
    binning: int = 1
    rings: tuple = ()
    composite: bool = True
    roi_sum: bool = True
    stats: tuple[StatRequest, ...] = ()
    corrections: CorrectionFiles = field(default_factory=CorrectionFiles)
    on_error: str = "raise"
    frames_per_chunk: int | str = "auto"


@dataclass(frozen=True)
class SurveyJob:
    """A whole job spec: its scans (in file order) and where the summary goes."""

    path: str
    scans: tuple[ScanJob, ...]
    summary: str
    cluster: dict | None = None


# -- parsing --------------------------------------------------------------------------------
class _Where:
    """Names the place in the spec an error is about (``scan 'x', key 'roi'``)."""

    def __init__(self, path: str, scan: str | None):
        self.path, self.scan = path, scan

    def error(self, key: str, reason: str) -> InputError:
        where = f"scan {self.scan!r}, key {key!r}" if self.scan else f"key {key!r}"
        return InputError(reason, path=self.path, argument=where)


def _int(value, key: str, w: _Where, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise w.error(key, f"must be an int >= {minimum}, got {value!r}")
    return value


def _path(value, key: str, w: _Where, base: str) -> str:
    if not isinstance(value, str) or not value:
        raise w.error(key, f"must be a path, got {value!r}")
    p = os.path.expanduser(value)
    full = os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p))
    return full


def _existing(value, key: str, w: _Where, base: str) -> str:
    full = _path(value, key, w, base)
    if not os.path.exists(full):
        raise w.error(key, f"file not found: {full}")
    return full


def _parse_rings(value, w: _Where) -> tuple:
    from .maps import Ring

    if value is None:
        return ()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise w.error("rings", "must be a list of {cen_y, cen_x, radius, width}")
    out = []
    for k, ring in enumerate(value):
        if not isinstance(ring, dict):
            raise w.error("rings", f"ring {k} must be a mapping, got {ring!r}")
        ring = dict(ring)
        if "centre" in ring or "center" in ring:
            c = ring.pop("centre", None) or ring.pop("center", None)
            if not isinstance(c, list) or len(c) != 2:
                raise w.error("rings", f"ring {k}: centre must be [cen_y, cen_x]")
            ring["cen_y"], ring["cen_x"] = c
        radii = ring.pop("radii", None)
        if radii is not None:
            if not isinstance(radii, list) or not radii:
                raise w.error("rings", f"ring {k}: radii must be a non-empty list")
        unknown = set(ring) - {"cen_y", "cen_x", "radius", "width"}
        if unknown:
            raise w.error("rings", f"ring {k}: unknown keys {sorted(unknown)} (allowed: "
                                   "cen_y, cen_x, radius or radii, width, centre)")
        missing = {"cen_y", "cen_x", "width"} - set(ring)
        if radii is None and "radius" not in ring:
            missing.add("radius")
        if missing:
            raise w.error("rings", f"ring {k}: missing {sorted(missing)}")
        try:
            for r in (radii if radii is not None else [ring["radius"]]):
                out.append(Ring(ring["cen_y"], ring["cen_x"], r, ring["width"]))
        except InputError as exc:
            raise w.error("rings", f"ring {k}: {exc}") from None
    return tuple(out)


def _parse_stats(value, w: _Where) -> tuple[StatRequest, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        value = [value]
    out = []
    for item in value:
        if isinstance(item, str) and item in STAT_NAMES and item != "percentile":
            out.append(StatRequest(item))
        elif isinstance(item, dict) and set(item) == {"percentile"}:
            qs = item["percentile"]
            for q in (qs if isinstance(qs, list) else [qs]):
                if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 100:
                    raise w.error("stats", f"percentile must be a number in [0, 100], got {q!r}")
                out.append(StatRequest("percentile", float(q)))
        else:
            raise w.error("stats", f"unknown statistic {item!r}; allowed: max, min, mean, "
                                   "median, {percentile: Q}")
    return tuple(out)


def _parse_corrections(value, w: _Where, base: str) -> CorrectionFiles:
    if value is None:
        return CorrectionFiles()
    if not isinstance(value, dict):
        raise w.error("corrections", f"must be a mapping of {', '.join(CORRECTION_KEYS)}")
    unknown = set(value) - set(CORRECTION_KEYS)
    if unknown:
        raise w.error("corrections", f"unknown keys {sorted(unknown)} (allowed: "
                                     f"{', '.join(CORRECTION_KEYS)})")
    kw: dict[str, Any] = {}
    for key in ("mask", "dark", "flat", "norm"):
        if value.get(key) is not None:
            kw[key] = _existing(value[key], f"corrections.{key}", w, base)
    bkg = value.get("background")
    if bkg:
        try:
            kw["background"] = resolve_inputs(bkg, base, "corrections.background").paths
        except InputError as exc:
            raise w.error("corrections.background", str(exc)) from None
    method = value.get("background_method", "mean")
    pct = value.get("background_pct")
    if method not in ("mean", "median", "percentile"):
        raise w.error("corrections.background_method",
                      f"must be mean, median or percentile, got {method!r}")
    if (method == "percentile") != (pct is not None):
        raise w.error("corrections.background_pct",
                      "give background_pct (in [0, 100]) with background_method: percentile, "
                      "and only then")
    if pct is not None and (isinstance(pct, bool) or not isinstance(pct, (int, float))
                            or not 0 <= pct <= 100):
        raise w.error("corrections.background_pct", f"must be a number in [0, 100], got {pct!r}")
    if method != "mean" and not bkg:
        raise w.error("corrections.background_method",
                      f"{method} of which frames? give corrections.background")
    kw["background_method"] = method
    kw["background_pct"] = None if pct is None else float(pct)
    if value.get("dummy") is not None:
        d = value["dummy"]
        if isinstance(d, bool) or not isinstance(d, (int, float)):
            raise w.error("corrections.dummy", f"must be a number, got {d!r}")
        kw["dummy"] = float(d)
    return CorrectionFiles(**kw)


def _parse_scan(raw: dict, defaults: dict, index: int, base: str, yaml_path: str,
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
    d = dict(defaults)
    d.update(raw)
    if "inputs" not in d:
        raise w.error("inputs", "missing: where the frames are (glob, list, file.h5:/data)")
    on_error = d.get("on_error", "raise")
    if on_error not in ("raise", "fill"):
        raise w.error("on_error", f"must be raise or fill, got {on_error!r}")
    try:
        inputs = resolve_inputs(d["inputs"], base, "inputs", allow_missing=on_error == "fill")
    except InputError as exc:
        raise w.error("inputs", exc.reason + (f": {exc.path}" if exc.path else "")) from None
    if "mesh" in d:
        mesh = d["mesh"]
        if not isinstance(mesh, list) or len(mesh) != 2:
            raise w.error("mesh", f"must be [npt_y, npt_x], got {mesh!r}")
        npt_y, npt_x = mesh
    else:
        npt_y, npt_x = d.get("npt_y"), d.get("npt_x")
        if npt_y is None or npt_x is None:
            raise w.error("mesh", "missing: [npt_y, npt_x] (or npt_y and npt_x)")
    npt_y, npt_x = _int(npt_y, "mesh", w), _int(npt_x, "mesh", w)
    order = d.get("scan_order", "raster")
    if order not in ("raster", "snake", "column"):
        raise w.error("scan_order", f"must be raster, snake or column, got {order!r}")
    roi = d.get("roi")
    if roi is not None:
        if not isinstance(roi, list) or len(roi) != 4 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in roi):
            raise w.error("roi", f"must be [x0, y0, x1, y1] (ints >= 0, inclusive), got {roi!r}")
        if roi[2] < roi[0] or roi[3] < roi[1]:
            raise w.error("roi", f"x1 < x0 or y1 < y0 in {roi!r}")
        roi = tuple(roi)
    origin = d.get("roi_origin", "upper")
    if origin not in ("upper", "lower"):
        raise w.error("roi_origin", f"must be upper or lower, got {origin!r}")
    binning = _int(d.get("binning", 1), "binning", w)
    if roi is not None:
        from .maps import check_binning

        try:
            check_binning((roi[3] - roi[1] + 1, roi[2] - roi[0] + 1), binning)
        except InputError as exc:
            raise w.error("binning", exc.reason) from None
    flags = {}
    for key, default in (("composite", True), ("roi_sum", True), ("allow_incomplete", False)):
        v = d.get(key, default)
        if not isinstance(v, bool):
            raise w.error(key, f"must be true or false, got {v!r}")
        flags[key] = v
    rings = _parse_rings(d.get("rings"), w)
    stats = _parse_stats(d.get("stats"), w)
    if not (flags["composite"] or flags["roi_sum"] or rings or stats):
        raise w.error("composite", "nothing to compute: no composite, roi_sum, rings or stats")
    fpc = d.get("frames_per_chunk", "auto")
    if fpc != "auto":
        fpc = _int(fpc, "frames_per_chunk", w)
    out = d.get("output", output)
    if out is None:
        raise w.error("output", "missing: the zarr store to write (top-level or per scan)")
    out = _path(out, "output", w, base)
    group = d.get("group", name)
    if not isinstance(group, str) or not all(_NAME_RE.match(p) for p in group.split("/")):
        raise w.error("group", f"must be a group name like 'a' or 'a/b', got {group!r}")
    return ScanJob(name=name, inputs=inputs, npt_y=npt_y, npt_x=npt_x, output=out,
                   group=group, scan_order=order,
                   allow_incomplete=flags["allow_incomplete"], roi=roi, roi_origin=origin,
                   binning=binning, rings=rings, composite=flags["composite"],
                   roi_sum=flags["roi_sum"], stats=stats,
                   corrections=_parse_corrections(d.get("corrections"), w, base),
                   on_error=on_error, frames_per_chunk=fpc)


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
    output = doc.get("output")
    jobs = tuple(_parse_scan(raw, defaults, i, base, yaml_path, output)
                 for i, raw in enumerate(scans))
    seen: dict = {}
    for job in jobs:
        key = (job.output, job.group)
        if key in seen:
            raise _Where(yaml_path, job.name).error(
                "name", f"writes the same output group as scan {seen[key]!r}")
        seen[key] = job.name
    summary = doc.get("summary")
    if summary is None:
        stem = os.path.splitext(os.path.basename(yaml_path))[0]
        summary = os.path.join(base, f"{stem}_summary.csv")
    else:
        summary = _path(summary, "summary", w, base)
    cluster = doc.get("cluster")
    if cluster is not None:
        from .cluster import spec_from_options

        if not isinstance(cluster, dict):
            raise w.error("cluster", "must be a mapping of execution options")
        try:
            spec_from_options(cluster)  # validated now, used (with CLI overrides) by `run`
        except InputError as exc:
            raise w.error("cluster", exc.reason) from None
    return SurveyJob(yaml_path, jobs, summary, cluster)


# -- running --------------------------------------------------------------------------------
@dataclass
class ScanResult:
    """One row of the summary table."""

    scan: str
    status: str            # done | resumed | skipped | failed | not run
    frames: int = 0
    bad_frames: int = 0
    seconds: float = 0.0
    retries: int = 0
    output: str = ""
    message: str = ""

    def row(self) -> dict:
        return {"scan": self.scan, "status": self.status, "frames": self.frames,
                "bad_frames": self.bad_frames, "seconds": f"{self.seconds:.1f}",
                "retries": self.retries, "output": self.output, "message": self.message}


SUMMARY_COLUMNS = ("scan", "status", "frames", "bad_frames", "seconds", "retries", "output",
                   "message")


def read_image(path: str, argument: str):
    """One 2-D image from ``path``: ``.npy`` (``allow_pickle=False``) or an image file (EDF
    header-checked, others through fabio: :func:`xrsmap_dask.imageseries.read_image`)."""
    import numpy as np

    from .errors import UnsafeInputError

    if path.lower().endswith(".npy"):
        from .imageseries.imagefiles import load_npy

        try:
            data = load_npy(path)
        except UnsafeInputError as exc:
            raise UnsafeInputError(exc.reason, path=path, argument=argument) from None
        except InputError as exc:
            raise InputError(exc.reason, path=path, argument=argument) from None
    else:
        from .imageseries import read_image as read_image_file

        data = read_image_file(path, argument)
    data = np.asarray(data)
    if data.ndim != 2:
        raise InputError(f"expected a 2-D image, got shape {data.shape}", path=path,
                         argument=argument)
    return data


def load_corrections(files: CorrectionFiles, nframes: int | None = None,
                     frame_shape=None):
    """:class:`xrsmap_dask.maps.Corrections` from correction files.

    The background is the mean (as xrsmap; or median / a percentile: ``background_method``)
    of its frames, itself dark-subtracted and flat-divided.  ``norm`` is a ``.npy`` or text file of one value per frame.
    """
    import numpy as np

    from .maps import Corrections

    dark = read_image(files.dark, "dark") if files.dark else None
    flat = read_image(files.flat, "flat") if files.flat else None
    mask = read_image(files.mask, "mask") if files.mask else None
    background = None
    if files.background:
        from .imageseries import from_files
        from .maps import background_image

        try:
            frames = from_files(list(files.background))
        except InputError as exc:
            raise InputError(exc.reason, path=exc.path, frame=exc.frame,
                             argument="background") from None
        background = background_image(frames, files.background_method, files.background_pct,
                                      dark=dark, flat=flat, frame_shape=frame_shape)
    norm = None
    if files.norm:
        try:
            norm = np.load(files.norm, allow_pickle=False) if files.norm.endswith(".npy") \
                else np.loadtxt(files.norm, dtype=np.float64, ndmin=1)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read per-frame norm values: {exc}", path=files.norm,
                             argument="norm") from None
        if nframes is not None and np.size(norm) != nframes:
            raise InputError(f"{np.size(norm)} values for {nframes} frames", path=files.norm,
                             argument="norm")
    return Corrections(dark=dark, flat=flat, background=background, mask=mask, norm=norm,
                       dummy=files.dummy)


def scan_output_path(job: ScanJob) -> str:
    """The zarr group directory of a scan: ``<output>/<group>``."""
    return os.path.join(job.output, *job.group.split("/"))


def build_scan_maps(job: ScanJob, ims=None, progress=None):
    """Open a scan's inputs and build its lazy maps (validates sizes before reading).

    Returns ``(ims, maps)``; ``maps`` is ``None`` when only statistics were asked for.
    """
    from .maps import MapSpec, build_maps
    from .roi import xrsmap_roi_to_slices
    from .scan import ScanGeometry

    if ims is None:
        ims = open_inputs(job.inputs, on_error=job.on_error, progress=progress)
    scan = ScanGeometry(job.npt_y, job.npt_x, kind=job.scan_order,
                        allow_incomplete=job.allow_incomplete)
    try:
        scan.check_nframes(len(ims))
    except InputError:
        # said in the words of job specs and the command line, not of the Python API
        fewer = len(ims) < scan.npoints
        raise InputError(
            f"the inputs hold {len(ims)} frames for a {job.npt_y} x {job.npt_x} scan "
            f"(npt_y x npt_x, --npt-y x --npt-x) of {scan.npoints} points"
            + ("; accept a partial scan with allow_incomplete: true (--allow-incomplete)"
               if fewer else ""), argument=f"scan {job.name!r} inputs") from None
    if not (job.composite or job.roi_sum or job.rings):
        return ims, None
    roi = xrsmap_roi_to_slices(job.roi, ims.shape, job.roi_origin) if job.roi else None
    corrections = load_corrections(job.corrections, len(ims), ims.shape)
    spec = MapSpec(roi=roi, binning=job.binning, rings=job.rings, composite=job.composite,
                   roi_sum=job.roi_sum)
    return ims, build_maps(ims, spec, scan, corrections, job.frames_per_chunk)


def _ensure_root(path: str) -> None:
    """Make ``path`` a zarr group (the survey store) unless it already is one."""
    import zarr

    if os.path.exists(os.path.join(path, "zarr.json")):
        return
    if os.path.exists(path) and os.listdir(path):
        raise InputError("exists and is not a zarr store", path=path, argument="output")
    zarr.open_group(store=path, mode="a", zarr_format=3)


def write_stats(job: ScanJob, ims, path: str, executor, overwrite: bool = False) -> bool:
    """Write the scan's pixel-wise statistics to the group ``<path>/stats``.

    Returns False when they were already complete for the same inputs and statistics
    (nothing done).  Statistics of other inputs are refused unless ``overwrite``; an
    incomplete group is recomputed.  The group's ``complete`` attr is set last.
    """
    import zarr

    from . import stats as lazy_stats
    from .store import inputs_digest, write_stats as store_stats

    spath = os.path.join(path, "stats")
    identity = {"inputs_digest": inputs_digest(ims), "nframes": len(ims),
                "on_error": job.on_error}
    if os.path.exists(os.path.join(spath, "zarr.json")) and not overwrite:
        have = zarr.open_group(store=spath, mode="r").attrs
        same = all(have.get(k) == v for k, v in identity.items()) and \
            sorted(have.get("stats", [])) == sorted(s.label for s in job.stats)
        if have.get("complete") is True:
            if same:
                return False
            raise InputError("holds the statistics of a different job (other inputs or "
                             "statistics); pass overwrite to replace them", path=spath,
                             argument="output")

    lazy = lazy_stats.lazy_stats(ims, [s.name for s in job.stats if s.q is None],
                                 [s.q for s in job.stats if s.q is not None])
    results = executor.compute(*lazy.values(), label=f"{job.name}: statistics "
                                                     f"({', '.join(lazy)})")
    store_stats(spath, dict(zip(lazy, results)),
                {**identity,
                 "convention": "pixel-wise over all frames; frame rows x cols",
                 "bad_frames": [list(b) for b in getattr(ims, "bad_frames", [])]})
    if os.path.exists(os.path.join(path, "zarr.json")):
        # the map group's consolidated metadata must list the new stats arrays
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr: consolidated metadata not in the v3 spec
            zarr.consolidate_metadata(path)
    return True


def run_scan(job: ScanJob, executor, overwrite: bool = False, ims=None) -> ScanResult:
    """Process one scan to ``<output>/<group>``: skip if complete, resume if not.

    ``ims`` is the scan's already opened series (opened now when omitted).
    """
    import zarr

    from .store import write_maps

    t0 = time.perf_counter()
    path = scan_output_path(job)
    faults_before = executor.retries
    result = ScanResult(job.name, "failed", output=path)
    ims, maps = build_scan_maps(job, ims, executor.counter(f"{job.name}: reading headers"))
    result.frames = len(ims)
    status = "skipped"
    bad: list = []
    if maps is not None:
        executor._say(f"{job.name}: {len(ims)} frames -> {path}")
        with executor.progress():
            res = write_maps(maps, path, ims, overwrite=overwrite, scheduler=executor.scheduler,
                             attrs={"scan_name": job.name})
        bad = res.bad_frames
        if not res.skipped:
            status = "done" if len(res.computed_chunks) == res.nchunks else "resumed"
    else:
        if overwrite and os.path.exists(path):
            import shutil

            shutil.rmtree(path)
        zarr.open_group(store=path, mode="a", zarr_format=3)
        bad = [[i, p, r] for i, p, r in getattr(ims, "bad_frames", [])]
    if job.stats:
        if write_stats(job, ims, path, executor, overwrite=overwrite) and status == "skipped":
            status = "resumed" if maps is not None else "done"
    if maps is None:
        group = zarr.open_group(store=path, mode="r+")
        if group.attrs.get("complete") is not True:
            group.attrs.update({"bad_frames": bad, "scan_name": job.name})
            group.attrs.update({"complete": True})
    result.status = status
    result.bad_frames = len(bad)
    result.retries = executor.retries - faults_before
    result.seconds = time.perf_counter() - t0
    return result


def run_survey(job: SurveyJob, executor, *, overwrite: bool = False,
               keep_going: bool = True) -> list[ScanResult]:
    """Process every scan of ``job`` on ``executor`` and write the summary table.

    First every scan is opened (headers only) and its maps planned, so that bad input in
    any scan (missing files, frame count not fitting the mesh, ROI outside the frame, ...)
    is reported in seconds, before hours of computing.  A scan that fails, then or while
    running (an unreadable frame with ``on_error: raise``), is reported in the summary and,
    with ``keep_going``, the others still run; without it nothing more is started.
    Ctrl-C (KeyboardInterrupt) stops after writing the summary (remaining scans ``not run``).
    """
    results: dict[int, ScanResult] = {}
    opened: dict[int, object] = {}  # the series only: maps hold corrections, rebuilt later

    def fail(i: int, scan: ScanJob, exc: Exception) -> None:
        results[i] = ScanResult(scan.name, "failed", output=scan_output_path(scan),
                                message=str(exc))
        executor._say(f"{scan.name}: FAILED: {exc}")

    try:
        t0 = time.perf_counter()
        for i, scan in enumerate(job.scans):
            try:
                opened[i] = build_scan_maps(
                    scan, progress=executor.counter(f"{scan.name}: reading headers"))[0]
            except InputError as exc:
                fail(i, scan, exc)
        executor._say(f"checked {len(job.scans)} scans in {time.perf_counter() - t0:.1f} s: "
                      f"{len(opened)} ready, {len(job.scans) - len(opened)} failed")
        if results and not keep_going:
            return _ordered(job, results)
        for root in sorted({s.output for s in job.scans}):
            _ensure_root(root)
        for i, scan in enumerate(job.scans):
            if i not in opened:
                continue
            try:
                results[i] = run_scan(scan, executor, overwrite=overwrite, ims=opened.pop(i))
            except InputError as exc:
                fail(i, scan, exc)
                if not keep_going:
                    break
    finally:
        ordered = _ordered(job, results)
        write_summary(ordered, job.summary)
    return ordered


def _ordered(job: SurveyJob, results: dict) -> list[ScanResult]:
    """Results in the spec's scan order; scans without one are ``not run``."""
    return [results.get(i) or ScanResult(scan.name, "not run", output=scan_output_path(scan))
            for i, scan in enumerate(job.scans)]


def write_summary(results: Sequence[ScanResult], path: str) -> tuple[str, str]:
    """Write the summary as CSV at ``path`` and as a markdown table beside it (``.md``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        for r in results:
            writer.writerow(r.row())
    md = os.path.splitext(path)[0] + ".md"
    with open(md, "w", encoding="utf-8") as f:
        f.write(format_table(results))
    return path, md


def format_table(results: Sequence[ScanResult]) -> str:
    """The summary as a markdown table."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |",
             "|" + "|".join("---" for _ in SUMMARY_COLUMNS) + "|"]
    for r in results:
        row = r.row()
        lines.append("| " + " | ".join(cell(row[c]) for c in SUMMARY_COLUMNS) + " |")
    return "\n".join(lines) + "\n"
