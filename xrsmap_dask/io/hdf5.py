"""HDF5 datasets of frames ``(frame, y, x)``: checks at open, parallel ROI reads in tasks.

Importing this module registers hdf5plugin's filters (bitshuffle, LZ4, zstd, Blosc, ...) in the
process.  Every read task is a small object whose class lives downstream of this module, so
unpickling a task on a dask worker imports it, and the filters, before the first read.

:func:`inspect_dataset` opens a dataset once and describes it as a picklable
:class:`FrameDataset`: shape, on-disk dtype, storage layout, filter pipeline, and for chunked
datasets the table of allocated chunks (from the dataset's chunk index).  Frames that can never
be read correctly (chunks never written, chunks past the end of a truncated file, unallocated
contiguous storage, a missing or short external raw file) are listed in
``FrameDataset.missing`` so that callers decide at open time (raise, or NaN frames).

:func:`read_into` is what a task runs: a chunked dataset whose pipeline :mod:`._codecs`
decodes is read as raw chunk bytes (``os.pread`` at the chunk addresses of the index, only the
chunks holding the task's frames and ROI rows) and decoded outside HDF5's global lock, so
threads decode in parallel; contiguous and external storage is read with ``os.pread`` of the
ROI rows; everything else goes through an h5py hyperslab.  All paths give the values h5py
gives, converted to the native byte order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import hdf5plugin  # noqa: F401  (registers the filter plugins in every reading process)
import numpy as np

from ..errors import FrameReadError, InputError
from . import _codecs
from ._h5chunks import ChunkTable, chunk_table, missing_chunk_frames, read_chunked

#: dtype kinds accepted as frames (bool, unsigned, signed, float)
FRAME_KINDS = "buif"


@dataclass(frozen=True)
class FrameDataset:
    """A 2-D (one frame) or 3-D ``(frame, y, x)`` HDF5 dataset, as read tasks need it.

    ``missing`` lists ``(lo, hi, reason)``: frames ``lo`` .. ``hi - 1`` cannot be read as
    written.  ``streams`` holds ``(path, offset, nbytes)`` of raw contiguous or external
    storage (``nbytes`` bytes available there, possibly fewer than the dataset needs).
    """

    filename: str
    dataset: str
    nframes: int
    frame_shape: tuple[int, int]
    file_dtype: np.dtype
    ndim: int
    layout: str  # 'chunked' | 'contiguous' | 'external' | 'compact' | 'virtual'
    chunks: tuple[int, int, int] | None = None
    pipeline: tuple[_codecs.FilterSpec, ...] = ()
    direct: bool = False
    table: ChunkTable | None = None
    streams: tuple[tuple[str, int, int], ...] = ()
    missing: tuple[tuple[int, int, str], ...] = ()

    @property
    def dtype(self) -> np.dtype:
        """Frame dtype in native byte order (what reads return)."""
        return self.file_dtype.newbyteorder("=")

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.dataset}"

    def part(self, lo: int, hi: int) -> "FrameDataset":
        """The same dataset reduced to what reading frames ``lo`` .. ``hi - 1`` needs."""
        if self.table is None:
            return self
        return replace(self, table=self.table.frames(lo, hi))


def open_file(filename: str):
    """``h5py.File(filename, 'r')``; a missing or unreadable file is a FrameReadError."""
    import h5py

    if not os.path.exists(filename):
        raise FrameReadError("file not found", path=filename)
    if os.path.isdir(filename):
        raise FrameReadError("is a directory, not an HDF5 file", path=filename)
    try:
        return h5py.File(filename, "r")
    except OSError as exc:
        raise FrameReadError(f"not a readable HDF5 file: {exc}", path=filename) from None


def open_dataset(filename: str, dataset: str):
    """Open ``filename`` and return ``(h5py.File, dataset)``; clear errors for bad input
    (missing file or dataset, not 2-D/3-D, a dtype that is not frames)."""
    import h5py

    f = open_file(filename)
    try:
        ds = f.get(dataset)
    except (KeyError, OSError) as exc:  # e.g. a dangling external link
        f.close()
        raise FrameReadError(f"cannot open dataset {dataset!r}: {exc}", path=filename) from None
    if ds is None:
        f.close()
        raise InputError(f"HDF5 file has no dataset {dataset!r}", path=filename)
    if not isinstance(ds, h5py.Dataset) or ds.ndim not in (2, 3):
        f.close()
        raise InputError(f"{dataset!r} is not a 2-D or 3-D dataset", path=filename)
    try:
        check_frame_dtype(ds.dtype, filename, dataset)
    except InputError:
        f.close()
        raise
    return f, ds


def check_frame_dtype(dtype: np.dtype, filename: str, dataset: str) -> None:
    """Frames are numbers: compound, string, enum-less object and complex data are refused
    (complex would otherwise lose its imaginary part)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in FRAME_KINDS or dtype.fields is not None or dtype.shape:
        kind = "complex" if dtype.kind == "c" else "non-numeric"
        raise InputError(f"dataset {dataset!r} holds {kind} data ({dtype}); frames must be "
                         "integer or float numbers", path=filename)


