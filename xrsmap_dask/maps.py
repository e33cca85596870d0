"""Composite, ROI-sum and annulus maps as dask graphs, all from one read pass.

Conventions (see DESIGN.md):

* frames are ``(row, col) = (y, x)``; ROIs numpy style ``(slice(y0, y1), slice(x0, x1))``,
  rows from the top, stop **exclusive**;
* maps are ``(npt_y, npt_x)``; the composite is 4-D ``(npt_y, npt_x, fy, fx)`` with
  ``fy, fx = roi rows / binning, roi cols / binning`` (:func:`mosaic` gives xrsmap's 2-D
  ``(npt_y * fy, npt_x * fx)`` picture); the annulus stack is ``(nrings, npt_y, npt_x)``;
* binning **sums** ``b x b`` blocks; a ROI whose size is not a multiple of ``b`` is an error;
* a ring holds the pixels whose centre is at distance ``d`` from ``(cen_y, cen_x)`` (pixel
  units, pixel ``(i, j)`` has its centre at ``(i, j)``) with
  ``radius - width/2 <= d <= radius + width/2`` (both bounds inclusive);
* corrections, in xrsmap's order: ``dark`` subtracted, ``flat`` divided, ``background``
  subtracted, ``mask`` applied (nonzero = excluded: adds nothing to any sum; a composite pixel
  whose every source pixel is excluded shows ``dummy``), per-frame ``norm`` divided;
* sums are float64; the composite is ``Corrections.dtype`` (float32 by default).  A frame
  that could not be read (``on_error='fill'``) is NaN in the sums and ``dummy`` in the
  composite; map points no frame reaches (incomplete scan) are NaN everywhere.

Structure: one read of the union bounding box of the ROI and the rings (``box``), in runs
of ``frames_per_chunk`` frames (whole scan lines); one task per run reads its frames through
``ims.block_source`` -- the reader ``ims.to_dask(box)`` tasks use -- a few frames (~2 MiB)
at a time and reduces each piece at once with :func:`reduce_block` (a numpy kernel), while
it is still in the CPU cache: this fused read+reduce is what makes the pipeline faster than
a plain loop (``fuse_reads=False`` reduces the blocks of ``ims.to_dask(box)`` instead, same
numbers, one more pass over memory).  One cheap *place* task per map chunk then scatters
the per-frame results to their scan positions.  ``dask.compute(m.composite, m.roi_sum,
m.annulus_sum)`` therefore reads every input byte once.

>>> ims = imageseries.from_files(files)                                    # doctest: +SKIP
>>> spec = MapSpec(roi=(slice(256, 768), slice(256, 768)), binning=16,
...                rings=rings(cen_y=510, cen_x=530, radii=[180, 310], width=6))
>>> m = build_maps(ims, spec, ScanGeometry(41, 41), Corrections(mask=mask))
>>> comp, total, ann = dask.compute(m.composite, m.roi_sum, m.annulus_sum)
>>> store.write_maps(m, "maps.zarr", ims)        # or straight to zarr, resumably
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .errors import InputError
from .lazy import auto_frames_per_chunk, frame_chunks
from .roi import RoiSlices, check_binning, normalize_roi, roi_shape  # noqa: F401
from .scan import ScanGeometry

#: bytes a fused task reads at once before reducing them (stays in the CPU cache)
FUSED_READ_BYTES = 2 * 2**20
#: file series: read whole rows into the block (one pread, no copy), crop the box as a view
WIDEN_FILE_READS = True

# ---------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class Ring:
    """One annulus: centre ``(cen_y, cen_x)``, ``radius`` and full ``width`` in pixels."""

    cen_y: float
    cen_x: float
    radius: float
    width: float

    def __post_init__(self):
        for name in ("cen_y", "cen_x", "radius", "width"):
            try:
                value = float(getattr(self, name))
            except (TypeError, ValueError):
                raise InputError(f"must be a number, got {getattr(self, name)!r}",
                                 argument=name) from None
            if not np.isfinite(value):
                raise InputError(f"must be finite, got {value}", argument=name)
            object.__setattr__(self, name, value)
        if self.radius < 0:
            raise InputError(f"must be >= 0, got {self.radius}", argument="radius")
        if self.width < 0:
            raise InputError(f"must be >= 0, got {self.width}", argument="width")

    @property
    def inner(self) -> float:
        return self.radius - self.width / 2

    @property
    def outer(self) -> float:
        return self.radius + self.width / 2


def rings(cen_y: float, cen_x: float, radii, width) -> tuple[Ring, ...]:
    """Rings sharing a centre: ``radii`` a number or a list, ``width`` one or one per ring."""
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    widths = np.broadcast_to(np.asarray(width, dtype=float), radii.shape) \
        if np.ndim(width) == 0 or len(np.atleast_1d(width)) == len(radii) else None
    if widths is None:
        raise InputError(f"give one width or one per radius ({len(radii)})", argument="width")
    return tuple(Ring(cen_y, cen_x, float(r), float(w)) for r, w in zip(radii, widths))


def radial_bins(cen_y: float, cen_x: float, edges) -> tuple[Ring, ...]:
    """Rings from radial bin ``edges`` (increasing): ring k spans ``edges[k] .. edges[k+1]``
    (both bounds inclusive, so a pixel exactly on an edge counts in both neighbours)."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise InputError("bin edges must be an increasing list of at least 2 radii",
                         argument="edges")
    return tuple(Ring(cen_y, cen_x, (a + b) / 2, b - a) for a, b in zip(edges[:-1], edges[1:]))


