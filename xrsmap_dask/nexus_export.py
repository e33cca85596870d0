"""NeXus/HDF5 export of a zarr map group, for silx, PyMca and other NeXus viewers.

    export("maps.zarr", "maps.nxs")
    export_entries({"scan1": "survey.zarr/scan1", "scan2": "survey.zarr/scan2"}, "s.nxs")

Zarr stays the working (resumable) format; the NeXus file is a complete copy of its maps::

    /                        NXroot    @default="entry" @creator @file_name @file_time
    /entry                   NXentry   @default=<first map>, title
    /entry/process           NXprocess program="xrsmap-dask", version, date, sequence_index
      configuration          NXnote    type="application/json", data: the job (zarr attrs)
      inputs                 NXnote    type="application/json", data: files, frames, digest,
                                       bad frames
    /entry/<map>             NXdata    @signal=<map> @axes=[one name per dim] @<dim>_indices
      <map>                  the map, same dtype and values as in zarr, @long_name @units
      <dim>                  its coordinate: the store's coordinate array of that name (with
                             its attrs: ``y``/``x`` positions, ``det_y``/``det_x`` detector
                             pixels, ``ring``, ``bin``), else computed for outputs written
                             before the store held coordinates (point indices, pixels)
      <aux>                  the group's other coordinates along dims of the map
                             (``ring_width``, ``radial_count``, ``y_position``), with
                             @<aux>_indices as NeXus allows for extra coordinates

Attrs that are dicts, nested lists, ``None`` or bools are written as JSON strings (HDF5 and
netCDF attrs hold only scalars, strings and 1-D arrays): :func:`plain_attrs`; the store's
own attrs (JSON strings listed in ``json_attrs``) are decoded first.  Bookkeeping arrays
(``chunk_*``, ``frame_unreadable``, names starting with ``_``) are not exported.

The file is written as ``<nexus_path>.part-<random>`` and renamed when complete; an existing
output is refused unless ``overwrite=True``; the zarr group is only read, and an incomplete
one (``complete`` not true) is refused.
"""
from __future__ import annotations

import datetime
import json
import os
import uuid
from typing import Mapping

import numpy as np

from .errors import InputError
from .layout import decode_attrs

BOOKKEEPING = ("chunk_done",)
#: default long names of the maps a job writes (used when the store's array has none)
LONG_NAMES = {"roi_sum": "sum of the corrected ROI pixels",
              "annulus_sum": "sum of the corrected ring pixels",
              "composite": "corrected ROI, binned (sum of binning x binning pixels)"}
#: arrays bigger than this are written chunked and gzip-compressed (level 1, shuffled)
COMPRESS_BYTES = 2**20