def filter_pipeline(dcpl) -> tuple[_codecs.FilterSpec, ...]:
    """The filter pipeline of a dataset creation property list, in HDF5's write order."""
    specs = []
    for i in range(dcpl.get_nfilters()):
        fid, _flags, cd, name = dcpl.get_filter(i)
        specs.append(_codecs.FilterSpec(int(fid), tuple(int(v) for v in cd),
                                        name.decode("ascii", "replace")))
    return tuple(specs)


def check_filters(pipeline, filename: str, dataset: str) -> None:
    """A filter neither HDF5 (with hdf5plugin) nor :mod:`._codecs` can decode: InputError."""
    import h5py

    if _codecs.chain_decodable(pipeline):
        return
    for spec in pipeline:
        if not h5py.h5z.filter_avail(spec.id):
            raise InputError(f"dataset {dataset!r} needs HDF5 filter {spec.id} "
                             f"({spec.label}), which is not available (hdf5plugin "
                             f"{hdf5plugin.version} does not provide it)", path=filename)


def inspect_dataset(filename: str, dataset: str, direct: bool = True) -> FrameDataset:
    """Open ``filename:dataset`` once and describe it (see :class:`FrameDataset`).

    ``direct=False`` forces h5py hyperslab reads (the baseline the benchmarks compare with).
    Errors: :class:`FrameReadError` for a missing/unreadable file, :class:`InputError` for a
    missing dataset, wrong rank, a dtype that is not numbers or an unavailable filter.
    """
    import h5py

    filename = os.path.abspath(filename)
    f, ds = open_dataset(filename, dataset)
    with f:
        dataset = ds.name
        nframes = int(ds.shape[0]) if ds.ndim == 3 else 1
        base = dict(filename=filename, dataset=dataset, nframes=nframes,
                    frame_shape=tuple(int(v) for v in ds.shape[-2:]),
                    file_dtype=np.dtype(ds.dtype), ndim=ds.ndim)
        dcpl = ds.id.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5py.h5d.VIRTUAL:
            return FrameDataset(layout="virtual", **base)
        if dcpl.get_external_count() > 0:
            streams = _external_streams(ds, dcpl, filename)
            return _stream_dataset("external", streams, base)
        if layout == h5py.h5d.CONTIGUOUS:
            offset, nbytes = ds.id.get_offset(), _nbytes(ds)
            streams = [] if offset is None else [
                (filename, int(offset), _bytes_present(filename, int(offset), nbytes), nbytes)]
            return _stream_dataset("contiguous", streams, base)
        if layout != h5py.h5d.CHUNKED:
            return FrameDataset(layout="compact", **base)
        pipeline = filter_pipeline(dcpl)
        check_filters(pipeline, filename, dataset)
        chunks = tuple(int(c) for c in ds.chunks)
        chunks3 = chunks if ds.ndim == 3 else (1,) + chunks
        table = chunk_table(ds.id, (nframes,) + base["frame_shape"], chunks3, ds.ndim)
        missing = missing_chunk_frames(table, nframes, os.path.getsize(filename))
        can_pread = f.driver == "sec2"
        return FrameDataset(layout="chunked", chunks=chunks3, pipeline=pipeline,
                            direct=bool(direct and can_pread
                                        and _codecs.chain_decodable(pipeline)),
                            table=table, missing=tuple(missing), **base)


def _nbytes(ds) -> int:
    return int(np.prod(ds.shape, dtype=np.int64)) * np.dtype(ds.dtype).itemsize


#: HDF5's H5F_UNLIMITED: an external segment that extends to the end of its file
_UNLIMITED = 2**63


def _bytes_present(path: str, offset: int, declared: int) -> int:
    """Bytes of a storage segment present in its file (at most ``declared``)."""
    try:
        present = max(0, os.path.getsize(path) - offset)
    except OSError:
        return 0
    return present if declared >= _UNLIMITED else min(declared, present)


def _external_streams(ds, dcpl, filename: str) -> list[tuple[str, int, int, int]]:
    """External raw files ``(absolute path, offset, bytes present, bytes declared)``.

    HDF5 resolves a relative name against the dataset's external-file prefix, else the
    working directory; we resolve once here so tasks on other machines read the same file.
    """
    prefix = ds.id.get_access_plist().get_efile_prefix() or b""
    prefix = os.fsdecode(prefix).replace("${ORIGIN}", os.path.dirname(filename))
    out = []
    for i in range(dcpl.get_external_count()):
        name, offset, size = dcpl.get_external(i)
        name = os.fsdecode(name)
        path = os.path.abspath(os.path.join(prefix, name) if prefix else name)
        out.append((path, int(offset), _bytes_present(path, int(offset), int(size)),
                    int(size)))
    return out


