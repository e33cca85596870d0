"""Zarr level of the on-disk protocol: arrays, unit writes, records, checksums, fsync.

An output is a zarr v3 group.  Besides the arrays of its layout it holds three records:

* ``chunk_index`` ``(chunk, array, dim)`` int32, written once: the chunk coordinates unit
  ``chunk`` writes in each array (-1: none), so the output can be checked without its job;
* ``chunk_checksum`` ``(chunk, array, word)`` int32: blake2b-64 of each chunk *file* the
  unit wrote (its bytes on disk, compressed) as two 32-bit words (low, high; int32 so that
  netCDF-3 takes the group too), in the order of the attr ``arrays`` (the names, separated
  by spaces; 0: the unit writes no chunk of that array);
* ``chunk_done`` ``(chunk,)`` uint8: 1 once the unit's chunks and checksums are written
  (written last).

A unit counts as done only if its record says so *and* every chunk file still hashes to its
checksum: a chunk deleted or altered after it was written is recomputed, never resumed.
Every chunk is written as a file, even one holding only the fill value, so a missing file
always means damage.
"""
from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np

from ..layout import ArraySpec, OutputLayout, encode_attrs

CHECKSUM = "blake2b-64 of the chunk file"
#: the records every output holds beside its arrays
RECORD_NAMES = ("chunk_done", "chunk_checksum", "chunk_index")


def chunk_file(path: str, name: str, index) -> str:
    """File of chunk ``index`` of array ``name`` (zarr v3 default key encoding, ``/``)."""
    return os.path.join(path, name, "c", *(str(int(i)) for i in index))


def file_checksum(filename: str) -> int:
    """blake2b-64 of a file's bytes as an int (0 when the file is missing)."""
    try:
        with open(filename, "rb") as f:
            h = hashlib.blake2b(f.read(), digest_size=8)
    except FileNotFoundError:
        return 0
    return int.from_bytes(h.digest(), "little") or 1