def _as_image(value, name: str, dtype) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise InputError(f"must be a 2-D image, got shape {arr.shape}", argument=name)
    return np.ascontiguousarray(arr, dtype=dtype)


@dataclass(frozen=True, eq=False)
class Corrections:
    """Per-pixel and per-frame corrections, applied in xrsmap's order.

    Parameters
    ----------
    dark : (rows, cols) array, optional
        Subtracted first.
    flat : (rows, cols) array, optional
        Divided next.
    background : (rows, cols) array, optional
        Subtracted next (an image already dark/flat corrected, e.g. the mean of background
        frames).
    mask : (rows, cols) array, optional
        Nonzero/True = pixel excluded: it adds nothing to any sum and shows ``dummy`` in
        the composite (a binned pixel shows ``dummy`` when all its pixels are excluded).
    norm : (nframes,) array, optional
        Every result of frame ``i`` is divided by ``norm[i]`` (e.g. incident flux).
    dummy : float
        Composite value of excluded pixels and of unreadable frames.
    dtype : str
        Working and composite dtype (``'float32'`` as xrsmap).
    """

    dark: np.ndarray | None = None
    flat: np.ndarray | None = None
    background: np.ndarray | None = None
    mask: np.ndarray | None = None
    norm: np.ndarray | None = None
    dummy: float = 0.0
    dtype: str = "float32"

    def __post_init__(self):
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            raise InputError(f"not a dtype: {self.dtype!r}", argument="dtype") from None
        if dtype.kind != "f":
            raise InputError(f"must be a float dtype, got {dtype}", argument="dtype")
        object.__setattr__(self, "dtype", dtype.name)
        for name in ("dark", "flat", "background"):
            object.__setattr__(self, name, _as_image(getattr(self, name), name, dtype))
        mask = _as_image(self.mask, "mask", None)
        if mask is not None:
            mask = mask != 0
        object.__setattr__(self, "mask", mask)
        shapes = {n: getattr(self, n).shape for n in ("dark", "flat", "background", "mask")
                  if getattr(self, n) is not None}
        if len(set(shapes.values())) > 1:
            raise InputError("shapes differ: " + ", ".join(f"{n} {s[0]} x {s[1]}"
                                                           for n, s in shapes.items()),
                             argument="/".join(shapes))
        keep = None if mask is None else ~mask
        for name in ("dark", "flat", "background"):
            arr = getattr(self, name)
            if arr is None or (keep is not None and arr.shape != keep.shape):
                continue
            vals = arr if keep is None else arr[keep]
            bad = ~np.isfinite(vals) if name != "flat" else ~np.isfinite(vals) | (vals == 0)
            if bad.any():
                what = "zero or non-finite" if name == "flat" else "non-finite"
                raise InputError(f"{int(bad.sum())} {what} values at pixels the mask keeps "
                                 f"(they would make the maps NaN/inf); mask them",
                                 argument=name)
        if self.norm is not None:
            norm = np.asarray(self.norm, dtype=np.float64)
            if norm.ndim != 1:
                raise InputError(f"must be 1-D (one value per frame), got shape {norm.shape}",
                                 argument="norm")
            if not np.all(np.isfinite(norm)) or np.any(norm == 0):
                raise InputError("must be finite and nonzero", argument="norm")
            object.__setattr__(self, "norm", norm)
        try:
            object.__setattr__(self, "dummy", float(self.dummy))
        except (TypeError, ValueError):
            raise InputError(f"must be a number, got {self.dummy!r}", argument="dummy") from None

    @property
    def pixelwise(self) -> bool:
        """Whether any per-pixel correction is set."""
        return any(getattr(self, n) is not None for n in ("dark", "flat", "background", "mask"))

    def check(self, frame_shape: Sequence[int], nframes: int) -> None:
        """Raise :class:`InputError` naming the correction whose shape does not fit."""
        frame_shape = tuple(int(v) for v in frame_shape)
        for name in ("dark", "flat", "background", "mask"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != frame_shape:
                raise InputError(f"shape {arr.shape[0]} x {arr.shape[1]} differs from the "
                                 f"frames' {frame_shape[0]} x {frame_shape[1]}", argument=name)
        if self.norm is not None and len(self.norm) != nframes:
            raise InputError(f"{len(self.norm)} values for {nframes} frames", argument="norm")

    def to_attrs(self) -> dict:
        """JSON-able summary: which corrections are set, with a digest of each array."""
        import hashlib

        out: dict = {"dummy": self.dummy, "dtype": self.dtype}
        for name in ("dark", "flat", "background", "mask", "norm"):
            arr = getattr(self, name)
            out[name] = None if arr is None else {
                "shape": list(arr.shape),
                "sha1": hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()}
        return out


def background_image(frames, method: str = "mean", pct: float | None = None, *,
                     dark: np.ndarray | None = None, flat: np.ndarray | None = None,
                     frame_shape: Sequence[int] | None = None, scheduler=None) -> np.ndarray:
    """The background image xrsmap subtracts: the ``method`` image of the background
    ``frames`` (any image series or list of paths; ``'mean'`` as xrsmap, ``'median'``, or
    ``'percentile'`` with ``pct`` in [0, 100], exact, see :func:`xrsmap_dask.stats.background`),
    itself dark-subtracted and flat-divided.  float64, (rows, cols).

    Shapes (of the background frames, ``dark``, ``flat`` and the scan's ``frame_shape`` when
    given) are checked before anything is read.
    """
    from .imageseries import as_imageseries
    from .stats import BACKGROUND_METHODS, background as stats_background

    if method not in BACKGROUND_METHODS:
        raise InputError(f"must be one of {BACKGROUND_METHODS}, got {method!r}",
                         argument="background method")
    frames = as_imageseries(frames)
    shape = tuple(frames.shape)
    for name, ref in (("background", frame_shape), ("dark", None if dark is None else dark.shape),
                      ("flat", None if flat is None else flat.shape)):
        if ref is not None and tuple(ref) != shape:
            what = "the frames'" if name == "background" else f"{name}"
            raise InputError(f"background frames are {shape[0]} x {shape[1]}, {what} "
                             f"{ref[0]} x {ref[1]}", argument=name)
    kwargs = {"scheduler": scheduler} if isinstance(scheduler, str) else {}
    bg = np.asarray(stats_background(frames, method, pct, **kwargs), dtype=np.float64)
    if dark is not None:
        bg = bg - dark
    if flat is not None:
        bg = bg / flat
    return bg


@dataclass(frozen=True, eq=False)
class MapSpec:
    """What to compute: ROI + binning (composite and/or ROI sum) and rings.

    ``roi`` is numpy style ``(slice(y0, y1), slice(x0, x1))`` (stop exclusive, rows from the
    top; ``None`` = whole frame); ``binning`` a positive int dividing both ROI sides.
    """

    roi: tuple | None = None
    binning: int = 1
    rings: tuple = ()
    composite: bool = True
    roi_sum: bool = True

    def __post_init__(self):
        b = self.binning if self.binning is not None else 1
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise InputError(f"must be a positive int, got {self.binning!r}", argument="binning")
        object.__setattr__(self, "binning", int(b))
        rs = tuple(self.rings)
        for r in rs:
            if not isinstance(r, Ring):
                raise InputError(f"expected Ring objects, got {r!r}", argument="rings")
        object.__setattr__(self, "rings", rs)
        if not (self.composite or self.roi_sum or rs):
            raise InputError("nothing to compute: no composite, no roi_sum and no rings",
                             argument="spec")


# ---------------------------------------------------------------------------------------
# geometry helpers (numpy)


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
    return (slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes)),
            slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes)))


