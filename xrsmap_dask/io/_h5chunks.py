"""Chunked HDF5 datasets: the chunk index, chunks never written, direct chunk reads.

A chunked dataset's index (B-tree, fixed/extensible array) lists the chunks that were
written.  :func:`chunk_table` copies it once at open (file address, stored size and filter
mask of every chunk), :func:`missing_chunk_frames` finds the frames that HDF5 would silently
read as its fill value, and :func:`read_chunked` is the task body: ``os.pread`` of the raw
bytes of exactly the chunks holding the task's frames and ROI, decoded by :mod:`._codecs`
outside HDF5 (so dask threads decode in parallel), then cropped.

Offsets are in elements, ``(frame, row, col)``; a 2-D dataset is one frame (offset 0).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import FrameReadError
from . import _codecs


@dataclass(frozen=True)
class ChunkTable:
    """Allocated chunks: ``offsets`` ``(n, 3)`` element offsets (frame, row, col), file
    ``addr`` and stored ``size`` in bytes, HDF5 ``mask`` of skipped filters.  ``chunk_frames``
    is the chunk extent along the frame axis."""

    offsets: np.ndarray
    addr: np.ndarray
    size: np.ndarray
    mask: np.ndarray
    chunk_frames: int

    def __len__(self) -> int:
        return int(self.addr.size)

    def frames(self, lo: int, hi: int) -> "ChunkTable":
        """The chunks holding any of frames ``lo`` .. ``hi - 1`` (what one task needs)."""
        f0 = self.offsets[:, 0]
        keep = (f0 < hi) & (f0 + self.chunk_frames > lo)
        return ChunkTable(self.offsets[keep], self.addr[keep], self.size[keep],
                          self.mask[keep], self.chunk_frames)


def chunk_table(dsid, ndim: int) -> ChunkTable:
    """Copy the chunk index of an open h5py ``DatasetID`` (``ndim`` 2 or 3)."""
    rows: list[tuple] = []

    def visit(info) -> None:
        rows.append((*info.chunk_offset, info.byte_offset, info.size, info.filter_mask))

    try:
        dsid.chunk_iter(visit)  # one pass over the index (HDF5 >= 1.14)
    except (AttributeError, NotImplementedError, RuntimeError):
        rows.clear()
        for k in range(dsid.get_num_chunks()):
            visit(dsid.get_chunk_info(k))
    arr = np.array(rows, dtype=np.int64).reshape(-1, ndim + 3)
    offsets = arr[:, :ndim]
    if ndim == 2:
        offsets = np.concatenate([np.zeros((len(arr), 1), np.int64), offsets], axis=1)
    chunk_frames = int(dsid.get_create_plist().get_chunk()[0]) if ndim == 3 else 1
    return ChunkTable(np.ascontiguousarray(offsets), arr[:, ndim].copy(),
                      arr[:, ndim + 1].copy(), arr[:, ndim + 2].copy(), chunk_frames)


def missing_chunk_frames(table: ChunkTable, shape: tuple[int, int, int],
                         chunks: tuple[int, int, int],
                         file_size: int) -> list[tuple[int, int, str]]:
    """Frame ranges ``(lo, hi, reason)`` not fully covered by written chunks that lie inside
    the file (a chunk past the end of the file is from a truncated copy)."""
    nf, h, w = shape
    cf, cr, cc = chunks
    per_band = -(-h // cr) * -(-w // cc)
    nbands = -(-nf // cf)
    band = table.offsets[:, 0] // cf
    inside = table.addr + table.size <= file_size
    written = np.bincount(band, minlength=nbands)[:nbands]
    whole = np.bincount(band[inside], minlength=nbands)[:nbands]
    out: list[tuple[int, int, str]] = []
    for b in np.flatnonzero(whole < per_band):
        why = ("chunks never written" if written[b] < per_band
               else "chunks past the end of the file (truncated file)")
        lo, hi = int(b) * cf, min(nf, (int(b) + 1) * cf)
        if out and out[-1][1] == lo and out[-1][2] == why:
            out[-1] = (out[-1][0], hi, why)
        else:
            out.append((lo, hi, why))
    return out


def read_chunked(src, lo: int, hi: int, rows: slice, cols: slice,
                 out: np.ndarray) -> np.ndarray:
    """Frames ``lo`` .. ``hi - 1`` of ``src`` (a :class:`~.hdf5.FrameDataset` with a chunk
    table) cropped to ``[rows, cols]`` into ``out``, from raw chunks decoded here."""
    cf, cr, cc = src.chunks
    table = src.table
    where = {tuple(int(v) for v in off): k for k, off in enumerate(table.offsets)}
    with open(src.filename, "rb", buffering=0) as fh:
        fd = fh.fileno()
        for f0 in range(lo - lo % cf, hi, cf):
            fa, fb = max(lo, f0), min(hi, f0 + cf)
            for r0 in range(rows.start - rows.start % cr, rows.stop, cr):
                ra, rb = max(rows.start, r0), min(rows.stop, r0 + cr)
                for c0 in range(cols.start - cols.start % cc, cols.stop, cc):
                    ca, cb = max(cols.start, c0), min(cols.stop, c0 + cc)
                    k = where.get((f0, r0, c0))
                    if cf == 1:  # one frame: decode only the rows needed where possible
                        rows_ = _chunk(src, k, fd, fa, fb, (ra - r0, rb - r0))
                        out[fa - lo, ra - rows.start:rb - rows.start,
                            ca - cols.start:cb - cols.start] = rows_[:, ca - c0:cb - c0]
                        continue
                    chunk = _chunk(src, k, fd, fa, fb)
                    out[fa - lo:fb - lo, ra - rows.start:rb - rows.start,
                        ca - cols.start:cb - cols.start] = \
                        chunk[fa - f0:fb - f0, ra - r0:rb - r0, ca - c0:cb - c0]
    return out


def _chunk(src, k: int | None, fd: int, fa: int, fb: int,
           rows: tuple[int, int] | None = None) -> np.ndarray:
    """Chunk ``k`` of the table read and decoded (only chunk ``rows`` of a one-frame chunk
    when given); errors name the frames it holds."""
    def fail(why: str) -> FrameReadError:
        return FrameReadError(f"dataset {src.dataset!r}, frames {fa}..{fb - 1}: {why}",
                              path=src.filename, frame=fa)

    if k is None:
        raise fail("chunk never written")
    table = src.table
    size = int(table.size[k])
    raw = os.pread(fd, size, int(table.addr[k]))
    if len(raw) != size:
        raise fail("chunk past the end of the file (truncated file)")
    try:
        if rows is not None:
            return _codecs.decode_chunk_rows(raw, int(table.mask[k]), src.pipeline,
                                             src.file_dtype, src.chunks, *rows)
        return _codecs.decode_chunk(raw, int(table.mask[k]), src.pipeline, src.file_dtype,
                                    src.chunks)
    except _codecs.ChunkDecodeError as exc:
        raise fail(f"corrupt chunk: {exc}") from None
