"""Zarr output of a map job: written chunk by chunk from the dask graph, resumable.

One zarr v3 group per job holds

* ``composite`` ``(y, x, roi_y, roi_x)`` (float32 by default; a chunk covers whole frames
  of whole scan lines),
* ``roi_sum`` ``(y, x)`` float64, ``annulus_sum`` ``(ring, y, x)`` float64,
* ``chunk_done`` ``(chunk,)`` uint8: 1 once map chunk ``c`` of every array is written (its
  own zarr chunk, written *after* the chunk's data),
* with rings, ``ring`` (radii) and ``ring_width`` along ``ring`` (pixels),

each with ``dimension_names``, so ``xarray.open_zarr(path)`` opens it with named dims.
Group attrs record the ROI, binning, rings, scan geometry, corrections, a digest of the
inputs, the package version and date, the bad frames ``[index, file, reason]`` and
``complete``: set to ``True`` last, only once every chunk is done.

Resume: rerunning the same job on an incomplete output computes (and reads the frames of)
only the chunks not yet done; a complete output is left alone unless ``overwrite=True``;
an output holding a different job is refused.  A lock file ``<path>.lock`` (created
atomically, holding pid and host) makes a second concurrent writer fail with
:class:`OutputLockedError`; a lock left by a dead process on this host is taken over.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import socket
import uuid
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

DIMS = {"composite": ("y", "x", "roi_y", "roi_x"), "roi_sum": ("y", "x"),
        "annulus_sum": ("ring", "y", "x"), "chunk_done": ("chunk",)}
FORMAT_VERSION = 1


class OutputLockedError(InputError):
    """Another job is writing the same output."""


# ---------------------------------------------------------------------------------------
# lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class OutputLock:
    """An exclusive lock on ``path`` (a file ``<path>.lock`` with pid, host and time)."""

    path: str
    lock_path: str = field(init=False)
    held: bool = field(default=False, init=False)

    def __post_init__(self):
        self.lock_path = os.path.normpath(os.fspath(self.path)) + ".lock"

    def acquire(self) -> "OutputLock":
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        parent = os.path.dirname(self.lock_path) or "."
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(self.lock_path)}.{uuid.uuid4().hex}")
        with open(tmp, "w") as f:
            json.dump(info, f)
        try:
            for _ in range(2):
                try:
                    os.link(tmp, self.lock_path)  # atomic: fails if the lock exists
                    self.held = True
                    return self
                except FileExistsError:
                    owner = self._owner()
                    if owner is not None and owner.get("host") == info["host"] and \
                            isinstance(owner.get("pid"), int) and not _pid_alive(owner["pid"]):
                        # stale: its process died (killed) on this host
                        try:
                            os.unlink(self.lock_path)
                        except FileNotFoundError:
                            pass
                        continue
                    who = "an unknown process" if owner is None else \
                        f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('time')}"
                    raise OutputLockedError(
                        f"another job is writing this output ({who}); wait for it, or delete "
                        f"{self.lock_path} if no job is running", path=self.path,
                        argument="output") from None
            raise OutputLockedError(f"could not take the lock {self.lock_path}",
                                    path=self.path, argument="output")
        finally:
            os.unlink(tmp)

    def _owner(self) -> dict | None:
        try:
            with open(self.lock_path) as f:
                owner = json.load(f)
            return owner if isinstance(owner, dict) else None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            try:
                os.unlink(self.lock_path)
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ---------------------------------------------------------------------------------------
# attrs


def inputs_digest(ims) -> str:
    """sha1 of the input list (paths, sizes, mtimes) or, for other series, their token."""
    h = hashlib.sha1()
    names = getattr(ims, "filenames", None)
    if names is not None:
        for name in names:
            try:
                st = os.stat(name)
                h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{name}\0missing\n".encode())
    else:
        h.update(str(ims.token).encode())
    h.update(f"{len(ims)} {tuple(ims.shape)} {ims.dtype}".encode())
    return h.hexdigest()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def job_attrs(maps, ims, extra: dict | None = None) -> dict:
    """Attrs describing a map job (all JSON-able)."""
    from . import __version__

    plan = maps.plan
    roi = plan.roi
    attrs = {
        "xrsmap_dask_format": FORMAT_VERSION,
        "roi": None if roi is None else {
            "rows": [roi[0].start, roi[0].stop], "cols": [roi[1].start, roi[1].stop],
            "convention": "numpy slices, rows from the top, stop exclusive",
            "xrsmap": [roi[1].start, roi[0].start, roi[1].stop - 1, roi[0].stop - 1]},
        "binning": plan.binning,
        "frame_shape": list(plan.frame_shape),
        "read_box": {"rows": [plan.box[0].start, plan.box[0].stop],
                     "cols": [plan.box[1].start, plan.box[1].stop]},
        "rings": [{"cen_y": r.cen_y, "cen_x": r.cen_x, "radius": r.radius, "width": r.width}
                  for r in plan.rings],
        "scan": plan.scan.to_attrs(),
        "unfilled_points": plan.unfilled,
        "corrections": maps.corrections.to_attrs(),
        "nframes": plan.nframes,
        "inputs_digest": inputs_digest(ims),
        "on_error": getattr(ims, "on_error", "raise"),
    }
    if extra:
        attrs.update(extra)
    attrs = _jsonable(attrs)
    attrs["job_digest"] = hashlib.sha1(json.dumps(attrs, sort_keys=True).encode()).hexdigest()
    # the chunk layout is not part of the job's identity but must match to resume
    attrs.update({"frames_per_chunk": plan.frames_per_chunk, "nchunks": plan.nchunks,
                  "map_axis": plan.map_axis, "map_chunk": plan.map_chunk})
    attrs["xrsmap_dask_version"] = __version__
    attrs["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    files = getattr(ims, "filenames", None)
    if files:
        attrs["first_file"] = files[0]
        attrs["last_file"] = files[-1]
    return attrs


# ---------------------------------------------------------------------------------------
# writing


def _array_specs(maps) -> dict:
    """name -> (shape, chunks, dtype, fill) of the arrays of a job."""
    plan = maps.plan
    ax, k = plan.map_axis, plan.map_chunk
    ny, nx = plan.scan.shape
    cy, cx = (k, nx) if ax == 0 else (ny, k)
    specs = {}
    for name, arr in maps.arrays().items():
        if name == "composite":
            chunks = (cy, cx) + tuple(arr.shape[2:])
        elif name == "roi_sum":
            chunks = (cy, cx)
        else:
            chunks = (arr.shape[0], cy, cx)
        specs[name] = (arr.shape, chunks, arr.dtype, np.nan)
    specs["chunk_done"] = ((plan.nchunks,), (1,), np.dtype("uint8"), 0)
    return specs


def _create(path: str, maps, attrs: dict):
    import zarr

    # marked as ours but unfinished first: a job killed while creating is recreated
    group = zarr.open_group(store=path, mode="w", zarr_format=3,
                            attributes={"xrsmap_dask_format": FORMAT_VERSION, "creating": True})
    for name, (shape, chunks, dtype, fill) in _array_specs(maps).items():
        group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                           dimension_names=DIMS[name])
    rings = maps.plan.rings
    if rings:
        # ring radii and widths as coordinates of the ``ring`` dimension (xarray shows them)
        for name, values in (("ring", [r.radius for r in rings]),
                             ("ring_width", [r.width for r in rings])):
            arr = group.create_array(name, shape=(len(rings),), dtype="float64",
                                     dimension_names=("ring",))
            arr[:] = np.asarray(values, dtype=np.float64)
            arr.attrs.update({"units": "pixels"})
    group.attrs.put({**attrs, "complete": False, "bad_frames": []})
    return group


def _done_flags(path: str, nchunks: int) -> np.ndarray:
    """The chunk_done records; an unreadable record (torn write) counts as not done."""
    import zarr

    arr = zarr.open_array(store=path, path="chunk_done", mode="r")
    try:
        return np.asarray(arr[:], dtype=np.uint8)
    except Exception:  # noqa: BLE001 - a torn chunk file: read record by record
        out = np.zeros(nchunks, np.uint8)
        for c in range(nchunks):
            try:
                out[c] = arr[c]
            except Exception:  # noqa: BLE001
                out[c] = 0
        return out


def _store_chunk(path: str, c: int, regions: dict, *blocks):
    """Task: write map chunk ``c`` of each array, then its done record."""
    import zarr

    for (name, region), block in zip(regions.items(), blocks):
        arr = zarr.open_array(store=path, path=name, mode="r+")
        arr[region] = block
    done = zarr.open_array(store=path, path="chunk_done", mode="r+")
    done[c] = 1
    return c


def _gather(*done):
    return list(done)


@dataclass
class StoreResult:
    """What :func:`write_maps` did."""

    path: str
    computed_chunks: list
    nchunks: int
    skipped: bool
    bad_frames: list


def write_stats(path, images: dict, attrs: dict | None = None) -> None:
    """Write pixel-wise statistic images ``{label: (rows, cols) array}`` as the zarr group
    ``path`` (replacing it): one array per label with dimension names ``(row, col)`` (frame
    pixels), group attrs ``stats`` (the labels), ``attrs``, the package version and date, and
    ``complete=True`` written last."""
    import zarr

    from . import __version__

    path = os.fspath(path)
    group = zarr.open_group(store=path, mode="w", zarr_format=3)
    for label, img in images.items():
        img = np.asarray(img)
        arr = group.create_array(label, shape=img.shape, dtype=img.dtype, chunks=img.shape,
                                 dimension_names=("row", "col"))
        arr[...] = img
    group.attrs.update({"stats": list(images), **_jsonable(attrs or {}),
                        "xrsmap_dask_version": __version__,
                        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                            timespec="seconds")})
    group.attrs.update({"complete": True})


def open_maps(path):
    """Open a map group with zarr (read only)."""
    import zarr

    return zarr.open_group(store=os.fspath(path), mode="r")


def write_maps(maps, path, ims, *, overwrite: bool = False, scheduler=None,
               attrs: dict | None = None, **compute_kwargs) -> StoreResult:
    """Write the maps of a job to the zarr group ``path``, chunk by chunk, resumably.

    Parameters
    ----------
    maps : xrsmap_dask.maps.Maps
        The lazy maps (:func:`xrsmap_dask.maps.build_maps`).
    path : str or PathLike
        Zarr group directory.
    ims : ImageSeries
        The series the maps were built from (for the inputs digest and bad frames).
    overwrite : bool
        Replace an existing output (complete or not, same job or not).
    scheduler : str or distributed.Client, optional
        Passed to ``dask.compute``.
    attrs : dict, optional
        Extra JSON-able attrs (part of the job identity).

    Returns
    -------
    StoreResult
        ``skipped=True`` when the output was already complete.
    """
    import dask
    import zarr
    from dask.base import tokenize
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    path = os.fspath(path)
    want = job_attrs(maps, ims, attrs)
    plan = maps.plan
    with OutputLock(path):
        exists = os.path.exists(os.path.join(path, "zarr.json"))
        if exists and overwrite:
            shutil.rmtree(path)
            exists = False
        elif not exists and os.path.exists(path) and os.listdir(path):
            raise InputError("exists and is not a zarr group; pass overwrite=True to replace it",
                             path=path, argument="output")
        if exists:
            have = dict(zarr.open_group(store=path, mode="r").attrs)
            if have.get("creating") is True and "job_digest" not in have:
                shutil.rmtree(path)  # our own creation, killed before it finished
                exists = False
        if exists:
            group = zarr.open_group(store=path, mode="r+")
            if have.get("job_digest") != want["job_digest"]:
                raise InputError("holds the output of a different job (other inputs or "
                                 "settings); pass overwrite=True to replace it", path=path,
                                 argument="output")
            if have.get("complete") is True:
                return StoreResult(path, [], plan.nchunks, True, list(have.get("bad_frames", [])))
            layout = ("frames_per_chunk", "map_axis", "map_chunk", "nchunks")
            if any(have.get(k) != want[k] for k in layout) and \
                    isinstance(have.get("frames_per_chunk"), int):
                # resume in the partial output's chunk layout (same numbers in any layout)
                from .maps import build_maps

                maps = build_maps(ims, maps.spec, maps.plan.scan, maps.corrections,
                                  have["frames_per_chunk"], fuse_reads=maps.fuse_reads)
                plan = maps.plan
                want.update({"frames_per_chunk": plan.frames_per_chunk,
                             "nchunks": plan.nchunks, "map_axis": plan.map_axis,
                             "map_chunk": plan.map_chunk})
            if any(have.get(k) != want[k] for k in layout):
                raise InputError(
                    f"holds a partial output written with frames_per_chunk="
                    f"{have.get('frames_per_chunk')} (map chunks of {have.get('map_chunk')} "
                    f"scan lines); resume with the same frames_per_chunk, or pass "
                    f"overwrite=True", path=path, argument="frames_per_chunk")
        else:
            group = _create(path, maps, want)
        done = _done_flags(path, plan.nchunks)
        todo = [c for c in range(plan.nchunks) if not done[c]]
        if todo:
            arrays = maps.arrays()
            token = tokenize(path, want["job_digest"], todo)
            sname = f"store-chunk-{token}"
            dsk = {}
            for c in todo:
                rows, cols = plan.chunk_slices(c)
                keys = maps.chunk_keys(c)
                regions = {}
                for name in keys:
                    regions[name] = (rows, cols) if name != "annulus_sum" else \
                        (slice(None), rows, cols)
                dsk[(sname, c)] = (_store_chunk, path, c, regions) + tuple(keys.values())
            gname = f"store-all-{token}"
            layers = {}
            deps = {}
            for arr in arrays.values():
                layers.update(arr.dask.layers)
                deps.update(arr.dask.dependencies)
            layers[sname] = dsk
            deps[sname] = {arr.name for arr in arrays.values()}
            layers[gname] = {gname: (_gather,) + tuple((sname, c) for c in todo)}
            deps[gname] = {sname}
            graph = HighLevelGraph(layers, deps)
            job = Delayed(gname, graph)
            if scheduler is not None:
                compute_kwargs["scheduler"] = scheduler
            dask.compute(job, **compute_kwargs)
        done = _done_flags(path, plan.nchunks)
        if not done.all():
            missing = [int(c) for c in np.flatnonzero(done == 0)]
            raise RuntimeError(f"chunks {missing} of {path} were not written")
        bad = _bad_frames(group, maps, ims)
        _consolidate(path)
        group = zarr.open_group(store=path, mode="r+")
        group.attrs.update({"bad_frames": bad})
        group.attrs.update({"complete": True})  # last: only now is the output whole
        return StoreResult(path, todo, plan.nchunks, False, bad)


def _consolidate(path: str) -> None:
    """Consolidate the group metadata so ``xarray.open_zarr(path)`` opens it directly
    (zarr warns that v3 consolidation is not in the spec yet: expected, silenced)."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(path)


def _bad_frames(group, maps, ims) -> list:
    """``[index, file, reason]`` of every unreadable frame: those known at open, plus frames
    that read as NaN later (found as unexplained NaN points of the sum maps)."""
    bad = [[int(i), str(p), str(r)] for i, p, r in maps.bad_frames]
    known = {b[0] for b in bad}
    p2f = maps.plan.scan.point_to_frame(maps.plan.nframes)
    nan = None
    for name in ("roi_sum", "annulus_sum"):
        if name in group:
            arr = np.isnan(group[name][:])
            arr = arr.any(axis=0) if arr.ndim == 3 else arr
            nan = arr if nan is None else nan | arr
    if nan is not None and getattr(ims, "on_error", "raise") == "fill":
        names = getattr(ims, "filenames", None)
        frames = p2f[nan & (p2f >= 0)]
        extra = sorted(int(f) for f in frames if int(f) not in known)
        for f in extra:
            bad.append([f, names[f] if names else "", "read as NaN (unreadable when read)"])
    return sorted(bad)