def fsync_path(path: str) -> None:
    """fsync a file or directory (best effort on file systems that refuse it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str) -> None:
    """fsync every file and directory under ``path`` (files first, then directories;
    in parallel threads so that the file system can commit them together)."""
    from concurrent.futures import ThreadPoolExecutor

    dirs, files = [], []
    for root, _, names in os.walk(path):
        dirs.append(root)
        files.extend(os.path.join(root, name) for name in names)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(fsync_path, files))
        list(pool.map(fsync_path, reversed(dirs)))


#: arrays opened by this process, keyed by their metadata file's identity (a task writes
#: several arrays of one output, and a worker runs many tasks of it)
_OPENED: dict = {}


def open_array(path: str, name: str, mode: str = "r+"):
    """The zarr array ``name`` of the group ``path`` (every chunk written as a file, even
    one holding only the fill value); opened once per process while its metadata file
    stays the same file."""
    import zarr

    try:
        st = os.stat(os.path.join(path, name, "zarr.json"))
        key = (path, name, mode, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    arr = _OPENED.get(key) if key else None
    if arr is None:
        arr = zarr.open_array(store=path, path=name, mode=mode)
        if mode != "r":
            arr = arr.with_config({"write_empty_chunks": True})
        if key:
            if len(_OPENED) > 256:
                _OPENED.clear()
            _OPENED[key] = arr
    return arr


def create_arrays(path: str, group, layout: OutputLayout) -> dict:
    """Create the layout's arrays and the two records in ``group`` (at ``path``); write the
    fixed values.  Returns ``{name: checksum}`` of the fixed-value arrays' chunk files.
    """
    names = layout.unit_arrays
    fixed = {}
    for a in layout.arrays:
        arr = group.create_array(a.name, shape=a.shape, chunks=a.chunks, dtype=a.dtype,
                                 fill_value=a.fill, dimension_names=a.dims, overwrite=True,
                                 config={"write_empty_chunks": True})
        if a.attrs:
            arr.attrs.update(encode_attrs(a.attrs))
        if a.values is not None:
            arr[...] = a.values
            fixed[a.name] = file_checksum(chunk_file(path, a.name, (0,) * len(a.shape)))
    n = layout.nunits
    ck = group.create_array("chunk_checksum", shape=(n, len(names), 2),
                            chunks=(1, len(names), 2), dtype="int32", fill_value=0,
                            dimension_names=("chunk", "array", "word"),
                            overwrite=True)
    ck.attrs.update({"arrays": " ".join(names), "checksum": CHECKSUM, "bookkeeping": 1})
    done = group.create_array("chunk_done", shape=(n,), chunks=(1,), dtype="uint8",
                              fill_value=0, dimension_names=("chunk",), overwrite=True)
    done.attrs.update({"bookkeeping": 1})
    ndim = max(len(group[name].shape) for name in names) if names else 1
    index = np.full((n, len(names), ndim), -1, dtype=np.int32)
    for u in range(n):
        for name in layout.units[u]:
            ci = layout.chunk_index(u, name)
            index[u, names.index(name), :len(ci)] = ci
    arr = group.create_array("chunk_index", shape=index.shape, chunks=index.shape,
                             dtype="int32", fill_value=-1,
                             dimension_names=("chunk", "array", "dim"), overwrite=True)
    arr.attrs.update({"arrays": " ".join(names), "bookkeeping": 1})
    arr[...] = index
    fixed["chunk_index"] = file_checksum(chunk_file(path, "chunk_index", (0, 0, 0)))
    return fixed


def recorded_layout(path: str) -> OutputLayout:
    """The layout an output recorded: arrays from their metadata, and the chunk each unit
    writes from the ``chunk_index`` record (``(chunk, array, dim)``, -1 where none)."""
    import zarr

    group = zarr.open_group(store=path, mode="r")
    rec = group["chunk_index"]
    names = record_columns(rec)
    index = np.asarray(rec[...])
    arrays = []
    for name, arr in group.arrays():
        if name in RECORD_NAMES:
            continue
        arrays.append(ArraySpec(name, tuple(arr.metadata.dimension_names or
                                            [f"dim_{i}" for i in range(arr.ndim)]),
                                arr.shape, arr.chunks, arr.dtype, 0,
                                values=None if name in names else np.zeros(0)))
    specs = {a.name: a for a in arrays}
    units = []
    for row in index:
        regions = {}
        for k, name in enumerate(names):
            if row[k, 0] < 0:
                continue
            a = specs[name]
            regions[name] = tuple(slice(int(i) * c, min(s, (int(i) + 1) * c))
                                  for i, c, s in zip(row[k], a.chunks, a.shape))
        units.append(regions)
    return OutputLayout(tuple(arrays), tuple(units))


def write_unit(path: str, u: int, columns: tuple, names: tuple, regions: tuple,
               indices: tuple, blocks: dict):
    """Task: write unit ``u``'s blocks, record their checksums (in the order of
    ``columns``), then mark it done.

    No fsync here: a done record that reaches the disk before its data is caught on resume
    by the checksums (the unit is redone), and everything is fsynced before ``complete``.
    """
    columns = list(columns)
    row = np.zeros(len(columns), dtype="<u8")
    for name, region, index in zip(names, regions, indices):
        arr = open_array(path, name)
        arr[region] = blocks[name]
        row[columns.index(name)] = file_checksum(chunk_file(path, name, index))
    open_array(path, "chunk_checksum")[u] = row.view("<i4").reshape(len(columns), 2)
    open_array(path, "chunk_done")[u] = 1
    return u


def record_columns(record) -> list[str]:
    """The array names a record's columns stand for (attr ``arrays``: names separated by
    spaces -- one string, as netCDF-3 attrs take it)."""
    return str(record.attrs["arrays"]).split()


def read_records(path: str, name: str, n: int,
                 width: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(values, readable) of a record array, record by record when a chunk is torn."""
    arr = open_array(path, name, "r")
    shape = (n,) if width is None else (n, width, 2)
    try:
        return np.asarray(arr[...]).reshape(shape), np.ones(n, bool)
    except Exception:  # noqa: BLE001 - a torn or damaged record: read them one by one
        out = np.zeros(shape, dtype=arr.dtype)
        ok = np.ones(n, bool)
        for u in range(n):
            try:
                out[u] = arr[u]
            except Exception:  # noqa: BLE001
                ok[u] = False
        return out, ok


def check_units(path: str, layout: OutputLayout) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(done, damaged): which units are really done, and ``(unit, what)`` for every unit
    whose record says done but whose chunks are missing or altered."""
    n = layout.nunits
    columns = record_columns(open_array(path, "chunk_checksum", "r"))
    flags, ok_flags = read_records(path, "chunk_done", n, None)
    words, ok_sums = read_records(path, "chunk_checksum", n, len(columns))
    sums = np.ascontiguousarray(words, dtype="<i4").view("<u8")[..., 0]
    done = (flags == 1) & ok_flags
    damaged = []
    for u in np.flatnonzero(done):
        problem = None if ok_sums[u] else "checksum record unreadable"
        for name in layout.units[u]:
            if problem:
                break
            want = int(sums[u, columns.index(name)])
            got = file_checksum(chunk_file(path, name, layout.chunk_index(u, name)))
            if got == 0:
                problem = f"chunk file of {name!r} missing"
            elif want == 0:
                problem = f"checksum of {name!r} not recorded"
            elif got != want:
                problem = f"chunk file of {name!r} altered (checksum differs)"
        if problem:
            done[u] = False
            damaged.append((int(u), problem))
    return done, damaged


def consolidate(path: str) -> None:
    """Consolidate the group metadata so ``xarray.open_zarr(path)`` opens it directly
    (zarr warns that v3 consolidation is not in the spec yet: expected, silenced)."""
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        zarr.consolidate_metadata(path)