def mosaic(comp):
    """4-D composite ``(npt_y, npt_x, fy, fx)`` -> xrsmap's 2-D ``(npt_y*fy, npt_x*fx)``.

    Works on numpy and dask arrays; point ``(iy, ix)`` lands at rows ``iy*fy .. (iy+1)*fy``,
    columns ``ix*fx .. (ix+1)*fx``.
    """
    ny, nx, fy, fx = comp.shape
    return comp.transpose(0, 2, 1, 3).reshape(ny * fy, nx * fx)


# ---------------------------------------------------------------------------------------
# kernels (numpy in, numpy out)


@dataclass(frozen=True, eq=False)
class KernelParams:
    """Everything a reduce task needs besides its block (shipped once per graph)."""

    roi: RoiSlices | None          # ROI relative to the read box (None: no composite/roi sum)
    binning: int
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


def bin_frames(x: np.ndarray, binning: int) -> np.ndarray:
    """Sum ``binning x binning`` blocks of each frame of ``x`` (frames, rows, cols).

    Sums are exact for integer frames (float32 while every partial sum stays below 2**24,
    else integer/float64 accumulators); floats add rows of a bin in their dtype, then
    columns in float64.  The result is float32 or float64.
    """
    n, h, w = x.shape
    b = binning
    fy, fx = h // b, w // b
    if x.dtype.kind in "iub":
        info = np.iinfo(x.dtype) if x.dtype.kind != "b" else np.iinfo(np.uint8)
        biggest = max(abs(int(info.min)), int(info.max)) * b * b
        if biggest < 2**24:      # float32 adds these integers exactly (and fast)
            acc1 = acc2 = np.float32
        else:
            acc1, acc2 = np.int64, np.float64
    else:
        acc1, acc2 = x.dtype, np.float64
    if b == 1:
        return x.astype(acc2)
    # rows of a bin first (contiguous, vectorised), then the columns of a bin
    part = x.reshape(n, fy, b, w).sum(axis=2, dtype=acc1)
    return part.reshape(n, fy, fx, b).sum(axis=-1, dtype=acc2)


