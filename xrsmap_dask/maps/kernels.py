"""Map kernels: numpy in, numpy out (no dask).

* :func:`apply_corrections`, :func:`bin_frames`: per-pixel corrections and ``b x b`` sums;
* :func:`reduce_block`: the per-frame results of one block of frames
  ``(frames, box rows, box cols)``, a :class:`FrameResults`;
* :class:`UnitMaps`: the map region one write unit covers, filled frame block by frame
  block (:meth:`UnitMaps.place`) and handed out as ``{array name: block}``;
* ring geometry (:func:`ring_bbox`, :func:`ring_mask`) and :func:`mosaic`.

Conventions as in :mod:`xrsmap_dask.maps.settings`: frames ``(row, col)``, boxes numpy
slices (stop exclusive), rings inclusive of both radii, masks True = excluded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..invalid import InvalidRule, invalid_pixels
from ..roi import RoiSlices
from .settings import Ring


def ring_bbox(ring: Ring, frame_shape) -> RoiSlices | None:
    """Bounding box (numpy slices, clipped to the frame) of a ring's pixels; None if empty."""
    ny, nx = frame_shape
    y0 = max(0, int(np.ceil(ring.cen_y - ring.outer)))
    y1 = min(ny, int(np.floor(ring.cen_y + ring.outer)) + 1)
    x0 = max(0, int(np.ceil(ring.cen_x - ring.outer)))
    x1 = min(nx, int(np.floor(ring.cen_x + ring.outer)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def ring_mask(ring: Ring, box: RoiSlices) -> np.ndarray:
    """Boolean (box rows, box cols): pixels of ``box`` whose centre lies in the ring."""
    yy = np.arange(box[0].start, box[0].stop, dtype=np.float64)[:, None]
    xx = np.arange(box[1].start, box[1].stop, dtype=np.float64)[None, :]
    d = np.hypot(yy - ring.cen_y, xx - ring.cen_x)
    return (d >= ring.inner) & (d <= ring.outer)


def union_box(boxes: Sequence[RoiSlices]) -> RoiSlices:
    """Smallest box holding every box of ``boxes``."""
    return (slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes)),
            slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes)))


def mosaic(comp):
    """4-D composite ``(npt_y, npt_x, fy, fx)`` -> xrsmap's 2-D ``(npt_y*fy, npt_x*fx)``.

    Works on numpy and dask arrays; point ``(iy, ix)`` lands at rows ``iy*fy .. (iy+1)*fy``,
    columns ``ix*fx .. (ix+1)*fx``.
    """
    ny, nx, fy, fx = comp.shape
    return comp.transpose(0, 2, 1, 3).reshape(ny * fy, nx * fx)


@dataclass(frozen=True, eq=False)
class KernelParams:
    """Everything a reduce task needs besides its block (shipped once per graph)."""

    roi: RoiSlices | None          # ROI relative to the read box (None: no composite/roi sum)
    binning: int
    binned_shape: tuple[int, int]  # (fy, fx)
    do_composite: bool
    do_roi_sum: bool
    ring_rows: np.ndarray | None   # pixel (row, col) indices into the box, rings concatenated
    ring_cols: np.ndarray | None
    ring_starts: np.ndarray | None
    dark: np.ndarray | None        # corrections cropped to the read box
    flat: np.ndarray | None
    background: np.ndarray | None
    mask: np.ndarray | None        # bool, True = excluded
    dead_bins: np.ndarray | None   # (fy, fx) bool: binned pixels whose every pixel is masked
    dummy: float
    dtype: str
    detect_bad: bool               # blocks are float with NaN frames for unreadable ones
    crop_cols: slice | None = None  # blocks read wider than the box: its columns in them
    invalid: InvalidRule | None = None  # per-frame exclusion of reserved values

    @property
    def nrings(self) -> int:
        return 0 if self.ring_starts is None else len(self.ring_starts)

    @property
    def pixelwise(self) -> bool:
        return any(a is not None for a in (self.dark, self.flat, self.background, self.mask))