def plain_attrs(attrs: Mapping) -> dict:
    """Attrs as HDF5/netCDF accept them: dicts, lists of non-numbers/strings, ``None`` and
    bools become JSON strings (``json.loads`` gives them back); numbers, strings and flat
    lists of one type stay as they are."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, dict):
            out[str(key)] = json.dumps(value.item() if isinstance(value, np.bool_) else value)
        elif isinstance(value, (list, tuple)):
            kinds = {type(v) for v in value}
            flat = len(kinds) == 1 and kinds <= {int, float, str}
            out[str(key)] = list(value) if flat else json.dumps(list(value))
        else:
            out[str(key)] = value
    return out


def _open_group(zarr_path: str):
    import zarr

    try:
        return zarr.open_group(store=zarr_path, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types for a non-group
        raise InputError(f"not a zarr group: {exc}", path=zarr_path) from None


def _dims(arr) -> tuple[str, ...]:
    names = getattr(arr.metadata, "dimension_names", None)
    return tuple(names) if names else tuple(f"dim_{k}" for k in range(arr.ndim))


def classify(group) -> tuple[dict, dict]:
    """``(maps, coords)`` of a zarr group, name -> array.  Coordinates are the arrays the
    group lists in its ``coordinates`` attr (``ring_width``, ``y_position``) and the 1-D
    arrays along a dimension of some map (``ring``, ``y``, ``det_x``); bookkeeping arrays
    are in neither."""
    listed = set(str(group.attrs.get("coordinates", "")).split())
    arrays = {name: arr for name, arr in group.arrays()
              if name not in BOOKKEEPING and not name.startswith("_")
              and not arr.attrs.get("bookkeeping")}
    candidates = {n: a for n, a in arrays.items() if a.ndim == 1 or n in listed}
    maps = {n: a for n, a in arrays.items() if n not in candidates}
    used = {d for a in maps.values() for d in _dims(a)}
    coords = {n: a for n, a in candidates.items() if set(_dims(a)) <= used}
    maps.update({n: a for n, a in candidates.items() if n not in coords})
    return dict(sorted(maps.items(), key=lambda kv: _order(kv[0]))), coords


def _order(name: str) -> tuple:
    known = ("roi_sum", "annulus_sum", "radial", "composite")
    return (known.index(name) if name in known else len(known), name)


def _computed_axis(dim: str, size: int, job: Mapping) -> tuple[np.ndarray, dict]:
    """Coordinate of a dimension the store holds no array for (outputs written before the
    store held coordinates)."""
    if dim in ("roi_y", "roi_x", "det_y", "det_x") and isinstance(job.get("roi"), dict):
        start = job["roi"]["rows" if dim[-1] == "y" else "cols"][0]
        b = int(job.get("binning") or 1)
        what = "row" if dim[-1] == "y" else "column"
        return (start + b * np.arange(size) + (b - 1) / 2,
                {"units": "pixel", "long_name": f"detector {what} (centre of the binned pixel)"})
    if dim in ("row", "col"):
        return np.arange(size), {"units": "pixel", "long_name": f"detector {dim} index"}
    if dim in ("y", "x"):
        slow = "slow" if dim == "y" else "fast"
        return np.arange(size), {"long_name": f"scan point {dim} index ({slow} axis)"}
    return np.arange(size), {"long_name": f"{dim} index"}


def _default_units(job: Mapping) -> str:
    corr = job.get("corrections") or {}
    if isinstance(corr, str):
        corr = json.loads(corr)
    return "counts" if not (corr.get("flat") or corr.get("norm")) else "arbitrary"


def _write_array(parent, name: str, arr, attrs: Mapping) -> None:
    """Copy a zarr array into a new dataset, one zarr chunk row (along axis 0) at a time."""
    nbytes = int(np.prod(arr.shape)) * arr.dtype.itemsize
    kwargs = {}
    if nbytes > COMPRESS_BYTES and arr.ndim:
        chunks = tuple(max(1, min(int(c), int(s))) for c, s in zip(arr.chunks, arr.shape))
        kwargs = {"chunks": chunks, "compression": "gzip", "compression_opts": 1,
                  "shuffle": True}
    ds = parent.create_dataset(name, shape=arr.shape, dtype=arr.dtype, **kwargs)
    if arr.ndim == 0:
        ds[()] = arr[()]
    else:
        step = max(1, int(arr.chunks[0]))
        for i in range(0, arr.shape[0], step):
            ds[i:i + step] = arr[i:i + step]
    ds.attrs.update(plain_attrs(decode_attrs(attrs)))


def _write_nxdata(entry, name: str, arr, coords: dict, job: Mapping) -> None:
    grp = entry.create_group(name)
    dims = _dims(arr)
    attrs = decode_attrs(dict(arr.attrs))
    attrs.setdefault("long_name", LONG_NAMES.get(name, name))
    if name in LONG_NAMES:
        attrs.setdefault("units", _default_units(job))
    _write_array(grp, name, arr, attrs)
    for k, dim in enumerate(dims):
        if dim == name:
            continue
        if dim in coords:
            _write_array(grp, dim, coords[dim], dict(coords[dim].attrs))
        else:
            values, axis_attrs = _computed_axis(dim, arr.shape[k], job)
            grp.create_dataset(dim, data=values).attrs.update(axis_attrs)
        grp.attrs[f"{dim}_indices"] = np.int32(k)
    for aux, carr in coords.items():
        cdims = _dims(carr)
        if aux not in cdims and set(cdims) <= set(dims):
            _write_array(grp, aux, carr, dict(carr.attrs))
            where = [dims.index(d) for d in cdims]
            grp.attrs[f"{aux}_indices"] = np.int32(where[0]) if len(where) == 1 else \
                np.asarray(where, dtype=np.int32)
    grp.attrs.update({"NX_class": "NXdata", "signal": name, "axes": list(dims),
                      "title": attrs["long_name"]})


def _write_process(entry, job: Mapping) -> None:
    from . import __version__

    proc = entry.create_group("process")
    proc.attrs["NX_class"] = "NXprocess"
    proc["program"] = "xrsmap-dask"
    proc["version"] = str(job.get("xrsmap_dask_version", __version__))
    proc["date"] = str(job.get("date", ""))
    proc["sequence_index"] = np.int32(1)
    input_keys = ("first_file", "last_file", "nframes", "inputs_digest", "bad_frames",
                  "on_error", "frame_shape")
    for note, content in (("configuration", {k: v for k, v in job.items()
                                             if k not in input_keys}),
                          ("inputs", {k: job[k] for k in input_keys if k in job})):
        grp = proc.create_group(note)
        grp.attrs["NX_class"] = "NXnote"
        grp["type"] = "application/json"
        grp["data"] = json.dumps(content, indent=1, sort_keys=True)


def export(zarr_path, nexus_path, *, overwrite: bool = False) -> str:
    """Write the maps of the zarr group ``zarr_path`` to the NeXus/HDF5 file ``nexus_path``
    (one NXentry, ``/entry``).

    Returns the path written.  Raises :class:`InputError` for a group that is not a complete
    map group, an existing output (unless ``overwrite``) or an output that would replace
    the input.
    """
    return export_entries({"entry": zarr_path}, nexus_path, overwrite=overwrite)


def _checked_group(zarr_path: str, nexus_path: str):
    src = os.path.abspath(zarr_path)
    if nexus_path == src or nexus_path.startswith(src + os.sep):
        raise InputError("the NeXus file would overwrite the zarr input", path=nexus_path,
                         argument="output")
    group = _open_group(zarr_path)
    job = decode_attrs(dict(group.attrs))
    if job.get("complete") is not True:
        raise InputError("the map group is incomplete (its job did not finish); rerun the job "
                         "to complete it before exporting", path=zarr_path)
    maps, coords = classify(group)
    if not maps:
        raise InputError("holds no maps to export (is it a map group?)", path=zarr_path)
    return job, maps, coords


def check_nexus_output(nexus_path, overwrite: bool = False) -> str:
    """``nexus_path`` if a NeXus file may be written there: a new file, a NeXus file written
    by xrsmap-dask before (its root ``creator``), or anything else with ``overwrite``.
    Called before any map is computed, after :func:`~xrsmap_dask.store.check_writable`
    (which refuses a directory)."""
    import h5py

    path = os.path.abspath(os.fspath(nexus_path))
    if not os.path.lexists(path) or overwrite:
        return path
    try:
        with h5py.File(path, "r") as f:
            ours = str(f.attrs.get("creator", "")).startswith("xrsmap-dask")
    except OSError:
        ours = False
    if not ours:
        raise InputError("exists and is not a NeXus file written by xrsmap-dask; choose "
                         "another output or pass overwrite=True to replace it", path=path,
                         argument="output")
    return path


def export_entries(entries: Mapping[str, object], nexus_path, *,
                   overwrite: bool = False) -> str:
    """Write several map groups to one NeXus file, one NXentry each: ``entries`` maps the
    entry name (e.g. a scan name) to its zarr group; the file's default is the first.
    Checks as :func:`export`."""
    import h5py

    from . import __version__

    nexus_path = os.path.abspath(os.fspath(nexus_path))
    groups = {str(name): _checked_group(os.fspath(path), nexus_path)
              for name, path in entries.items()}
    if not groups:
        raise InputError("no map group to export", path=nexus_path, argument="output")
    if os.path.exists(nexus_path) and not overwrite:
        raise InputError("exists; pass overwrite=True to replace it",
                         path=nexus_path, argument="output")
    os.makedirs(os.path.dirname(nexus_path), exist_ok=True)
    tmp = f"{nexus_path}.part-{uuid.uuid4().hex[:8]}"
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"NX_class": "NXroot", "default": next(iter(groups)),
                            "file_time": now, "file_name": os.path.basename(nexus_path),
                            "creator": f"xrsmap-dask {__version__}",
                            "HDF5_Version": h5py.version.hdf5_version,
                            "h5py_version": h5py.version.version})
            for name, (job, maps, coords) in groups.items():
                _write_entry(f.create_group(name), job, maps, coords)
        os.replace(tmp, nexus_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return nexus_path


def _write_entry(entry, job: Mapping, maps: dict, coords: dict) -> None:
    entry.attrs.update({"NX_class": "NXentry", "default": next(iter(maps))})
    first, last = job.get("first_file"), job.get("last_file")
    entry["title"] = "xrsmap-dask maps" + (f" of {first} .. {last}" if first else "")
    _write_process(entry, job)
    for name, arr in maps.items():
        _write_nxdata(entry, name, arr, coords, job)


def read_maps(nexus_path) -> dict[str, np.ndarray]:
    """The maps of a NeXus file written by :func:`export`: ``{name: array}`` (each NXdata's
    signal), read with plain h5py."""
    import h5py

    out = {}
    with h5py.File(os.fspath(nexus_path), "r") as f:
        entry = f[f.attrs.get("default", "entry")]
        for name, grp in entry.items():
            if isinstance(grp, h5py.Group) and grp.attrs.get("NX_class") == "NXdata":
                out[name] = grp[grp.attrs["signal"]][()]
    return out