def reduce_block(block: np.ndarray, p: KernelParams, norm: np.ndarray | None):
    """Per-frame results of one read block ``(n, box rows, box cols)``.

    Returns ``(composite (n, fy, fx) p.dtype | None, roi_sum (n,) float64 | None,
    annulus (n, nrings) float64 | None, bad (int array of local frame indices))``.
    """
    n = len(block)
    bad = np.zeros(0, dtype=np.int64)
    if p.detect_bad and block.dtype.kind == "f" and n:
        cand = np.flatnonzero(np.isnan(block[:, 0, 0]))
        if len(cand):
            bad = cand[np.isnan(block[cand]).all(axis=(1, 2))]
    if p.dark is not None or p.flat is not None or p.background is not None or \
            p.mask is not None:
        x = apply_corrections(block, p.dark, p.flat, p.background, p.mask, p.dtype)
    else:
        x = block
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
            if len(bad):
                comp[bad] = p.dummy
    if p.ring_rows is not None:
        vals = x[:, p.ring_rows, p.ring_cols]
        ann = np.add.reduceat(vals, p.ring_starts, axis=1, dtype=np.float64)
    if norm is not None:
        if roi is not None:
            roi /= norm
        if ann is not None:
            ann /= norm[:, None]
    if len(bad):
        if roi is not None:
            roi[bad] = np.nan
        if ann is not None:
            ann[bad] = np.nan
    return comp, roi, ann, bad


def _reduce_task(block, params, norm, start):
    comp, roi, ann, bad = reduce_block(block, params, norm)
    return comp, roi, ann, bad + start


