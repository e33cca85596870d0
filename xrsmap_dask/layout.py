"""What an output holds and how it is written: arrays, write units, identity.

The graph builders (:mod:`xrsmap_dask.maps`, :mod:`xrsmap_dask.stats`) describe their output
with these plain objects and :mod:`xrsmap_dask.store` writes whatever it is given, so the
store never imports a graph builder:

* :class:`ArraySpec`: one output array: name, dimension names, shape, chunk shape, dtype,
  fill value (what a chunk no unit wrote reads as);
* :class:`OutputLayout`: the arrays plus the *write units*: unit ``u`` writes exactly one
  chunk of every unit-written array, the region :meth:`OutputLayout.region` (numpy slices,
  stop exclusive); units never share a chunk, so they can run anywhere in any order;
* :class:`OutputRequest`: a layout, the task computing each unit (``{array name: block}``),
  the identity of the job (equal identity = same output, so a partial output resumes) and
  descriptive attrs;
* :func:`encode_attrs` / :func:`decode_attrs`: attrs as netCDF and HDF5 take them (numbers,
  strings, flat lists of numbers), structured values as JSON strings named in ``json_attrs``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: version of the on-disk format (chunk_done + chunk_checksum, frame_unreadable)
FORMAT_VERSION = 2


@dataclass(frozen=True, eq=False)
class ArraySpec:
    """One output array.

    ``values``, when given, is written once when the output is created (coordinates such as
    ring radii); every other array is written unit by unit.
    """

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    fill: Any
    attrs: Mapping = field(default_factory=dict)
    values: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        object.__setattr__(self, "chunks", tuple(max(1, int(v)) for v in self.chunks))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).str)
        if not (len(self.dims) == len(self.shape) == len(self.chunks)):
            raise ValueError(f"{self.name}: dims, shape and chunks differ in length")

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


@dataclass(frozen=True, eq=False)
class OutputLayout:
    """Arrays and write units of one output.

    ``units[u]`` maps the name of each array unit ``u`` writes to the region (a tuple of
    slices, one per dim, aligned to the array's chunks) it writes there: one chunk.
    """

    arrays: tuple[ArraySpec, ...]
    units: tuple[Mapping[str, tuple[slice, ...]], ...]

    @property
    def nunits(self) -> int:
        return len(self.units)

    def spec(self, name: str) -> ArraySpec:
        for a in self.arrays:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def unit_arrays(self) -> tuple[str, ...]:
        """Names of the arrays written unit by unit (every array but fixed coordinates)."""
        return tuple(a.name for a in self.arrays if a.values is None)

    def region(self, u: int, name: str) -> tuple[slice, ...]:
        return tuple(self.units[u][name])

    def chunk_index(self, u: int, name: str) -> tuple[int, ...]:
        """Chunk coordinates of the chunk unit ``u`` writes in array ``name``."""
        spec = self.spec(name)
        return tuple(s.start // c for s, c in zip(self.region(u, name), spec.chunks))

    def unit_nbytes(self, u: int) -> int:
        """Bytes unit ``u`` writes (uncompressed)."""
        total = 0
        for name in self.units[u]:
            n = self.spec(name).itemsize
            for s in self.region(u, name):
                n *= s.stop - s.start
            total += n
        return total

    def to_attrs(self) -> dict:
        """JSON-able description (recorded with the output; must match to resume)."""
        return {"nunits": self.nunits,
                "arrays": {a.name: {"shape": list(a.shape), "chunks": list(a.chunks),
                                    "dtype": a.dtype} for a in self.arrays}}


@dataclass(eq=False)
class OutputRequest:
    """Everything the store needs to write one output.

    Attributes
    ----------
    layout : OutputLayout
    unit_task : callable
        ``unit_task(u)`` is a dask task (a tuple, run inside the store's write task) that
        computes ``{array name: block}`` for unit ``u``.
    graph : HighLevelGraph or None
        Layers the unit tasks depend on (e.g. shared parameters), or None.
    identity : dict
        JSON-able; its digest (``job_digest``) identifies the job.  A partial output resumes
        only with the same identity.
    attrs : dict
        JSON-able descriptive attrs (date, file names, ...); not part of the identity.
    summarize : callable, optional
        ``summarize({name: array})`` -> attrs set when the output completes, from the arrays
        named ``summary_arrays`` read back (e.g. the bad frames from their flags).
    relayout : callable, optional
        ``relayout(layout attrs)`` -> an equivalent request in another chunk layout (to
        resume a partial output written with other chunks), or None when impossible.
    inputs : sequence of str
        Input files and directories the output must not overlap.
    kind : str
        ``'maps'`` or ``'stats'`` (recorded as attr ``output_kind``).
    task_name : str
        Prefix of the store's task names (one task per unit computes and writes it), e.g.
        ``map-reduce-write``: what the dashboard shows.
    """

    layout: OutputLayout
    unit_task: Callable[[int], Any]
    graph: Any = None
    identity: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    summarize: Callable[[dict], dict] | None = None
    summary_arrays: Sequence[str] = ()
    relayout: Callable[[dict], "OutputRequest | None"] | None = None
    inputs: Sequence[str] = ()
    kind: str = "maps"
    task_name: str = "store-chunk"

    def job_digest(self) -> str:
        return digest({"xrsmap_dask_format": FORMAT_VERSION, "output_kind": self.kind,
                       **self.identity})


# ---------------------------------------------------------------------------------------
# identity helpers


def jsonable(obj):
    """``obj`` with numpy scalars as Python numbers, tuples as lists, non-finite floats as
    strings (JSON and zarr attrs take it as is)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def digest(obj) -> str:
    """sha1 of the JSON form of ``obj`` (keys sorted)."""
    return hashlib.sha1(json.dumps(jsonable(obj), sort_keys=True).encode()).hexdigest()


def inputs_digest(ims) -> str:
    """sha1 of the input list (paths, sizes, mtimes) or, for other series, their token."""
    h = hashlib.sha1()
    names = ims.filenames
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


def bad_frame_list(ims, flagged: Sequence[int]) -> list[list]:
    """``[index, file, reason]`` of every unreadable frame: those ``ims`` knew at open, plus
    the frame indices ``flagged`` while reading (reason ``read as NaN (unreadable when
    read)``), sorted by index."""
    bad = [[int(i), str(p), str(r)] for i, p, r in ims.bad_frames]
    known = {b[0] for b in bad}
    names = ims.filenames
    for f in sorted({int(f) for f in flagged} - known):
        bad.append([f, names[f] if names else "", "read as NaN (unreadable when read)"])
    return sorted(bad)


# ---------------------------------------------------------------------------------------
# coordinates shared by map and statistics outputs

#: the detector dimensions of every output (composite tiles, statistics images)
DETECTOR_DIMS = ("det_y", "det_x")


def detector_axes(rows: slice, cols: slice, binning: int = 1) -> list[ArraySpec]:
    """The coordinates ``det_y`` and ``det_x``: the detector pixel (row, column; rows from
    the top, pixel ``(i, j)`` centred at ``(i, j)``) at the centre of each pixel of the
    region ``rows x cols`` binned ``binning x binning`` (``start + b k + (b - 1) / 2``)."""
    out = []
    for dim, s, what in (("det_y", rows, "row"), ("det_x", cols, "column")):
        n = (s.stop - s.start) // binning
        values = s.start + binning * np.arange(n, dtype=np.float64) + (binning - 1) / 2
        label = f"detector {what}" + (f" (centre of {binning} x {binning} binned pixels)"
                                      if binning > 1 else "")
        out.append(ArraySpec(dim, (dim,), (n,), (n,), "float64", float("nan"),
                             attrs={"long_name": label, "units": "pixel"}, values=values))
    return out


# ---------------------------------------------------------------------------------------
# attrs on disk

#: attr listing (separated by spaces) the attrs stored as JSON strings
JSON_ATTRS = "json_attrs"
_INT32 = 2**31


def _plain(value) -> bool:
    """Whether netCDF-3, netCDF-4 and HDF5 take ``value`` as an attr as it is."""
    if isinstance(value, str):
        return True
    if isinstance(value, (bool, np.bool_)):
        return False        # netCDF-4 (h5netcdf, netCDF4) refuses boolean attrs
    if isinstance(value, (int, np.integer)):
        return -_INT32 <= int(value) < _INT32
    if isinstance(value, (float, np.floating)):
        return True
    if isinstance(value, (list, tuple)) and value:
        kinds = {type(v) for v in value}
        if kinds <= {float} or (kinds <= {int} and all(-_INT32 <= v < _INT32 for v in value)):
            return True
    return False


def encode_attrs(attrs: Mapping, previous: Mapping | None = None) -> dict:
    """``attrs`` as stored: strings, numbers (ints within 32 bits) and non-empty flat lists
    of numbers stay as they are; anything else (dicts, ``None``, bools, nested or empty
    lists, lists of strings, big integers) becomes a JSON string (``'true'``, ``'null'``,
    ...; non-finite floats as strings, see :func:`jsonable`), its name listed in the attr
    ``json_attrs``.

    ``previous`` are the attrs already stored (raw) when ``attrs`` updates them: their
    ``json_attrs`` list is kept for the names not given again.  The result is what
    ``xarray.open_zarr(...).to_netcdf(...)`` accepts.
    """
    encoded = set(str((previous or {}).get(JSON_ATTRS, "")).split())
    out = {}
    for key, value in attrs.items():
        key = str(key)
        if key == JSON_ATTRS:
            continue
        value = jsonable(value)
        if _plain(value):
            out[key] = value
            encoded.discard(key)
        else:
            out[key] = json.dumps(value)
            encoded.add(key)
    if encoded or JSON_ATTRS in (previous or {}):
        out[JSON_ATTRS] = " ".join(sorted(encoded))
    return out


def decode_attrs(attrs: Mapping) -> dict:
    """Stored attrs back as written (the inverse of :func:`encode_attrs`); attrs without
    ``json_attrs`` come back unchanged."""
    out = dict(attrs)
    for key in str(out.pop(JSON_ATTRS, "")).split():
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass
    return out
