"""Rings and radial bins as pixel-group tables, and the kernel that sums them per frame.

A :class:`PixelGroups` table lists, for each group (a ring or a radial bin), the pixels it
holds as flat indices into the blocks a reduce task sees (``layout`` rows x cols, laid on
the frame region ``box``).  Groups may overlap (rings) or partition the pixels (radial
bins).  The kernels (:mod:`xrsmap_dask.radial_kernels`, re-exported here):
:func:`group_sums` gathers every grouped pixel of a frame with one ``np.take`` (group after
group) and adds each group's run with one ``np.add.reduceat``; for disjoint groups
:class:`RunTable` / :func:`run_sums` add the runs of consecutive pixels of a bin along each
row with one ``np.add.reduceat`` over the frame and one ``np.bincount`` over the runs.  No
boolean mask per group, no Python loop over groups; integer frames are summed exactly in
64-bit integers.

Radial bins (:func:`make_radial_bins`) are pyFAI's histogram without pixel splitting, so
profiles equal ``integrate1d(..., method=('no', 'csr', 'cython'))`` bin for bin:

* ``nbins`` bins over ``[lo, hi]`` in the unit, of width ``delta = (hi' - lo) / nbins``
  with ``hi' = hi * (1 + eps32)`` (``hi / (1 + eps32)`` if ``hi <= 0``; ``eps32`` the
  float32 epsilon): pyFAI widens the top by one float32 step so a pixel at ``hi`` counts;
* a pixel of value ``v`` is in bin ``floor((v - lo) / delta)`` when ``v >= lo`` and that is
  below ``nbins``.  pyFAI also puts pixels less than one bin below ``lo`` in bin 0 (its C
  code truncates towards zero); we do not, so bin 0 differs from pyFAI's unless ``lo`` is at
  or below the smallest unmasked value;
* the default range is pyFAI's: min and max over the unmasked pixels of the whole frame;
* the mean intensity of bin ``k`` is ``sum(signal) / sum(norm)`` over its pixels, ``norm``
  the product of the solid-angle and polarization arrays (1 without corrections, when it is
  the plain mean): pyFAI's weighted average.

Rings (:func:`make_rings`): ring ``k`` holds the pixels with
``centre_k - width_k / 2 <= v <= centre_k + width_k / 2`` (both bounds inclusive, as the
pixel rings of :mod:`xrsmap_dask.maps`), selected from one sort of the pixel values.

Both may be restricted to a chi sector (:func:`xrsmap_dask.geometry.chi_sector_mask`) and
exclude masked pixels (the user's mask or the detector's own; ``True`` = excluded).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .errors import InputError
from .geometry import (DetectorGeometry, chi_sector_mask, parse_chi_sector, parse_polarization,
                       parse_solid_angle, unit_attrs)
from .roi import RoiSlices, roi_shape
from .settings.fields import parse_int, parse_number, short

EPS32 = 1.0 + float(np.finfo(np.float32).eps)
MAX_RADIAL_BINS = 1_000_000


# ---------------------------------------------------------------------------------------
# parse functions


def parse_radial_bins(value) -> int | None:
    """Number of radial bins, an int in 1 .. :data:`MAX_RADIAL_BINS`, or ``None`` (no
    radial-bin map)."""
    if value is None:
        return None
    n = parse_int(value, "radial_bins")
    if n > MAX_RADIAL_BINS:
        raise InputError(f"must be at most {MAX_RADIAL_BINS}, got {n}", argument="radial_bins")
    return n


def parse_radial_range(value) -> tuple[float, float] | None:
    """``[lo, hi]`` in the radial unit, ``lo < hi``; ``None`` = pyFAI's default (min and max
    over the unmasked pixels)."""
    if value is None:
        return None
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise InputError(f"must be two numbers [lo, hi] in the radial unit, got "
                         f"{short(value)}", argument="radial_range")
    lo, hi = (parse_number(v, "radial_range") for v in value)
    if not lo < hi:
        raise InputError(f"needs lo < hi, got {short(value)}", argument="radial_range")
    return lo, hi


# ---------------------------------------------------------------------------------------
# tables


@dataclass(frozen=True, eq=False)
class PixelGroups:
    """Which pixels of a block each group sums.

    ``pixels`` (intp) are flat indices into a ``layout`` (rows, cols) block whose pixel
    ``(0, 0)`` is frame pixel ``(box[0].start, box[1].start)``, grouped: segment ``s``
    (``pixels[seg_starts[s]:seg_starts[s + 1]]``) holds the pixels of group
    ``seg_groups[s]``; empty groups have no segment.  ``count`` (int64) and ``norm``
    (float64, the sum of the pixels' correction weights, ``count`` without corrections)
    are per group.
    """

    box: RoiSlices
    layout: tuple[int, int]
    pixels: np.ndarray
    seg_starts: np.ndarray
    seg_groups: np.ndarray
    count: np.ndarray
    norm: np.ndarray

    @property
    def ngroups(self) -> int:
        return len(self.count)

    def reindex(self, read_box: RoiSlices) -> "PixelGroups":
        """The same groups laid on blocks of ``read_box`` (which must contain :attr:`box`),
        e.g. reads of whole rows."""
        (y0, y1), (x0, x1) = ((s.start, s.stop) for s in read_box)
        if y0 > self.box[0].start or y1 < self.box[0].stop or \
                x0 > self.box[1].start or x1 < self.box[1].stop:
            raise ValueError(f"read box {read_box} does not contain the table's box {self.box}")
        rows, cols = np.divmod(self.pixels, self.layout[1])
        pixels = (rows + (self.box[0].start - y0)) * (x1 - x0) + cols + (self.box[1].start - x0)
        return replace(self, box=(slice(y0, y1), slice(x0, x1)), layout=(y1 - y0, x1 - x0),
                       pixels=pixels.astype(np.intp))


def groups_from_index(index: np.ndarray, ngroups: int, box: RoiSlices,
                      weights: np.ndarray | None = None) -> PixelGroups:
    """Disjoint groups from a per-pixel group index over ``box`` (-1: in no group)."""
    flat = np.asarray(index).ravel()
    sel = np.flatnonzero(flat >= 0)
    pixels = sel[np.argsort(flat[sel], kind="stable")]   # by group, then pixel order
    return _groups(pixels, flat[pixels], ngroups, box, index.shape, weights)


def groups_from_lists(lists: Sequence[np.ndarray], box: RoiSlices,
                      weights: np.ndarray | None = None) -> PixelGroups:
    """Possibly overlapping groups from one array of flat pixel indices (into ``box``) each."""
    pixels = np.concatenate([np.sort(np.asarray(p, dtype=np.intp)) for p in lists]) \
        if len(lists) else np.zeros(0, np.intp)
    group = np.repeat(np.arange(len(lists), dtype=np.intp), [len(p) for p in lists])
    return _groups(pixels, group, len(lists), box, roi_shape(box), weights)


def _groups(pixels, group, ngroups, box, layout, weights) -> PixelGroups:
    pixels = np.ascontiguousarray(pixels, dtype=np.intp)
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else \
        np.zeros(0, np.intp)
    seg_groups = group[first].astype(np.intp)
    count = np.bincount(group, minlength=ngroups).astype(np.int64)
    if weights is None:
        norm = count.astype(np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()[pixels]
        norm = np.zeros(ngroups)
        if len(first):
            norm[seg_groups] = np.add.reduceat(w, first)
    return PixelGroups(box, tuple(int(v) for v in layout), pixels, first.astype(np.intp),
                       seg_groups, count, norm)


def selection_box(selected: np.ndarray) -> RoiSlices | None:
    """Bounding box (numpy slices) of the ``True`` pixels of a frame; ``None`` if none."""
    rows = np.flatnonzero(selected.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(selected.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def excluded_pixels(geometry: DetectorGeometry, shape, mask=None) -> np.ndarray:
    """``True`` = excluded: the user's ``mask`` (nonzero) or the detector's own mask."""
    shape = geometry.check_shape(shape)
    out = np.zeros(shape, dtype=bool)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise InputError(f"shape {mask.shape[0]} x {mask.shape[1]} differs from the "
                             f"frames' {shape[0]} x {shape[1]}", argument="mask")
        out |= mask != 0
    det = geometry.mask(shape)
    if det is not None:
        out |= det
    return out


def pixel_weights(geometry: DetectorGeometry, shape, box: RoiSlices, solid_angle: bool = False,
                  polarization: float | None = None) -> np.ndarray | None:
    """Per-pixel normalization over ``box``: solid angle x polarization (pyFAI's arrays),
    ``None`` without corrections."""
    w = None
    if parse_solid_angle(solid_angle):
        w = np.array(geometry.solid_angle(shape, box), dtype=np.float64)
    polarization = parse_polarization(polarization)
    if polarization is not None:
        pol = geometry.polarization(shape, polarization, box)
        w = np.array(pol, dtype=np.float64) if w is None else w * pol
    return w


# ---------------------------------------------------------------------------------------
# radial bins and rings


def radial_bin_edges(nbins: int, lo: float, hi: float) -> np.ndarray:
    """``nbins + 1`` bin edges over ``[lo, hi]`` with pyFAI's widened top (module doc)."""
    top = hi * EPS32 if hi > 0 else hi / EPS32
    return lo + (top - lo) / nbins * np.arange(nbins + 1)


def radial_bin_index(values: np.ndarray, nbins: int, lo: float, hi: float) -> np.ndarray:
    """Bin of each value (intp, same shape), -1 outside the range or not finite."""
    top = hi * EPS32 if hi > 0 else hi / EPS32
    delta = (top - lo) / nbins
    values = np.asarray(values, dtype=np.float64)
    ok = values >= lo                       # False for NaN
    f = np.where(ok, (values - lo) / delta, -1.0)
    index = np.floor(f).astype(np.intp)
    index[~ok | (index >= nbins)] = -1
    return index


@dataclass(frozen=True, eq=False)
class RadialBins:
    """``nbins`` radial bins in ``unit`` (``edges`` ``(nbins + 1,)``) and their pixels."""

    unit: str
    edges: np.ndarray
    radial_range: tuple[float, float]
    chi: tuple[float, float] | None
    solid_angle: bool
    polarization: float | None
    groups: PixelGroups

    @property
    def nbins(self) -> int:
        return len(self.edges) - 1

    @property
    def centres(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2

    def to_attrs(self) -> dict:
        return {"unit": self.unit, **unit_attrs(self.unit), "nbins": self.nbins,
                "radial_range": list(self.radial_range),
                "chi": None if self.chi is None else list(self.chi),
                "solid_angle": self.solid_angle, "polarization": self.polarization}


@dataclass(frozen=True, eq=False)
class Rings:
    """Rings ``centre +- width / 2`` in ``unit`` (bounds inclusive) and their pixels."""

    unit: str
    centres: np.ndarray
    widths: np.ndarray
    chi: tuple[float, float] | None
    solid_angle: bool
    polarization: float | None
    groups: PixelGroups

    def to_attrs(self) -> dict:
        return {"unit": self.unit, **unit_attrs(self.unit), "centres": self.centres.tolist(),
                "widths": self.widths.tolist(),
                "chi": None if self.chi is None else list(self.chi),
                "solid_angle": self.solid_angle, "polarization": self.polarization}


def _kept(geometry, shape, mask, chi) -> np.ndarray:
    keep = ~excluded_pixels(geometry, shape, mask)
    if chi is not None:
        keep &= chi_sector_mask(geometry.chi(shape), chi)
    return keep


def make_radial_bins(geometry: DetectorGeometry, shape, nbins: int, unit: str | None = None,
                     radial_range=None, chi=None, mask=None, solid_angle: bool = False,
                     polarization: float | None = None) -> RadialBins:
    """The radial-bin table of a job (conventions in the module docstring).

    ``shape`` is the frame shape; the table's box is the bounding box of the binned pixels.
    """
    unit = geometry.resolve_unit(unit)
    shape = geometry.check_shape(shape)
    nbins = parse_radial_bins(nbins)
    if nbins is None:
        raise InputError("give a number of radial bins", argument="radial_bins")
    radial_range, chi = parse_radial_range(radial_range), parse_chi_sector(chi)
    values = geometry.radial(unit, shape)
    unmasked = ~excluded_pixels(geometry, shape, mask)
    if radial_range is None:
        v = values[unmasked & np.isfinite(values)]
        if not v.size:
            raise InputError("every pixel is masked", argument="mask")
        radial_range = (float(v.min()), float(v.max()))
        if radial_range[0] == radial_range[1]:
            raise InputError(f"all unmasked pixels are at {unit} = {radial_range[0]:g}; give "
                             "radial_range", argument="radial_range")
    index = radial_bin_index(values, nbins, *radial_range)
    keep = unmasked if chi is None else unmasked & chi_sector_mask(geometry.chi(shape), chi)
    index[~keep] = -1
    box = selection_box(index >= 0)
    if box is None:
        raise InputError(f"no unmasked pixel in {unit} {radial_range[0]:g} .. "
                         f"{radial_range[1]:g}" + ("" if chi is None else f", chi {chi}"),
                         argument="radial_range")
    weights = pixel_weights(geometry, shape, box, solid_angle, polarization)
    groups = groups_from_index(index[box], nbins, box, weights)
    return RadialBins(unit, radial_bin_edges(nbins, *radial_range), tuple(radial_range), chi,
                      parse_solid_angle(solid_angle), parse_polarization(polarization), groups)


def make_rings(geometry: DetectorGeometry, shape, centres, widths, unit: str | None = None,
               chi=None, mask=None, solid_angle: bool = False,
               polarization: float | None = None) -> Rings:
    """The ring table of a job: ring ``k`` is ``centres[k] +- widths[k] / 2`` in ``unit``
    (``widths`` one value or one per ring), bounds inclusive; a ring without any unmasked
    pixel is an :class:`InputError`."""
    unit = geometry.resolve_unit(unit)
    shape = geometry.check_shape(shape)
    chi = parse_chi_sector(chi)
    try:
        centres = np.atleast_1d(np.asarray(centres, dtype=np.float64))
        widths = np.broadcast_to(np.asarray(widths, dtype=np.float64), centres.shape).copy()
    except (TypeError, ValueError):
        raise InputError(f"give one width or one per ring ({np.size(centres)})",
                         argument="width") from None
    if centres.ndim != 1 or not len(centres) or not np.all(np.isfinite(centres)):
        raise InputError(f"ring positions must be finite numbers, got {centres}",
                         argument="rings")
    if not np.all(np.isfinite(widths)) or np.any(widths < 0):
        raise InputError(f"widths must be finite and >= 0, got {widths}", argument="width")
    values = geometry.radial(unit, shape)
    cand = np.flatnonzero(_kept(geometry, shape, mask, chi).ravel())
    v = values.ravel()[cand]
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    lo = np.searchsorted(sorted_v, centres - widths / 2, side="left")
    hi = np.searchsorted(sorted_v, centres + widths / 2, side="right")
    empty = [k for k in range(len(centres)) if hi[k] <= lo[k]]
    if empty:
        raise InputError(f"rings {empty} ({unit} {centres[empty].tolist()}) hold no unmasked "
                         "pixel of the frame" + ("" if chi is None else f" in chi {chi}"),
                         argument="rings")
    lists = [cand[order[a:b]] for a, b in zip(lo, hi)]
    every = np.concatenate(lists)
    rows, cols = np.divmod(every, shape[1])
    box = (slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1))
    width = box[1].stop - box[1].start

    def to_box(p):
        r, c = np.divmod(p, shape[1])
        return (r - box[0].start) * width + (c - box[1].start)

    weights = pixel_weights(geometry, shape, box, solid_angle, polarization)
    groups = groups_from_lists([to_box(p) for p in lists], box, weights)
    return Rings(unit, centres, widths, chi, parse_solid_angle(solid_angle),
                 parse_polarization(polarization), groups)


# ---------------------------------------------------------------------------------------
# kernels: in radial_kernels.py (numpy in, numpy out), here for the callers of this module

from .radial_kernels import RunTable, group_means, group_sums, run_sums  # noqa: E402,F401