def _read_reduce_task(sources, box, params, norm, start):
    """Fused task: read a run of frames a few at a time (``sources``, consecutive) and
    reduce each piece while it is still in the CPU cache."""
    parts = []
    k = 0
    # one buffer for the whole task when the reader can fill it: it stays cache-warm
    buf = None
    if sources and all(getattr(src, "accepts_out", False) for src in sources):
        rows, cols = box
        buf = np.empty((max(src.nframes for src in sources), rows.stop - rows.start,
                        cols.stop - cols.start), dtype=sources[0].dtype)
    for src in sources:
        n = src.nframes
        block = src.read(box) if buf is None else src.read(box, out=buf[:n])
        if params.crop_cols is not None:
            block = block[:, :, params.crop_cols]
        parts.append(reduce_block(block, params, None if norm is None else norm[k:k + n]))
        parts[-1] = parts[-1][:3] + (parts[-1][3] + k,)
        k += n
    if len(parts) == 1:
        comp, roi, ann, bad = parts[0]
    else:
        comp, roi, ann = (None if parts[0][j] is None else
                          np.concatenate([q[j] for q in parts]) for j in range(3))
        bad = np.concatenate([q[3] for q in parts])
    return comp, roi, ann, bad + start


def _place_task(which: int, frames: np.ndarray, starts: Sequence[int], fill, dtype,
                tail: tuple, transpose_rings: bool, *parts):
    """Scatter part ``which`` of the reduce results to the map points of one chunk.

    ``frames`` (chunk rows, chunk cols) holds the frame at each point (-1: none);
    ``parts[k]`` is the reduce result of the read block starting at frame ``starts[k]``.
    """
    flat = frames.ravel()
    out = np.full((len(flat),) + tuple(tail), fill, dtype=dtype)
    for start, part in zip(starts, parts):
        values = part[which]
        sel = (flat >= start) & (flat < start + len(values))
        out[sel] = values[flat[sel] - start]
    out = out.reshape(frames.shape + tuple(tail))
    if transpose_rings:
        out = np.moveaxis(out, -1, 0)
    return out


def _bad_task(*parts):
    return np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------------------
# planning and graph building


@dataclass(frozen=True, eq=False)
class MapPlan:
    """Layout of one map job (derived from the series, spec, scan and corrections)."""

    nframes: int
    frame_shape: tuple[int, int]
    box: RoiSlices                 # read box (frame coordinates)
    roi: RoiSlices | None          # ROI in frame coordinates
    binning: int
    binned_shape: tuple[int, int]  # (fy, fx), (0, 0) without ROI outputs
    rings: tuple
    scan: ScanGeometry
    unfilled: int
    frames_per_chunk: int
    map_axis: int                  # 0: map chunks are blocks of rows; 1: of columns
    map_chunk: int                 # rows (or columns) per map chunk

    @property
    def map_chunks(self) -> tuple[int, ...]:
        n = self.scan.shape[self.map_axis]
        full, rest = divmod(n, self.map_chunk)
        return (self.map_chunk,) * full + ((rest,) if rest else ())

    @property
    def nchunks(self) -> int:
        return len(self.map_chunks)

    def chunk_slices(self, c: int) -> tuple[slice, slice]:
        """Map region ``(rows, cols)`` of map chunk ``c``."""
        lo = c * self.map_chunk
        hi = min(lo + self.map_chunk, self.scan.shape[self.map_axis])
        if self.map_axis == 0:
            return slice(lo, hi), slice(0, self.scan.npt_x)
        return slice(0, self.scan.npt_y), slice(lo, hi)


