"""The kernels of rings and radial bins: numpy in, numpy out (no dask).

* :func:`group_sums`: sums of possibly overlapping pixel groups (rings) of a block, one
  ``np.take`` of every grouped pixel and one ``np.add.reduceat`` per frame;
* :class:`RunTable` and :func:`run_sums`: sums of disjoint groups (radial bins) from the runs
  of consecutive pixels a bin makes along each row: one ``np.add.reduceat`` over the frame as
  it lies in memory and one ``np.bincount`` over the runs (no per-pixel index read per
  frame: the fastest here, and a table a few hundred kB small);
* :func:`group_means`: sums divided by each group's normalisation (pixel count, or solid
  angle x polarization).

Integer frames are summed exactly in 64-bit integers; scratch buffers are kept per thread.
The tables come from :mod:`xrsmap_dask.radial`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


def _accumulator(dtype: np.dtype):
    kind = np.dtype(dtype).kind
    return np.uint64 if kind in "ub" else np.int64 if kind == "i" else np.float64


def _frames(block, layout) -> np.ndarray:
    """``block`` as ``(n, rows, cols)`` (one frame too), checked against a table's layout."""
    block = np.asarray(block)
    if block.ndim == 2:
        block = block[None]
    if block.shape[1:] != tuple(layout):
        raise ValueError(f"blocks of {block.shape[1:]} pixels for a table laid on {layout}")
    return block


def group_sums(block: np.ndarray, groups) -> np.ndarray:
    """Sum of each group's pixels in each frame: ``(n, ngroups)`` float64.

    ``block`` is ``(n, rows, cols)`` (or one ``(rows, cols)`` frame) laid out as
    ``groups.layout``.  Integer frames are summed exactly (64-bit integers), floats in
    float64; a NaN pixel makes its groups NaN for that frame (mask it); empty groups are 0.
    """
    block = _frames(block, groups.layout)
    n = len(block)
    out = np.zeros((n, groups.ngroups))
    if not len(groups.pixels) or not n:
        return out
    flat = block.reshape(n, -1)
    acc = np.dtype(_accumulator(block.dtype))
    buf = _scratch("gather", len(groups.pixels), block.dtype)
    wide = _scratch("gather-wide", len(groups.pixels), acc) if acc != block.dtype else buf
    for i in range(n):
        # mode='clip' writes straight into buf (the default 'raise' buffers a copy)
        np.take(flat[i], groups.pixels, out=buf, mode="clip")
        if wide is not buf:
            np.copyto(wide, buf, casting="unsafe")
        out[i, groups.seg_groups] = np.add.reduceat(wide, groups.seg_starts)
    return out


#: pixels a run-table chunk holds (whole rows): widened to 64 bits (2 MiB) it stays cached
CHUNK_PIXELS = 2**18


