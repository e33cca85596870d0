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
    """The chunk grid of a dataset (or of a run of its frames), dense: ``addr[i, j, k]`` is
    the file address of chunk ``(first_band + i, j, k)`` (chunk units: frame band, row band,
    column band), -1 when never written; ``size`` its stored bytes; ``mask`` HDF5's mask of
    skipped filters (``None``: all zero).  ``chunk_frames`` is the chunk extent in frames."""

    addr: np.ndarray
    size: np.ndarray
    mask: np.ndarray | None
    chunk_frames: int
    first_band: int = 0

    def frames(self, lo: int, hi: int) -> "ChunkTable":
        """The bands holding frames ``lo`` .. ``hi - 1`` (what one task needs)."""
        a = lo // self.chunk_frames - self.first_band
        b = -(-hi // self.chunk_frames) - self.first_band
        return ChunkTable(self.addr[a:b].copy(), self.size[a:b].copy(),
                          None if self.mask is None else self.mask[a:b].copy(),
                          self.chunk_frames, self.first_band + a)

    def entry(self, f0: int, r0: int, c0: int, chunks) -> tuple[int, int, int] | None:
        """``(addr, size, mask)`` of the chunk starting at element ``(f0, r0, c0)``."""
        i, j, k = f0 // chunks[0] - self.first_band, r0 // chunks[1], c0 // chunks[2]
        addr = int(self.addr[i, j, k])
        if addr < 0:
            return None
        return addr, int(self.size[i, j, k]), 0 if self.mask is None else int(self.mask[i, j, k])


def chunk_table(dsid, shape: tuple[int, int, int], chunks: tuple[int, int, int],
                ndim: int) -> ChunkTable:
    """Copy the chunk index of an open h5py ``DatasetID`` (``ndim`` 2 or 3; ``shape`` and
    ``chunks`` as 3-D, a 2-D dataset being one frame)."""
    grid = tuple(-(-n // c) for n, c in zip(shape, chunks))
    rows: list[tuple] = []

    def visit(info) -> None:
        rows.append((*info.chunk_offset, info.byte_offset, info.size, info.filter_mask))

    try:
        dsid.chunk_iter(visit)  # one pass over the index (HDF5 >= 1.14)
    except (AttributeError, NotImplementedError, RuntimeError):
        rows.clear()
        for k in range(dsid.get_num_chunks()):
            visit(dsid.get_chunk_info(k))
    table = np.array(rows, dtype=np.int64).reshape(-1, ndim + 3)
    at = table[:, :ndim] // np.array(chunks[3 - ndim:])
    if ndim == 2:
        at = np.concatenate([np.zeros((len(at), 1), np.int64), at], axis=1)
    keep = (at < np.array(grid)).all(axis=1)  # chunks past a shrunk extent: ignored
    at, table = at[keep], table[keep]
    addr = np.full(grid, -1, np.int64)
    size = np.zeros(grid, np.uint32)
    mask = np.zeros(grid, np.uint32)
    where = tuple(at.T)
    addr[where], size[where], mask[where] = table[:, ndim], table[:, ndim + 1], \
        table[:, ndim + 2]
    return ChunkTable(addr, size, mask if mask.any() else None, chunks[0])


def missing_chunk_frames(table: ChunkTable, nframes: int,
                         file_size: int) -> list[tuple[int, int, str]]:
    """Frame ranges ``(lo, hi, reason)`` not fully covered by written chunks that lie inside
    the file (a chunk past the end of the file is from a truncated copy)."""
    cf = table.chunk_frames
    written = (table.addr >= 0).all(axis=(1, 2))
    inside = (table.addr + table.size <= file_size).all(axis=(1, 2))
    out: list[tuple[int, int, str]] = []
    for b in np.flatnonzero(~(written & inside)):
        why = ("chunks never written" if not written[b]
               else "chunks past the end of the file (truncated file)")
        lo, hi = int(b) * cf, min(nframes, (int(b) + 1) * cf)
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
    with open(src.filename, "rb", buffering=0) as fh:
        fd = fh.fileno()
        for f0 in range(lo - lo % cf, hi, cf):
            fa, fb = max(lo, f0), min(hi, f0 + cf)
            for r0 in range(rows.start - rows.start % cr, rows.stop, cr):
                ra, rb = max(rows.start, r0), min(rows.stop, r0 + cr)
                for c0 in range(cols.start - cols.start % cc, cols.stop, cc):
                    ca, cb = max(cols.start, c0), min(cols.stop, c0 + cc)
                    k = src.table.entry(f0, r0, c0, src.chunks)
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


def _chunk(src, k: tuple[int, int, int] | None, fd: int, fa: int, fb: int,
           rows: tuple[int, int] | None = None) -> np.ndarray:
    """Chunk ``k`` (``(addr, size, mask)``) read and decoded (only chunk ``rows`` of a
    one-frame chunk when given); errors name the frames it holds."""
    def fail(why: str) -> FrameReadError:
        return FrameReadError(f"dataset {src.dataset!r}, frames {fa}..{fb - 1}: {why}",
                              path=src.filename, frame=fa)

    if k is None:
        raise fail("chunk never written")
    addr, size, mask = k
    raw = os.pread(fd, size, addr)
    if len(raw) != size:
        raise fail("chunk past the end of the file (truncated file)")
    try:
        if rows is not None:
            return _codecs.decode_chunk_rows(raw, mask, src.pipeline,
                                             src.file_dtype, src.chunks, *rows)
        return _codecs.decode_chunk(raw, mask, src.pipeline, src.file_dtype,
                                    src.chunks)
    except _codecs.ChunkDecodeError as exc:
        raise fail(f"corrupt chunk: {exc}") from None