def plan_maps(ims, spec: MapSpec, scan: ScanGeometry, corrections: Corrections | None = None,
              frames_per_chunk: int | str = "auto") -> MapPlan:
    """Validate everything that can be checked before reading and lay the job out."""
    nframes = len(ims)
    frame_shape = tuple(int(v) for v in ims.shape)
    unfilled = scan.check_nframes(nframes)
    if corrections is not None:
        corrections.check(frame_shape, nframes)
    boxes = []
    roi = None
    fy = fx = 0
    if spec.composite or spec.roi_sum:
        roi = normalize_roi(spec.roi, frame_shape)
        fy, fx = check_binning(roi_shape(roi), spec.binning)
        boxes.append(roi)
    for k, ring in enumerate(spec.rings):
        box = ring_bbox(ring, frame_shape)
        if box is None or not ring_mask(ring, box).any():
            raise InputError(
                f"ring {k} (centre y={ring.cen_y:g}, x={ring.cen_x:g}, radius {ring.radius:g}, "
                f"width {ring.width:g}) has no pixel inside the {frame_shape[0]} x "
                f"{frame_shape[1]} frame", argument="rings")
        boxes.append(box)
    box = union_box(boxes)
    h, w = roi_shape(box)
    itemsize = np.dtype(ims.block_dtype()).itemsize
    if frames_per_chunk == "auto":
        fpc = auto_frames_per_chunk(nframes, h * w * itemsize)
        # small scans: still at least ~2 tasks per core, so every core gets work
        fpc = min(fpc, max(1, -(-nframes // (2 * (os.cpu_count() or 1)))))
    else:
        try:
            fpc = int(frames_per_chunk)
        except (TypeError, ValueError):
            fpc = 0
        if isinstance(frames_per_chunk, bool) or fpc < 1:
            raise InputError(f"must be a positive int or 'auto', got {frames_per_chunk!r}",
                             argument="frames_per_chunk")
    fpc = min(fpc, nframes)
    map_axis = 1 if scan.kind == "column" else 0
    line = scan.npt_y if map_axis == 1 else scan.npt_x
    if fpc >= line:
        # whole scan lines per read block: every map chunk then depends on one read block
        k = fpc // line
        fpc = min(k * line, nframes)
    else:
        k = 1
    return MapPlan(nframes, frame_shape, box, roi, spec.binning, (fy, fx), spec.rings, scan,
                   unfilled, fpc, map_axis, k)


def _kernel_params(plan: MapPlan, spec: MapSpec, corr: Corrections,
                   detect_bad: bool) -> KernelParams:
    box = plan.box
    oy, ox = box[0].start, box[1].start
    h, w = roi_shape(box)

    def crop(a):
        return None if a is None else np.ascontiguousarray(a[box])

    mask = crop(corr.mask)
    if mask is not None and not mask.any():
        mask = None
    roi = dead = None
    if plan.roi is not None:
        roi = (slice(plan.roi[0].start - oy, plan.roi[0].stop - oy),
               slice(plan.roi[1].start - ox, plan.roi[1].stop - ox))
        if mask is not None:
            b = plan.binning
            fy, fx = plan.binned_shape
            m = mask[roi].reshape(fy, b, fx, b)
            dead = m.all(axis=(1, 3))
            dead = dead if dead.any() else None
    ring_rows = ring_cols = ring_starts = None
    if plan.rings:
        pieces = []
        for ring in plan.rings:
            m = ring_mask(ring, box)
            if mask is not None:
                m &= ~mask
            pieces.append(np.flatnonzero(m.ravel()))
        ring_starts = np.cumsum([0] + [len(p) for p in pieces[:-1]]).astype(np.intp)
        ring_rows, ring_cols = np.divmod(np.concatenate(pieces).astype(np.intp), w)
        empty = [k for k, p in enumerate(pieces) if len(p) == 0]
        if empty:
            raise InputError(f"rings {empty} hold only masked pixels", argument="rings")
    return KernelParams(roi, plan.binning, spec.composite, spec.roi_sum, ring_rows,
                        ring_cols, ring_starts, crop(corr.dark), crop(corr.flat),
                        crop(corr.background),
                        mask, dead, corr.dummy, corr.dtype, detect_bad)


@dataclass(eq=False)
class Maps:
    """Lazy maps of one job (dask arrays; ``None`` for what was not asked).

    ``composite`` ``(npt_y, npt_x, fy, fx)``, ``roi_sum`` ``(npt_y, npt_x)`` float64,
    ``annulus_sum`` ``(nrings, npt_y, npt_x)`` float64; all chunked by whole scan lines
    (map chunk ``c`` covers :meth:`MapPlan.chunk_slices`), from one shared read.
    ``bad_frames`` lists ``(index, path, reason)`` known at open; :attr:`bad_found` is a
    dask array of the frame indices found unreadable while reading.
    """

    composite: object
    roi_sum: object
    annulus_sum: object
    plan: MapPlan
    spec: MapSpec
    corrections: Corrections
    bad_frames: list
    bad_found: object
    fuse_reads: bool = True

    @property
    def unfilled(self) -> int:
        return self.plan.unfilled

    def arrays(self) -> dict:
        """``{'composite': ..., 'roi_sum': ..., 'annulus_sum': ...}`` of the maps asked for."""
        return {k: v for k, v in (("composite", self.composite), ("roi_sum", self.roi_sum),
                                  ("annulus_sum", self.annulus_sum)) if v is not None}

    def chunk_keys(self, c: int) -> dict:
        """Dask keys of map chunk ``c`` of each array."""
        ax = self.plan.map_axis
        out = {}
        if self.composite is not None:
            out["composite"] = (self.composite.name, c, 0, 0, 0) if ax == 0 else \
                (self.composite.name, 0, c, 0, 0)
        if self.roi_sum is not None:
            out["roi_sum"] = (self.roi_sum.name, c, 0) if ax == 0 else (self.roi_sum.name, 0, c)
        if self.annulus_sum is not None:
            out["annulus_sum"] = (self.annulus_sum.name, 0, c, 0) if ax == 0 else \
                (self.annulus_sum.name, 0, 0, c)
        return out


def build_maps(ims, spec: MapSpec, scan: ScanGeometry, corrections: Corrections | None = None,
               frames_per_chunk: int | str = "auto", fuse_reads: bool = True) -> Maps:
    """Build the lazy maps of ``spec`` over ``ims`` (one read of the union bounding box).

    Parameters
    ----------
    ims : ImageSeries
        Frames in scan order (``len(ims)`` checked against ``scan``).
    spec : MapSpec
        With a series opened ``on_error='fill'``, a composite-only spec also gets the ROI
        sum: its NaN points are how frames found unreadable while reading are recorded.
    scan : ScanGeometry
    corrections : Corrections, optional
    frames_per_chunk : int or 'auto'
        Frames per read task; rounded down to whole scan lines when at least one line.
    fuse_reads : bool
        ``True`` (default): each task reads its frames through ``ims.block_source`` a few
        at a time and reduces each piece at once; ``False``: reduce the blocks of
        ``ims.to_dask(box)`` (one more pass over memory per block).  Same results.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    corr = corrections if corrections is not None else Corrections()
    on_fill = ims.on_error == "fill"
    if on_fill and spec.composite and not (spec.roi_sum or spec.rings):
        # frames found unreadable while reading are recorded from the NaN points of the sums
        # (a composite shows them as `dummy`, which real data can equal): keep a ROI sum
        spec = replace(spec, roi_sum=True)
    plan = plan_maps(ims, spec, scan, corr, frames_per_chunk)
    params = _kernel_params(plan, spec, corr, detect_bad=on_fill)
    chunks = frame_chunks(plan.nframes, plan.frames_per_chunk)
    starts = np.cumsum((0,) + chunks[:-1])
    box = plan.box
    token = tokenize(ims.token, box[0].start, box[0].stop, box[1].start, box[1].stop,
                     plan.frames_per_chunk, fuse_reads,
                     spec.roi and (spec.roi[0].start, spec.roi[0].stop,
                                   spec.roi[1].start, spec.roi[1].stop),
                     spec.binning, spec.rings, spec.composite, spec.roi_sum,
                     corr.to_attrs(), scan.to_attrs(), plan.map_chunk)
    rname = f"map-reduce-{token}"
    pkey = f"map-params-{token}"
    dsk_r: dict = {pkey: params}
    layers: dict = {}
    deps: dict = {}
    if fuse_reads:
        # read + reduce in one task, a few frames at a time (cache-hot; see module doc)
        read_box = box
        if WIDEN_FILE_READS and ims.filenames is not None and \
                (box[1].start, box[1].stop) != (0, ims.shape[1]):
            # file reads fetch whole rows anyway (one pread): take them straight into the
            # block, no copy, and let the kernel see the box's columns as a view
            read_box = (box[0], slice(0, int(ims.shape[1])))
            params = replace(params, crop_cols=box[1])
            dsk_r[pkey] = params
        h, w = roi_shape(read_box)
        frame_bytes = h * w * np.dtype(ims.block_dtype()).itemsize
        sub = max(1, FUSED_READ_BYTES // frame_bytes) if ims.filenames is not None else \
            plan.frames_per_chunk
        for i, (start, n) in enumerate(zip(starts, chunks)):
            start = int(start)
            sources = [ims.block_source(s0, min(start + n, s0 + sub))
                       for s0 in range(start, start + n, sub)]
            norm = None if corr.norm is None else corr.norm[start:start + n]
            dsk_r[(rname, i)] = (_read_reduce_task, sources, read_box, pkey, norm, start)
        deps[rname] = set()
    else:
        reads = ims.to_dask(box, frames_per_chunk=plan.frames_per_chunk)
        for i, (start, n) in enumerate(zip(starts, chunks)):
            norm = None if corr.norm is None else corr.norm[start:start + n]
            dsk_r[(rname, i)] = (_reduce_task, (reads.name, i, 0, 0), pkey, norm, int(start))
        layers.update(reads.dask.layers)
        deps.update({k: set(v) for k, v in reads.dask.dependencies.items()})
        deps[rname] = {reads.name}
    layers[rname] = dsk_r

    p2f = scan.point_to_frame(plan.nframes)
    fpc = plan.frames_per_chunk
    chunk_parts = []
    for c in range(plan.nchunks):
        frames = p2f[plan.chunk_slices(c)]
        used = np.unique(frames[frames >= 0] // fpc)
        chunk_parts.append((np.ascontiguousarray(frames), [int(b) for b in used]))

    fy, fx = plan.binned_shape
    nrings = len(plan.rings)
    mc = plan.map_chunks
    ny, nx = scan.shape

    def output(which, name, tail, dtype, fill, ring_first):
        oname = f"{name}-{token}"
        dsk = {}
        for c, (frames, used) in enumerate(chunk_parts):
            if plan.map_axis == 0:
                key = (oname, 0, c, 0) if ring_first else (oname, c) + (0,) * (1 + len(tail))
            else:
                key = (oname, 0, 0, c) if ring_first else (oname, 0, c) + (0,) * len(tail)
            dsk[key] = (_place_task, which, frames, [int(starts[b]) for b in used], fill,
                        dtype, tail, ring_first) + tuple((rname, b) for b in used)
        layers[oname] = dsk
        deps[oname] = {rname}
        ychunks = mc if plan.map_axis == 0 else (ny,)
        xchunks = (nx,) if plan.map_axis == 0 else mc
        if ring_first:
            chunks = ((nrings,), ychunks, xchunks)
        else:
            chunks = (ychunks, xchunks) + tuple((t,) for t in tail)
        return oname, chunks, np.dtype(dtype)

    made = []
    if spec.composite:
        made.append(("composite", output(0, "composite", (fy, fx), corr.dtype, np.nan, False)))
    if spec.roi_sum:
        made.append(("roi_sum", output(1, "roi-sum", (), "float64", np.nan, False)))
    if nrings:
        made.append(("annulus_sum", output(2, "annulus-sum", (nrings,), "float64", np.nan,
                                           True)))
    bname = f"bad-frames-{token}"
    layers[bname] = {(bname, 0): (_bad_task,) + tuple((rname, i) for i in range(len(starts)))}
    deps[bname] = {rname}
    graph = HighLevelGraph(layers, deps)
    arrays = {k: da.Array(graph, name, chunks, dtype=dtype) for k, (name, chunks, dtype) in made}
    bad_found = da.Array(graph, bname, ((np.nan,),), dtype=np.int64)
    return Maps(arrays.get("composite"), arrays.get("roi_sum"), arrays.get("annulus_sum"),
                plan, spec, corr, list(ims.bad_frames), bad_found,
                fuse_reads)


# ---------------------------------------------------------------------------------------
# one-map conveniences


def composite(ims, scan: ScanGeometry, roi=None, binning: int = 1,
              corrections: Corrections | None = None, frames_per_chunk: int | str = "auto"):
    """Lazy 4-D composite ``(npt_y, npt_x, fy, fx)`` of the (corrected, binned) ROI."""
    spec = MapSpec(roi=roi, binning=binning, composite=True, roi_sum=False)
    return build_maps(ims, spec, scan, corrections, frames_per_chunk).composite


def roi_sum(ims, scan: ScanGeometry, roi=None, corrections: Corrections | None = None,
            frames_per_chunk: int | str = "auto"):
    """Lazy ``(npt_y, npt_x)`` float64 sum of the corrected ROI per scan point."""
    spec = MapSpec(roi=roi, binning=1, composite=False, roi_sum=True)
    return build_maps(ims, spec, scan, corrections, frames_per_chunk).roi_sum


def annulus_sum(ims, scan: ScanGeometry, cen_y: float, cen_x: float, radii, width,
                corrections: Corrections | None = None, frames_per_chunk: int | str = "auto"):
    """Lazy ``(nrings, npt_y, npt_x)`` float64 ring sums (reads only the rings' box)."""
    spec = MapSpec(rings=rings(cen_y, cen_x, radii, width), composite=False, roi_sum=False)
    return build_maps(ims, spec, scan, corrections, frames_per_chunk).annulus_sum
