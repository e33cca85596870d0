"""The ``zarr`` format (ours): a zarr v3 group holding ``images`` ``(frame, y, x)``.

Layout::

    <store>/[<path_in_store>/]
        images            array (nframes, rows, cols), chunked by frames (whole frames);
                          attrs ``complete``: false while our writer runs, true at its end
        metadata/         group: numpy-array metadata as arrays, other values in its attrs

Metadata round-trip exactly for numpy arrays (dtype and shape kept), strings, numbers, bools,
lists and dicts of those (JSON); numpy scalars come back as Python scalars.  A dask task opens
the store and reads the ROI of its frames (one slice), carrying only the store path.

Missing data is never read as zeros.  zarr returns the fill value for a chunk that was never
written, so chunk presence is checked: at open (one listing of the array's directory) and
again by each block read.  A frame with a missing chunk raises :class:`FrameReadError` naming
the store and the frames (``on_error='raise'``) or reads as NaN and is listed in
``bad_frames`` (``'fill'``).  A store our writer did not finish (``complete`` false, e.g. a
``convert`` killed half way) is an :class:`InputError`.  Stores written by other tools with
zarr's default ``write_empty_chunks=False`` leave all-fill-value chunks unwritten: open them
with ``missing_chunks='fill-value'``.  Sharded arrays: a missing shard is detected, a chunk
missing inside a present shard is not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import FrameReadError, InputError, short_repr
from ..io.files import MAX_DIM, MAX_FRAME_BYTES
from ..roi import RoiSlices, roi_shape
from .base import (BlockSource, ImageSeries, check_on_error, fill_dtype, plain_metadata_value,
                   read_frames)
from ._utils import file_token, frames_per_write
from .registry import ImageSeriesFormat, register
from .zarrchunks import all_stored, format_ranges, frame_ranges, missing_frame_ranges

META_GROUP = "metadata"
#: what a chunk never written means: ``'error'`` (missing data: a bad frame) or
#: ``'fill-value'`` (zarr's reading: the array's fill value, for stores written with
#: ``write_empty_chunks=False``)
MISSING_CHUNKS = ("error", "fill-value")
#: most frames with missing chunks a ``'fill'`` series lists (more: the store is incomplete)
MAX_MISSING_FRAMES = 100_000
#: zarr array config of our writers: every chunk is written, so a missing one is missing data
WRITE_CONFIG = {"write_empty_chunks": True}


def parse_missing_chunks(value) -> str:
    """Check the ``missing_chunks`` option (one of :data:`MISSING_CHUNKS`)."""
    if value not in MISSING_CHUNKS:
        raise InputError(f"must be one of {MISSING_CHUNKS}, got {short_repr(value)}",
                         argument="missing_chunks")
    return value


def _join(*parts) -> str:
    return "/".join(p.strip("/") for p in parts if p not in (None, "", "/"))


def _open_array(store: str, array_path: str):
    import zarr

    try:
        arr = zarr.open_array(store, path=array_path, mode="r")
    except FileNotFoundError:
        raise InputError(f"zarr store has no array {short_repr(array_path)}",
                         path=store) from None
    except Exception as exc:  # zarr raises several types for a missing/invalid node
        raise InputError(f"cannot open zarr array {short_repr(array_path)}: "
                         f"{short_repr(str(exc), 200)}", path=store) from None
    if arr.ndim not in (2, 3):
        raise InputError(f"zarr array {short_repr(array_path)} has {arr.ndim} dimensions, "
                         "expected 3", path=store)
    if not isinstance(arr.metadata.attributes, dict):
        raise InputError(f"zarr array {short_repr(array_path)} has attributes that are not a "
                         "mapping", path=store)
    if np.dtype(arr.dtype).kind not in "biuf":
        raise InputError(f"zarr array {short_repr(array_path)} holds {arr.dtype}, not numeric "
                         "pixels", path=store)
    return arr


def _missing_error(store: str, ranges) -> FrameReadError:
    return FrameReadError(f"frames {format_ranges(ranges)}: chunk(s) never written (missing "
                          "from the store; zarr would read the fill value.  A store whose "
                          "writer skipped all-fill-value chunks opens with "
                          "missing_chunks='fill-value')", path=store, frame=ranges[0][0])


def _check_frame_size(arr, store: str, array_path: str) -> None:
    """Declared frames within :data:`MAX_DIM` per axis and :data:`MAX_FRAME_BYTES`."""
    rows, cols = (int(v) for v in arr.shape[-2:])
    nbytes = rows * cols * np.dtype(arr.dtype).itemsize
    if not (0 < rows <= MAX_DIM and 0 < cols <= MAX_DIM) or nbytes > MAX_FRAME_BYTES:
        raise InputError(f"zarr array {short_repr(array_path)} declares frames of {rows} x "
                         f"{cols} {arr.dtype} (at most {MAX_DIM} pixels per axis and "
                         f"{MAX_FRAME_BYTES} bytes are read)", path=store)


def _read_meta(store: str, group_path: str, missing_chunks: str) -> dict:
    import zarr

    try:
        g = zarr.open_group(store, path=group_path, mode="r")
    except Exception:  # no metadata group
        return {}
    try:
        meta = dict(g.attrs.asdict())
        for name, arr in g.arrays():
            if missing_chunks == "error" and not all_stored(
                    arr, os.path.join(store, group_path, name)):
                raise InputError(f"metadata array {short_repr(name)} has chunks never written "
                                 "(zarr would read the fill value)", path=store)
            meta[name] = np.asarray(arr[...])
    except InputError:
        raise
    except Exception as exc:  # a corrupt metadata node or chunk
        raise InputError(f"cannot read the metadata group {short_repr(group_path)}: "
                         f"{short_repr(str(exc), 200)}", path=store) from None
    return meta


class ZarrImageSeries(ImageSeries):
    """Frames of a zarr array ``(frame, y, x)``.

    Parameters
    ----------
    store : str or PathLike
        The zarr store (a directory).
    path_in_store : str, optional
        Group holding ``dataname`` (default the store's root).
    dataname : str
    on_error : {'raise', 'fill'}
        Frames with a chunk never written: ``'raise'`` a :class:`FrameReadError` naming the
        store and frames (at open, or at read for chunks lost since); ``'fill'`` NaN frames,
        listed in :attr:`bad_frames` as ``(index, store, reason)``.
    missing_chunks : {'error', 'fill-value'}
        ``'fill-value'`` reads a chunk never written as the array's fill value (zarr's
        behaviour; for stores written with ``write_empty_chunks=False``).
    """

    def __init__(self, store, path_in_store: str | None = None, dataname: str = "images",
                 on_error: str = "raise", missing_chunks: str = "error"):
        self.on_error = check_on_error(on_error)
        self.missing_chunks = parse_missing_chunks(missing_chunks)
        self.store = os.path.abspath(os.fspath(store))
        if not os.path.isdir(self.store):
            raise InputError("zarr store not found (no such directory)" if not
                             os.path.exists(self.store) else "a zarr store is a directory",
                             path=self.store)
        self.array_path = _join(path_in_store, dataname)
        arr = _open_array(self.store, self.array_path)
        if arr.attrs.get("complete") is False:
            raise InputError(f"zarr array {short_repr(self.array_path)} is incomplete: its "
                             "writer did not finish (attribute complete = false); write it "
                             "again", path=self.store)
        _check_frame_size(arr, self.store, self.array_path)
        self._nframes = int(arr.shape[0]) if arr.ndim == 3 else 1
        self._ndim = arr.ndim
        self._shape = tuple(int(v) for v in arr.shape[-2:])
        self._dtype = np.dtype(arr.dtype)
        self.bad_frames = self._missing_frames(arr)
        self._metadata = _read_meta(self.store, _join(path_in_store, META_GROUP),
                                    self.missing_chunks)
        self._token = file_token(os.path.join(self.store, self.array_path, "zarr.json"),
                                 self.array_path, self._nframes)

    def _missing_frames(self, arr) -> list[tuple[int, str, str]]:
        """Frames with a chunk never written, as ``bad_frames`` entries (``'fill'``); under
        ``'raise'`` they are an error."""
        if self.missing_chunks != "error":
            return []
        ranges = missing_frame_ranges(arr, os.path.join(self.store, self.array_path))
        if not ranges:
            return []
        if self.on_error == "raise":
            raise _missing_error(self.store, ranges)
        total = sum(b - a for a, b in ranges)
        if total > MAX_MISSING_FRAMES:
            raise InputError(f"{total} frames ({format_ranges(ranges)}) have chunks never "
                             f"written: more than the {MAX_MISSING_FRAMES} a 'fill' series "
                             "lists; the store is incomplete", path=self.store)
        reason = "chunk never written (missing from the store)"
        return [(j, self.store, reason) for a, b in ranges for j in range(a, b)]

    def __len__(self) -> int:
        return self._nframes

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_source(self, start: int, stop: int) -> "ZarrBlock":
        return ZarrBlock(self.store, self.array_path, start, stop, self._dtype, self._ndim,
                         self.on_error, self.missing_chunks)


@dataclass
class ZarrBlock(BlockSource):
    """Store path, array path and frame range: one sliced read (pickles small)."""

    store: str
    array_path: str
    start: int
    stop: int
    dtype: np.dtype
    ndim: int = 3
    on_error: str = "raise"
    missing_chunks: str = "error"

    @property
    def nframes(self) -> int:
        return self.stop - self.start

    def _read(self, start: int, stop: int, rows: slice, cols: slice) -> np.ndarray:
        try:
            arr = _open_array(self.store, self.array_path)
            if self.missing_chunks == "error":
                missing = missing_frame_ranges(arr, os.path.join(self.store, self.array_path),
                                               start, stop)
                if missing:
                    raise _missing_error(self.store, missing)
            if self.ndim == 2:
                return np.asarray(arr[rows, cols])[None][start:stop]
            return np.asarray(arr[start:stop, rows, cols])
        except FrameReadError:
            raise
        except InputError as exc:
            raise FrameReadError(exc.reason, path=self.store, frame=start) from None
        except Exception as exc:  # a corrupt chunk
            raise FrameReadError(f"cannot read frames {start}..{stop - 1}: "
                                 f"{short_repr(str(exc), 200)}", path=self.store,
                                 frame=start) from None

    def read(self, roi: RoiSlices) -> np.ndarray:
        rows, cols = roi
        if self.on_error != "fill":
            return self._read(self.start, self.stop, rows, cols)

        def one(j: int, slot: np.ndarray) -> np.ndarray:
            return self._read(j, j + 1, rows, cols)[0]

        return read_frames(one, range(self.start, self.stop), roi_shape(roi), self.dtype,
                           "fill")


def open_zarr(filename, path_in_store: str | None = None, dataname: str = "images",
              on_error: str = "raise", path: str | None = None,
              missing_chunks: str = "error") -> ZarrImageSeries:
    """Open ``filename`` (a zarr store) as an image series; ``path=`` is an alias of
    ``path_in_store`` (hexrd's hdf5 spelling)."""
    path_in_store = path if path is not None else path_in_store
    return ZarrImageSeries(filename, path_in_store=path_in_store, dataname=dataname,
                           on_error=on_error, missing_chunks=missing_chunks)


def write_zarr(ims, filename, path_in_store: str | None = None, dataname: str = "images",
               frames_per_chunk: int | None = None, meta: dict | None = None,
               path: str | None = None) -> None:
    """Write ``ims`` to a zarr v3 store, block by block (never the whole stack at once).

    Parameters
    ----------
    filename : str or PathLike
        The store directory (created; an existing ``dataname`` array is replaced).
    path_in_store : str, optional
        Group within the store (``path=`` is accepted as an alias).
    frames_per_chunk : int, optional
        Frames per zarr chunk (default: about 8 MiB per chunk).
    meta : dict, optional
        Metadata instead of ``ims.metadata``.

    The array carries ``complete = false`` until every frame and the metadata are written
    (then synced to disk): a store whose writer was killed half way opens as an error.  A
    series with bad frames (``on_error='fill'``) is stored as float with its NaN frames; a
    frame that turns out unreadable while an integer series is written is an error.
    """
    import zarr

    path_in_store = path if path is not None else path_in_store
    store = os.fspath(filename)
    nframes = len(ims)
    h, w = ims.shape
    dtype = np.dtype(ims.dtype)
    if getattr(ims, "bad_frames", None):
        dtype = fill_dtype(dtype)
    frame_bytes = h * w * dtype.itemsize
    if frames_per_chunk is None:
        frames_per_chunk = max(1, min(nframes, (8 * 2**20) // max(1, frame_bytes)))
    if isinstance(frames_per_chunk, bool) or int(frames_per_chunk) < 1:
        raise InputError(f"must be a positive int, got {frames_per_chunk!r}",
                         argument="frames_per_chunk")
    fpc = int(frames_per_chunk)
    root = zarr.open_group(store, mode="a", zarr_format=3)
    group = root.require_group(path_in_store.strip("/")) if path_in_store not in (
        None, "", "/") else root
    # complete = false until the end: a writer killed half way leaves an incomplete store
    arr = group.create_array(dataname, shape=(nframes, h, w), dtype=dtype,
                             chunks=(fpc, h, w), overwrite=True, config=WRITE_CONFIG,
                             attributes={"complete": False})
    # write whole chunks per step so no chunk is rewritten
    step = max(fpc, (frames_per_write(frame_bytes, nframes) // fpc) * fpc)
    for start in range(0, nframes, step):
        stop = min(nframes, start + step)
        arr[start:stop] = _storable(ims.read_block(start, stop), dtype, start, store)
    _write_metadata(group, dict(ims.metadata if meta is None else meta))
    group_dir = os.path.join(store, _join(path_in_store))
    _fsync_tree(os.path.join(group_dir, dataname), os.path.join(group_dir, META_GROUP))
    arr.attrs["complete"] = True  # last: the data are on disk


def _storable(block: np.ndarray, dtype: np.dtype, start: int, store: str) -> np.ndarray:
    """``block`` (frames from ``start``), refused if NaN frames would go into an int array."""
    if block.dtype.kind == "f" and dtype.kind != "f":
        nan = np.flatnonzero(np.isnan(block).any(axis=(1, 2)))
        if nan.size:
            raise FrameReadError(f"frames {frame_ranges((start + nan).tolist())} of the "
                                 f"series are unreadable (NaN): cannot store them as {dtype}",
                                 path=store, frame=start + int(nan[0]))
    return block


def _write_metadata(group, meta: dict) -> None:
    """The ``metadata`` group: numeric arrays as arrays (every chunk written), the rest as
    its attrs."""
    if META_GROUP in group:
        del group[META_GROUP]
    mg = group.create_group(META_GROUP)
    attrs = {}
    for k, v in meta.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "biuf":
                raise InputError(f"metadata {k!r}: only numeric/bool arrays can be stored "
                                 f"in zarr, got dtype {v.dtype}", argument="meta")
            if v.ndim == 0:  # data= would store a 0-d array as shape (1,)
                mg.create_array(str(k), shape=(), dtype=v.dtype, chunks=(),
                                config=WRITE_CONFIG)[()] = v
            else:
                mg.create_array(str(k), data=np.ascontiguousarray(v), config=WRITE_CONFIG)
        else:
            attrs[str(k)] = plain_metadata_value(k, v, "stored in zarr attrs")
    mg.attrs.update(attrs)


def _fsync_tree(*tops: str) -> None:
    """fsync every file and directory under ``tops`` (what this writer wrote)."""
    for top in tops:
        for folder, _, files in os.walk(top):
            for name in files + ["."]:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)


class ZarrFormat(ImageSeriesFormat):
    name = "zarr"
    description = "zarr v3 store with GROUP/images (frame, y, x) and a metadata group (ours)"
    suffixes = (".zarr",)
    open_keywords = frozenset({"path_in_store", "path", "dataname", "missing_chunks"})
    write_keywords = frozenset({"path_in_store", "path", "dataname", "frames_per_chunk",
                                "meta"})
    accepts_on_error = True
    inner_path = True

    def open(self, filename, **kwargs) -> ZarrImageSeries:
        return open_zarr(filename, **kwargs)

    def write(self, ims, filename, **kwargs) -> None:
        write_zarr(ims, filename, **kwargs)

    def inner_path_keywords(self, filename: str, inner: str) -> dict:
        """``store.zarr:/g`` -> group ``/g`` when it holds ``images``, else array ``g``."""
        import zarr

        try:
            node = zarr.open(os.fspath(filename), mode="r", path=inner.strip("/"))
        except Exception:  # noqa: BLE001 - opening reports the missing node
            node = None
        if isinstance(node, zarr.Group):
            return {"path": inner}
        group, _, name = inner.strip("/").rpartition("/")
        return {"path": group or None, "dataname": name or "images"}


register(ZarrFormat())
