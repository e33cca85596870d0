"""Map kernels: numpy in, numpy out (no dask).

* :func:`apply_corrections`, :func:`bin_frames`: per-pixel corrections and ``b x b`` sums;
* :func:`reduce_block`: the per-frame results of one block of frames
  ``(frames, box rows, box cols)``, a :class:`FrameResults`, with the invalid-pixel rule
  applied per frame (:mod:`.exclusion`) and rings in a unit and radial bins reduced by
  :func:`.radial.geometry_sums`;
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

from ..invalid import InvalidRule
from ..roi import RoiSlices
from .exclusion import Reduced, exclude_invalid, union_record
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
    radial: object = None          # RadialKernel (rings in a unit, radial bins), or None

    @property
    def nrings(self) -> int:
        if self.ring_starts is None:
            return 0 if self.radial is None else self.radial.nrings
        return len(self.ring_starts)

    @property
    def nbins(self) -> int:
        return 0 if self.radial is None else self.radial.nbins

    @property
    def needs_corrected(self) -> bool:
        """Whether blocks are corrected pixel by pixel before reducing.  Radial tables
        exclude masked pixels themselves: with only a mask and only radial maps the raw
        block is reduced (laid as read, no copy)."""
        if not self.pixelwise:
            return False
        return self.do_composite or self.do_roi_sum or self.ring_rows is not None or \
            any(a is not None for a in (self.dark, self.flat, self.background))

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
    when none was); ``radial`` ``(n, nbins)`` float64 bin means (over the pixels not
    excluded in the frame), ``radial_excluded`` ``(n, nbins)`` int64: pixels of each bin the
    rule excluded in each frame (``None`` when none was).
    """

    composite: np.ndarray | None
    roi_sum: np.ndarray | None
    annulus: np.ndarray | None
    bad: np.ndarray
    radial: np.ndarray | None = None
    invalid: np.ndarray | None = None
    invalid_union: np.ndarray | None = None
    radial_excluded: np.ndarray | None = None


def _bad_frames(block: np.ndarray, p: KernelParams) -> np.ndarray:
    bad = np.zeros(len(block), dtype=bool)
    if p.detect_bad and block.dtype.kind == "f" and len(block):
        cand = np.flatnonzero(np.isnan(block[:, 0, 0]))
        if len(cand):
            bad[cand[np.isnan(block[cand]).all(axis=(1, 2))]] = True
    return bad


def reduce_block(block: np.ndarray, p: KernelParams, norm: np.ndarray | None,
                 owned: bool = False) -> FrameResults:
    """Per-frame results of one read block ``(n, box rows, box cols)`` (or, with
    ``p.crop_cols``, whole rows holding the box); ``norm`` ``(n,)``.

    ``owned``: the caller's own buffer, which the kernel may overwrite (zeroing excluded
    pixels in place instead of in a copy).
    """
    read = block
    if p.crop_cols is not None:
        block = block[:, :, p.crop_cols]
    bad = _bad_frames(block, p)
    x = apply_corrections(block, p.dark, p.flat, p.background, p.mask, p.dtype) \
        if p.needs_corrected else block
    arrays, found = exclude_invalid(block, Reduced(x, read), p, owned)
    x = arrays.x
    comp, roi = _roi_maps(x, p, norm, bad, found) if p.do_composite or p.do_roi_sum \
        else (None, None)
    ann = rad = None
    if p.ring_rows is not None:
        vals = x[:, p.ring_rows, p.ring_cols]
        ann = np.add.reduceat(vals, p.ring_starts, axis=1, dtype=np.float64)
    if p.radial is not None:
        from .radial import geometry_sums

        unit_rings, rad = geometry_sums(x if p.needs_corrected else arrays.read, p.radial,
                                        found)
        ann = unit_rings if ann is None else ann
    if norm is not None:
        if roi is not None:
            roi /= norm
        for a in (ann, rad):
            if a is not None:
                a /= norm[:, None]
    for a in (roi, ann, rad):
        if a is not None:
            a[bad] = np.nan
    res = FrameResults(comp, roi, ann, bad, rad)
    if found is not None:
        res.invalid, res.invalid_union = found.counts, found.union
        res.radial_excluded = found.bin_counts
    return res


def _roi_maps(x: np.ndarray, p: KernelParams, norm, bad, found) -> tuple:
    """``(composite, roi_sum)`` of the (corrected) box ``x`` (``None`` for what is not
    asked): binned ROI divided by ``norm``, ``dummy`` at dead bins and unreadable frames;
    the ROI sum before ``norm``."""
    comp = roi = None
    r = x[:, p.roi[0], p.roi[1]]
    if not p.do_composite:
        return None, r.sum(axis=(1, 2), dtype=np.float64)
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
    return comp, roi


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
    radial: np.ndarray | None = None  # (npoints, nbins)
    invalid: np.ndarray | None = None  # (npoints,) uint32
    union: np.ndarray | None = None    # (box rows, box cols) bool, once a pixel was excluded
    radial_excluded: np.ndarray | None = None  # (npoints, nbins) uint32

    @classmethod
    def empty(cls, npoints: int, p: KernelParams) -> "UnitMaps":
        def nan(shape, dtype):
            return np.full(shape, np.nan, dtype=dtype)

        unit = cls(nan((npoints,) + tuple(p.binned_shape), p.dtype) if p.do_composite else None,
                   nan(npoints, np.float64) if p.do_roi_sum else None,
                   nan((npoints, p.nrings), np.float64) if p.nrings else None,
                   np.zeros(npoints, np.uint8),
                   nan((npoints, p.nbins), np.float64) if p.nbins else None)
        if p.invalid is not None and p.invalid.active:
            unit.invalid = np.zeros(npoints, np.uint32)
            if p.nbins:
                unit.radial_excluded = np.zeros((npoints, p.nbins), np.uint32)
        return unit

    def place(self, res: FrameResults, points: np.ndarray) -> None:
        """Put the results of a block's frames at their points (indices into the region)."""
        for mine, theirs in ((self.composite, res.composite), (self.roi_sum, res.roi_sum),
                             (self.annulus, res.annulus), (self.radial, res.radial)):
            if mine is not None:
                mine[points] = theirs
        self.bad[points] = res.bad
        if self.invalid is not None and res.invalid is not None:
            self.invalid[points] = res.invalid
            if self.radial_excluded is not None and res.radial_excluded is not None:
                self.radial_excluded[points] = res.radial_excluded
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
        for name, per_point in (("annulus_sum", self.annulus), ("radial", self.radial),
                                ("radial_excluded", self.radial_excluded)):
            if per_point is not None:
                out[name] = np.ascontiguousarray(
                    np.moveaxis(per_point.reshape(region_shape + (-1,)), -1, 0))
        out["frame_unreadable"] = self.bad.reshape(region_shape)
        if self.invalid is not None:
            out["invalid_pixels"] = self.invalid.reshape(region_shape)
            out["invalid_union"] = union_record(self.union)
        return out