def _stream_dataset(layout: str, streams, base: dict) -> FrameDataset:
    """A contiguous/external dataset: frames past the first missing byte are missing."""
    h, w = base["frame_shape"]
    frame_bytes = h * w * np.dtype(base["file_dtype"]).itemsize
    readable, short = 0, None
    for path, _offset, present, declared in streams:
        readable += present
        if present < declared < _UNLIMITED:
            short = path
            break
    n_good = min(base["nframes"], readable // frame_bytes)
    missing = ()
    if n_good < base["nframes"]:
        why = ("storage never written (no data allocated)" if not streams else
               f"raw data file {short or streams[-1][0]!r} is missing or too short")
        missing = ((int(n_good), base["nframes"], why),)
    return FrameDataset(layout=layout, streams=tuple(s[:3] for s in streams),
                        missing=missing, **base)


# -- reads (task side) ---------------------------------------------------------------------
def read_into(src: FrameDataset, lo: int, hi: int, rows: slice, cols: slice,
              out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (``(hi - lo, roi rows, roi cols)``, native dtype) with frames ``lo`` ..
    ``hi - 1`` of ``src`` restricted to ``[rows, cols]`` (normalized slices, stop exclusive).

    Raises :class:`FrameReadError` naming the file, dataset and frames for unreadable data.
    """
    if hi <= lo:
        return out
    bad = [m for m in src.missing if m[0] < hi and lo < m[1]]
    if bad:
        m = bad[0]
        raise FrameReadError(f"dataset {src.dataset!r}, frames {max(lo, m[0])}.."
                             f"{min(hi, m[1]) - 1}: {m[2]}", path=src.filename,
                             frame=max(lo, m[0]))
    if src.layout == "chunked" and src.direct:
        return read_chunked(src, lo, hi, rows, cols, out)
    if src.layout in ("contiguous", "external"):
        return _read_streams(src, lo, hi, rows, cols, out)
    return read_hyperslab_into(src.filename, src.dataset, lo, hi, rows, cols, out)


def read_hyperslab_into(filename: str, dataset: str, lo: int, hi: int, rows: slice,
                        cols: slice, out: np.ndarray) -> np.ndarray:
    """``ds[lo:hi, rows, cols]`` through h5py (HDF5 decodes, under its global lock)."""
    f, ds = open_dataset(filename, dataset)
    try:
        with f:
            if ds.ndim == 2:
                ds.read_direct(out, np.s_[rows, cols], np.s_[0])
            else:
                ds.read_direct(out, np.s_[lo:hi, rows, cols])
    except OSError as exc:
        raise FrameReadError(f"dataset {dataset!r}: cannot read frames {lo}..{hi - 1}: {exc}",
                             path=filename, frame=lo) from None
    return out


def read_hyperslab(filename: str, dataset: str, start: int, stop: int, rows: slice,
                   cols: slice) -> np.ndarray:
    """``ds[start:stop, rows, cols]`` read as one hyperslab into a native-order array."""
    f, ds = open_dataset(filename, dataset)
    with f:
        dtype = np.dtype(ds.dtype).newbyteorder("=")
    shape = (stop - start, len(range(*rows.indices(10**12))), len(range(*cols.indices(10**12))))
    out = np.empty(shape, dtype=dtype)
    return read_hyperslab_into(filename, dataset, start, stop, rows, cols, out)


def _read_streams(src: FrameDataset, lo: int, hi: int, rows: slice, cols: slice,
                  out: np.ndarray) -> np.ndarray:
    """Contiguous/external raw storage: one positioned read of the ROI rows per frame."""
    h, w = src.frame_shape
    item = src.file_dtype.itemsize
    nrows = rows.stop - rows.start
    for k, j in enumerate(range(lo, hi)):
        start = ((j * h + rows.start) * w) * item
        raw = _pread_streams(src, start, nrows * w * item, j)
        frame = np.frombuffer(raw, dtype=src.file_dtype).reshape(nrows, w)
        out[k] = frame[:, cols]
    return out


def _pread_streams(src: FrameDataset, start: int, nbytes: int, frame: int) -> bytes:
    """``nbytes`` bytes at logical offset ``start`` of the storage segments, in order."""
    parts, pos = [], 0
    for path, offset, size in src.streams:
        if nbytes <= 0:
            break
        if start < pos + size:
            skip = max(0, start - pos)
            take = min(size - skip, nbytes)
            with open(path, "rb", buffering=0) as fh:
                got = os.pread(fh.fileno(), take, offset + skip)
            if len(got) != take:
                raise FrameReadError(f"dataset {src.dataset!r}: raw data file {path!r} is "
                                     "shorter than when it was opened", path=src.filename,
                                     frame=frame)
            parts.append(got)
            start += take
            nbytes -= take
        pos += size
    if nbytes > 0:
        raise FrameReadError(f"dataset {src.dataset!r}: raw data ends before frame {frame}",
                             path=src.filename, frame=frame)
    return b"".join(parts)