def apply_corrections(block: np.ndarray, dark=None, flat=None, background=None, mask=None,
                      dtype="float32") -> np.ndarray:
    """``((block - dark) / flat - background)`` in ``dtype``, masked pixels set to 0.

    ``block`` is ``(frames, rows, cols)``; the corrections ``(rows, cols)``; a new array.
    """
    x = np.array(block, dtype=dtype, copy=True)
    if dark is not None:
        x -= dark
    if flat is not None:
        x /= flat
    if background is not None:
        x -= background
    if mask is not None:
        x[:, mask] = 0
    return x


def _bin_accumulators(dtype: np.dtype, b: int) -> tuple[type, type]:
    """(row-sum, column-sum) accumulator types for ``b x b`` sums of ``dtype`` values."""
    if dtype.kind in "iub":
        info = np.iinfo(dtype) if dtype.kind != "b" else np.iinfo(np.uint8)
        biggest = max(abs(int(info.min)), int(info.max)) * b * b
        if biggest < 2**24:      # float32 adds these integers exactly (and fast)
            return np.float32, np.float32
        if biggest < 2**63:      # int64 holds every partial sum exactly
            return np.int64, np.float64
        return np.float64, np.float64   # 64-bit data: float64, never a wrapped integer
    # a float dtype in native byte order (ufunc dtype= refuses byte-swapped dtypes)
    return np.dtype(dtype).newbyteorder("=").type, np.float64


def bin_frames(x: np.ndarray, binning: int) -> np.ndarray:
    """Sum ``binning x binning`` blocks of each frame of ``x`` (frames, rows, cols).

    Sums are exact for integer frames while they fit 64 bits (float32 while every partial
    sum stays below 2**24, else int64 then float64); 64-bit integers whose sums could pass
    2**63 add in float64 (rounded, never wrapped).  Floats (either byte order) add the rows
    of a bin in their own precision, then the columns in float64.  The result is float32 or
    float64, native byte order.
    """
    n, h, w = x.shape
    b = binning
    fy, fx = h // b, w // b
    acc1, acc2 = _bin_accumulators(x.dtype, b)
    if b == 1:
        return x.astype(np.dtype(acc2).newbyteorder("="))
    # rows of a bin first (contiguous, vectorised), then the columns of a bin
    part = x.reshape(n, fy, b, w).sum(axis=2, dtype=acc1)
    return part.reshape(n, fy, fx, b).sum(axis=-1, dtype=acc2)


@dataclass(eq=False)
class FrameResults:
    """Per-frame results of one block of ``n`` frames (``None``: not asked for).

    ``composite`` ``(n, fy, fx)``, ``roi_sum`` ``(n,)`` float64, ``annulus`` ``(n, nrings)``
    float64, ``bad`` ``(n,)`` bool: the frame could not be read (it was all NaN);
    ``invalid`` ``(n,)`` int64: pixels of the box excluded by the invalid-pixel rule in each
    frame, ``invalid_union`` ``(box rows, box cols)`` bool: excluded in any frame (``None``
    when none was).
    """

    composite: np.ndarray | None
    roi_sum: np.ndarray | None
    annulus: np.ndarray | None
    bad: np.ndarray
    invalid: np.ndarray | None = None
    invalid_union: np.ndarray | None = None


def _bad_frames(block: np.ndarray, p: KernelParams) -> np.ndarray:
    bad = np.zeros(len(block), dtype=bool)
    if p.detect_bad and block.dtype.kind == "f" and len(block):
        cand = np.flatnonzero(np.isnan(block[:, 0, 0]))
        if len(cand):
            bad[cand[np.isnan(block[cand]).all(axis=(1, 2))]] = True
    return bad


#: bytes of a block the invalid-pixel rule checks at a time (its passes stay in the CPU cache)
INVALID_PIECE_BYTES = 2 * 2**20


@dataclass(eq=False)
class Excluded:
    """What the invalid-pixel rule excluded in a block of ``n`` frames: ``counts`` ``(n,)``
    pixels per frame, ``union`` ``(rows, cols)`` excluded in any frame, ``dead``
    ``(n, fy, fx)`` binned pixels wholly excluded in a frame (with the mask; None: none)."""

    counts: np.ndarray
    union: np.ndarray
    dead: np.ndarray | None = None