@dataclass(frozen=True, eq=False)
class RunTable:
    """Disjoint groups (radial bins) as runs of consecutive pixels of a block.

    Along a frame laid as ``layout`` (rows x cols, C order), the pixels of one bin come in
    short runs (a row crossing an annulus).  ``starts`` (intp, increasing, ``starts[0] ==
    0``) are the first flat pixel of every run, the runs tiling the whole block;
    ``run_group`` the group of each run (``ngroups`` for pixels in no group: masked, out of
    range).  A frame's group sums are then ``np.add.reduceat`` over the frame as it lies in
    memory (no index array streamed per frame, unlike a gather or ``np.bincount``) and a
    ``np.bincount`` over the runs.  The frame is taken in chunks of whole rows
    (``chunk_rows``; a run never crosses a chunk), each widened to 64 bits into a buffer
    that stays in the CPU cache before its runs are added; ``chunk_runs`` are the index
    of each chunk's first run (and the number of runs last) and ``local_starts`` the runs'
    starts within their chunk.  The run sums then go to their groups through ``order`` (the
    runs of every group, group after group), ``group_first`` (where each group's runs begin
    in it) and ``present`` (the groups with runs): a take and a reduceat, like the pixels of
    :func:`group_sums`.  A few hundred kB for a 1024 x 1024 frame, where a pixel list is 8
    MB: cheap to ship to workers.
    """

    layout: tuple[int, int]
    starts: np.ndarray
    run_group: np.ndarray
    ngroups: int
    chunk_rows: int
    chunk_runs: np.ndarray
    local_starts: np.ndarray
    order: np.ndarray
    group_first: np.ndarray
    present: np.ndarray

    @classmethod
    def from_groups(cls, groups) -> "RunTable":
        """The runs of disjoint ``groups`` (a pixel in several groups is an error)."""
        h, w = groups.layout
        index = np.full(h * w, groups.ngroups, np.intp)
        ends = np.r_[groups.seg_starts[1:], len(groups.pixels)].astype(np.intp)
        for start, end, g in zip(groups.seg_starts, ends, groups.seg_groups):
            index[groups.pixels[start:end]] = g
        if int(np.bincount(index, minlength=groups.ngroups + 1)[:groups.ngroups].sum()) != \
                len(groups.pixels):
            raise ValueError("a run table needs disjoint groups")
        rows = max(1, CHUNK_PIXELS // max(w, 1))
        chunk_starts = np.arange(0, h, rows, dtype=np.intp) * w
        starts = np.union1d(np.r_[0, np.flatnonzero(np.diff(index)) + 1], chunk_starts)
        starts = starts.astype(np.intp)
        chunk_runs = np.r_[np.searchsorted(starts, chunk_starts), len(starts)].astype(np.intp)
        chunk_of_run = np.repeat(np.arange(len(chunk_starts)), np.diff(chunk_runs))
        run_group = index[starts]
        kept = np.flatnonzero(run_group < groups.ngroups)
        order = kept[np.argsort(run_group[kept], kind="stable")].astype(np.intp)
        grouped = run_group[order]
        first = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if len(order) \
            else np.zeros(0, np.intp)
        return cls((h, w), starts, run_group, groups.ngroups, rows, chunk_runs,
                   (starts - chunk_starts[chunk_of_run]).astype(np.intp), order,
                   first.astype(np.intp), grouped[first].astype(np.intp))


#: per-thread scratch buffers of the kernels (a new 8 MB array per frame costs page faults)
_SCRATCH = threading.local()


def _scratch(name: str, n: int, dtype) -> np.ndarray:
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    key = (name, np.dtype(dtype).str)
    buf = bufs.get(key)
    if buf is None or len(buf) < n:
        buf = bufs[key] = np.empty(n, dtype)
    return buf[:n]


def run_sums(block: np.ndarray, runs: RunTable) -> np.ndarray:
    """Sum of each group's pixels in each frame, ``(n, ngroups)`` float64, from the runs of
    ``runs`` (the block ``(n, rows, cols)`` laid as ``runs.layout``).  Integer frames are
    summed exactly (64-bit integers, then float64 below 2**53); a NaN pixel makes its group
    NaN for that frame (a NaN in no group is ignored); as :func:`group_sums`."""
    block = _frames(block, runs.layout)
    n = len(block)
    out = np.zeros((n, runs.ngroups))
    if not n:
        return out
    flat = block.reshape(n, -1)
    acc = np.dtype(_accumulator(block.dtype))
    chunk = runs.chunk_rows * runs.layout[1]
    wide = _scratch("chunk", chunk, acc)
    sums = _scratch("runs", len(runs.starts), acc)
    for i in range(n):
        frame = flat[i]
        for c in range(len(runs.chunk_runs) - 1):
            lo, hi = runs.chunk_runs[c], runs.chunk_runs[c + 1]
            part = frame[c * chunk:(c + 1) * chunk]
            piece = wide[:len(part)]
            np.copyto(piece, part, casting="unsafe")   # widened in the cache, then added
            # 64-bit input, no out= and no dtype=: only then does numpy's reduceat release
            # the GIL (2.x holds it with either, and for 8-32-bit integers it upcasts), so
            # several threads reduce at once
            sums[lo:hi] = np.add.reduceat(piece, runs.local_starts[lo:hi])
        if len(runs.order):
            out[i, runs.present] = np.add.reduceat(np.take(sums, runs.order),
                                                   runs.group_first)
    return out


def group_means(sums: np.ndarray, groups) -> np.ndarray:
    """``sums / norm`` per group (the mean intensity; pyFAI's weighted mean with
    corrections); NaN for groups without pixels.  ``sums`` is ``(..., ngroups)``."""
    norm = groups.norm
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(sums, dtype=np.float64) / norm
    out[..., groups.count == 0] = np.nan
    return out