def _exclude_invalid(block: np.ndarray, x: np.ndarray, p: KernelParams, owned: bool):
    """``(x, Excluded or None)``: ``x`` with the pixels holding excluded values set to 0.

    Values are compared on the raw ``block`` (exact, before any float cast), a few frames
    (:data:`INVALID_PIECE_BYTES`) at a time so that the comparison, zeroing, counting and
    bin checks of a piece run while it is in the CPU cache.  ``x`` is copied first when it
    is the caller's ``block`` and not ``owned``.
    """
    n = len(block)
    step = max(1, INVALID_PIECE_BYTES // max(1, block[0].nbytes)) if n else 1
    found, seen = None, False
    for i in range(0, n, step):
        # a piece after one with excluded pixels (module gaps) is compared at once
        hit = invalid_pixels(block[i:i + step], p.invalid, precheck=not seen)
        seen = hit is not None
        if hit is None:
            continue
        if found is None:
            found = Excluded(np.zeros(n, np.int64), np.zeros(block.shape[1:], bool))
            x = block.copy() if x is block and not owned else x
        k = slice(i, i + len(hit))
        np.copyto(x[k], 0, where=hit)
        found.counts[k] = [np.count_nonzero(f) for f in hit]    # popcount per frame
        union = hit.any(axis=0)
        found.union |= union
        dead = _dead_per_frame(hit, union, p) if p.do_composite else None
        if dead is not None:
            if found.dead is None:
                found.dead = np.zeros((n,) + tuple(p.binned_shape), bool)
            found.dead[k] = dead
    return x, found


def _bins_all(excl: np.ndarray, b: int, binned_shape) -> np.ndarray:
    """(..., fy, fx) bool: ``b x b`` bins of ``excl`` (..., rows, cols) whose every pixel is
    True; rows of a bin first, then its columns (contiguous: 8x faster than both at once)."""
    if b == 1:
        return excl
    lead, (fy, fx) = excl.shape[:-2], binned_shape
    return excl.reshape(lead + (fy, b, -1)).all(axis=-2) \
        .reshape(lead + (fy, fx, b)).all(axis=-1)


def _dead_per_frame(hit: np.ndarray, union: np.ndarray, p: KernelParams):
    """(n, fy, fx) bool: binned pixels whose every pixel is excluded in that frame (by the
    invalid rule or the mask); None when none can be (checked on the block's union first:
    module gaps narrower than a bin never kill one)."""
    mask = None if p.mask is None else p.mask[p.roi]
    cand = union[p.roi] if mask is None else union[p.roi] | mask
    if not _bins_all(cand, p.binning, p.binned_shape).any():
        return None
    excl = hit[:, p.roi[0], p.roi[1]]
    return _bins_all(excl if mask is None else excl | mask, p.binning, p.binned_shape)


def reduce_block(block: np.ndarray, p: KernelParams, norm: np.ndarray | None,
                 owned: bool = False) -> FrameResults:
    """Per-frame results of one read block ``(n, box rows, box cols)``; ``norm`` ``(n,)``.

    ``owned``: the caller's own buffer, which the kernel may overwrite (zeroing excluded
    pixels in place instead of in a copy).
    """
    bad = _bad_frames(block, p)
    x = apply_corrections(block, p.dark, p.flat, p.background, p.mask, p.dtype) \
        if p.pixelwise else block
    x, found = _exclude_invalid(block, x, p, owned)
    comp = roi = ann = None
    if p.do_composite or p.do_roi_sum:
        r = x[:, p.roi[0], p.roi[1]]
        if not p.do_composite:
            roi = r.sum(axis=(1, 2), dtype=np.float64)
        else:
            binned = bin_frames(r, p.binning)
            if p.do_roi_sum:
                roi = binned.sum(axis=(1, 2), dtype=np.float64)
            if norm is not None:
                binned = binned / norm[:, None, None]
            comp = binned.astype(p.dtype, copy=False)
            if p.dead_bins is not None:
                comp[:, p.dead_bins] = p.dummy
            if found is not None and found.dead is not None:
                comp[found.dead] = p.dummy
            comp[bad] = p.dummy
    if p.ring_rows is not None:
        vals = x[:, p.ring_rows, p.ring_cols]
        ann = np.add.reduceat(vals, p.ring_starts, axis=1, dtype=np.float64)
    if norm is not None:
        if roi is not None:
            roi /= norm
        if ann is not None:
            ann /= norm[:, None]
    if roi is not None:
        roi[bad] = np.nan
    if ann is not None:
        ann[bad] = np.nan
    res = FrameResults(comp, roi, ann, bad)
    if found is not None:
        res.invalid, res.invalid_union = found.counts, found.union
    return res


@dataclass(eq=False)
class UnitMaps:
    """The maps of one write unit: ``npoints`` scan points (the unit's region, C order).

    Points no frame reaches stay NaN (``frame_unreadable`` 0 there).  With an active
    invalid-pixel rule, ``invalid`` counts the excluded pixels of each point's frame and
    ``union`` marks the box pixels excluded in any frame of the unit.
    """

    composite: np.ndarray | None      # (npoints, fy, fx)
    roi_sum: np.ndarray | None        # (npoints,)
    annulus: np.ndarray | None        # (npoints, nrings)
    bad: np.ndarray                   # (npoints,) uint8
    invalid: np.ndarray | None = None  # (npoints,) uint32
    union: np.ndarray | None = None    # (box rows, box cols) bool, once a pixel was excluded

    @classmethod
    def empty(cls, npoints: int, p: KernelParams) -> "UnitMaps":
        def nan(shape, dtype):
            return np.full(shape, np.nan, dtype=dtype)

        return cls(nan((npoints,) + tuple(p.binned_shape), p.dtype) if p.do_composite else None,
                   nan(npoints, np.float64) if p.do_roi_sum else None,
                   nan((npoints, p.nrings), np.float64) if p.nrings else None,
                   np.zeros(npoints, np.uint8),
                   np.zeros(npoints, np.uint32)
                   if p.invalid is not None and p.invalid.active else None)

    def place(self, res: FrameResults, points: np.ndarray) -> None:
        """Put the results of a block's frames at their points (indices into the region)."""
        for mine, theirs in ((self.composite, res.composite), (self.roi_sum, res.roi_sum),
                             (self.annulus, res.annulus)):
            if mine is not None:
                mine[points] = theirs
        self.bad[points] = res.bad
        if self.invalid is not None and res.invalid is not None:
            self.invalid[points] = res.invalid
            if self.union is None:
                self.union = res.invalid_union.copy()
            else:
                self.union |= res.invalid_union

    def blocks(self, region_shape: tuple[int, int]) -> dict:
        """``{array name: block}`` over the region ``(rows, cols)`` of the map."""
        out = {}
        if self.composite is not None:
            out["composite"] = self.composite.reshape(region_shape + self.composite.shape[1:])
        if self.roi_sum is not None:
            out["roi_sum"] = self.roi_sum.reshape(region_shape)
        if self.annulus is not None:
            out["annulus_sum"] = np.ascontiguousarray(
                np.moveaxis(self.annulus.reshape(region_shape + (-1,)), -1, 0))
        out["frame_unreadable"] = self.bad.reshape(region_shape)
        if self.invalid is not None:
            out["invalid_pixels"] = self.invalid.reshape(region_shape)
            out["invalid_union"] = union_record(self.union)
        return out


#: excluded positions a write unit lists explicitly (beyond: their count and digest only)
UNION_POSITIONS = 64


def union_record(union: np.ndarray | None) -> np.ndarray:
    """``(1, 2 + UNION_POSITIONS)`` int64 record of the box pixels a unit excluded in any
    frame: ``[count, digest, positions...]``.  ``digest``: 63 bits of a BLAKE2b digest of
    where they are (units excluding the same pixels share it); ``positions``: their flat
    indices in the box (row-major), when there are at most :data:`UNION_POSITIONS`, padded
    with -1.  All zeros but the -1 padding when the unit excluded nothing."""
    import hashlib

    rec = np.full((1, 2 + UNION_POSITIONS), -1, np.int64)
    rec[0, :2] = 0
    if union is None or not union.any():
        return rec
    flat = np.flatnonzero(union)
    digest = hashlib.blake2b(np.packbits(union).tobytes(), digest_size=8).digest()
    rec[0, 0] = len(flat)
    rec[0, 1] = int.from_bytes(digest, "little") >> 1
    if len(flat) <= UNION_POSITIONS:
        rec[0, 2:2 + len(flat)] = flat
    return rec
