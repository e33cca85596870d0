"""Rings in a physical unit and radial bins (1-D integration maps): a map kind of the one
read pass.

* :class:`RadialSpec` (settings): a detector geometry (a pyFAI PONI file, or pixels around a
  centre), the radial ``unit``, rings ``position +- width / 2`` in that unit and/or
  ``bins`` radial bins over ``radial_range``, an optional ``chi`` sector (degrees) and, for
  the bins, pyFAI's solid-angle and polarization corrections;
* :class:`RadialTables`: the pixel-group tables of a job (:mod:`xrsmap_dask.radial`),
  built once when the job is planned, for the frame shape and the job's mask;
* :func:`geometry_sums` (kernel): ring sums and bin means of a block of frames with the
  take + reduceat kernel :func:`xrsmap_dask.radial.group_sums`, in the same task that reads
  the frames (they are still in the CPU cache);
* :func:`radial_arrays`: the output arrays.

Outputs (dims, see ``docs/STORE.md``):

* ``annulus_sum`` ``(ring, y, x)`` float64: sum of the corrected pixels of each ring (no
  solid-angle or polarization weighting: a sum of counts), coordinates ``ring`` (positions
  in the unit, with its ``units``), ``ring_width`` and ``ring_count`` (pixels per ring);
* ``radial`` ``(bin, y, x)`` float64: mean intensity of each bin, ``sum(signal) /
  sum(norm)`` over its pixels with ``norm`` = solid angle x polarization per pixel (1
  without corrections: the plain mean), pyFAI's ``integrate1d`` without pixel splitting;
  coordinates ``bin`` (bin centres in the unit) and ``radial_count`` (pixels per bin);
* with an active invalid-pixel rule (:mod:`xrsmap_dask.invalid`), ``radial_excluded``
  ``(bin, y, x)`` uint32: pixels of each bin holding an excluded value in the frame of each
  point.  They add nothing to the ring sums and bin sums of that frame, and the bin's mean
  is over its other pixels: ``radial_count - radial_excluded`` of them (their weights, with
  corrections).  Laid out by :func:`xrsmap_dask.maps.output.with_invalid_arrays`.

Conventions: ring bounds inclusive; bins as :func:`xrsmap_dask.radial.make_radial_bins`
(pyFAI's histogram); masks ``True`` = excluded (the job's mask, and the detector's own mask
from the PONI file); a frame that could not be read is NaN; per-frame ``norm`` divides sums
and means.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import radial as R
from ..errors import InputError
from ..geometry import (DetectorGeometry, parse_chi_sector, parse_polarization,
                        parse_solid_angle, unit_attrs)
from ..layout import ArraySpec
from ..roi import RoiSlices


@dataclass(frozen=True, eq=False)
class RadialSpec:
    """Geometry-based maps of a job: rings in ``unit`` and/or radial bins.

    Parameters
    ----------
    geometry : DetectorGeometry
        :class:`~xrsmap_dask.geometry.PoniGeometry` (``load_poni``) or
        :class:`~xrsmap_dask.geometry.PixelGeometry` (pixels around a centre).
    unit : str, optional
        Radial unit (``None``: the geometry's default, ``q_nm^-1`` with a PONI file).
    ring_positions, ring_widths : sequences of float
        Rings ``position +- width / 2`` in ``unit`` (bounds inclusive); one width for all
        or one per ring.
    bins : int, optional
        Number of radial bins (``None``: no radial-bin map).
    radial_range : (lo, hi), optional
        Bin range in ``unit`` (``None``: min..max of the unmasked pixels, as pyFAI).
    chi : (start, stop), optional
        Azimuthal sector in degrees (:func:`xrsmap_dask.geometry.parse_chi_sector`).
    solid_angle, polarization :
        pyFAI's corrections of the bin means (need a PONI file).
    """

    geometry: DetectorGeometry
    unit: str | None = None
    ring_positions: tuple = ()
    ring_widths: tuple = ()
    bins: int | None = None
    radial_range: tuple | None = None
    chi: tuple | None = None
    solid_angle: bool = False
    polarization: float | None = None

    def __post_init__(self):
        if not isinstance(self.geometry, DetectorGeometry):
            raise InputError(f"expected a detector geometry, got {self.geometry!r}",
                             argument="poni")
        object.__setattr__(self, "unit", self.geometry.resolve_unit(self.unit))
        pos = tuple(float(v) for v in np.atleast_1d(np.asarray(self.ring_positions, float)))
        widths = np.atleast_1d(np.asarray(self.ring_widths, float))
        if len(widths) == 1 and len(pos) > 1:
            widths = np.repeat(widths, len(pos))
        if len(widths) != len(pos) and pos:
            raise InputError(f"give one width or one per ring ({len(pos)})", argument="width")
        object.__setattr__(self, "ring_positions", pos)
        object.__setattr__(self, "ring_widths", tuple(float(w) for w in widths[:len(pos)]))
        object.__setattr__(self, "bins", R.parse_radial_bins(self.bins))
        object.__setattr__(self, "radial_range", R.parse_radial_range(self.radial_range))
        object.__setattr__(self, "chi", parse_chi_sector(self.chi))
        object.__setattr__(self, "solid_angle", parse_solid_angle(self.solid_angle))
        object.__setattr__(self, "polarization", parse_polarization(self.polarization))
        if not pos and self.bins is None:
            raise InputError("nothing to compute: give rings or @{radial_bins}",
                             argument="radial_bins")
        if self.geometry.kind == "pixel" and (self.solid_angle or self.polarization is not None):
            raise InputError("the solid-angle and polarization corrections need a PONI file "
                             "(@{poni})", argument="solid_angle" if self.solid_angle
                             else "polarization")

    @property
    def nrings(self) -> int:
        return len(self.ring_positions)

    def to_attrs(self) -> dict:
        """JSON-able description (part of the job identity)."""
        return {"geometry": self.geometry.to_attrs(), **unit_attrs(self.unit),
                "unit": self.unit, "ring_positions": list(self.ring_positions),
                "ring_widths": list(self.ring_widths), "bins": self.bins,
                "radial_range": None if self.radial_range is None else list(self.radial_range),
                "chi": None if self.chi is None else list(self.chi),
                "solid_angle": self.solid_angle, "polarization": self.polarization}

    def tables(self, frame_shape, mask=None) -> "RadialTables":
        """The pixel-group tables for frames of ``frame_shape`` and the job's ``mask``
        (``True`` = excluded; the geometry's own mask is added)."""
        kw = dict(unit=self.unit, chi=self.chi, mask=mask)
        rings = bins = None
        if self.ring_positions:
            rings = R.make_rings(self.geometry, frame_shape, self.ring_positions,
                                 self.ring_widths, **kw)
        if self.bins is not None:
            bins = R.make_radial_bins(self.geometry, frame_shape, self.bins,
                                      radial_range=self.radial_range,
                                      solid_angle=self.solid_angle,
                                      polarization=self.polarization, **kw)
        return RadialTables(self, rings, bins, tuple(int(v) for v in frame_shape))


@dataclass(frozen=True, eq=False)
class RadialTables:
    """The tables of a :class:`RadialSpec` for one frame shape and mask."""

    spec: RadialSpec
    rings: R.Rings | None
    bins: R.RadialBins | None
    frame_shape: tuple[int, int] | None = None

    @property
    def box(self) -> RoiSlices:
        """Bounding box (frame coordinates) of every pixel the tables use."""
        boxes = [t.groups.box for t in (self.rings, self.bins) if t is not None]
        return (slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes)),
                slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes)))

    @property
    def nrings(self) -> int:
        return 0 if self.rings is None else len(self.rings.centres)

    @property
    def nbins(self) -> int:
        return 0 if self.bins is None else self.bins.nbins

    def kernel(self, box: RoiSlices) -> "RadialKernel":
        """The tables laid on blocks of ``box`` (which holds :attr:`box`): the rings as a
        pixel list, the bins as runs of consecutive pixels."""
        rings = None if self.rings is None else self.rings.groups.reindex(box)
        if self.bins is None:
            return RadialKernel(rings, None, None, None, box)
        groups, spec = self.bins.groups, self.spec
        weights = BinWeights(spec.geometry, self.frame_shape, spec.solid_angle,
                             spec.polarization) \
            if spec.solid_angle or spec.polarization is not None else None
        return RadialKernel(rings, R.RunTable.from_groups(groups.reindex(box)), groups.norm,
                            groups.count, box, weights)


@dataclass(frozen=True, eq=False)
class BinWeights:
    """The per-pixel weights of weighted radial bins (solid angle x polarization, as
    :func:`xrsmap_dask.radial.pixel_weights`), looked up only at the pixels the invalid-pixel
    rule excludes: the geometry computes its frame arrays once per process, so nothing of
    frame size is shipped with the kernel."""

    geometry: DetectorGeometry
    frame_shape: tuple[int, int]
    solid_angle: bool
    polarization: float | None

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Weights (float64) of the frame pixels ``(rows, cols)``."""
        w = np.ones(len(rows))
        if self.solid_angle:
            w *= self.geometry.solid_angle(self.frame_shape)[rows, cols]
        if self.polarization is not None:
            w *= self.geometry.polarization(self.frame_shape, self.polarization)[rows, cols]
        return w


@dataclass(frozen=True, eq=False)
class RadialKernel:
    """What a reduce task needs: the ring table (pixel lists) and the bin table (runs) laid
    on its blocks, and each bin's normalisation (sum of the pixels' weights) and count."""

    rings: R.PixelGroups | None
    bins: R.RunTable | None
    bin_norm: np.ndarray | None
    bin_count: np.ndarray | None
    box: RoiSlices | None = None       # the frame region the tables are laid on
    weights: BinWeights | None = None  # per-pixel weights of weighted bins

    @property
    def nrings(self) -> int:
        return 0 if self.rings is None else self.rings.ngroups

    @property
    def nbins(self) -> int:
        return 0 if self.bins is None else self.bins.ngroups

    def excluded(self, hit: np.ndarray, col0: int = 0) -> tuple[np.ndarray,
                                                                np.ndarray | None]:
        """``(counts, weights)``, each ``(m, nbins)``: the pixels of each bin that ``hit``
        (bool ``(m, rows, cols)``, True = excluded in that frame) excludes, and the sum of
        their weights (``None`` for unweighted bins, where it is ``counts``).  ``hit``'s
        column 0 is column ``col0`` of the blocks the tables are laid on (same rows)."""
        m, nb = len(hit), self.nbins
        f, r, c = np.nonzero(hit)
        cols = c + col0
        run = np.searchsorted(self.bins.starts, r * self.bins.layout[1] + cols,
                              side="right") - 1
        group = self.bins.run_group[run]
        keep = group < nb                   # pixels in no bin (masked, out of range)
        idx = f[keep] * nb + group[keep]
        counts = np.bincount(idx, minlength=m * nb).reshape(m, nb)
        if self.weights is None:
            return counts, None
        w = self.weights.at(r[keep] + self.box[0].start, cols[keep] + self.box[1].start)
        return counts, np.bincount(idx, w, minlength=m * nb).reshape(m, nb)


def geometry_sums(block: np.ndarray, k: RadialKernel, excluded=None) -> tuple[
        np.ndarray | None, np.ndarray | None]:
    """``(ring sums (n, nrings), bin means (n, nbins))`` of a block ``(n, rows, cols)`` laid
    as ``k``'s tables (``None`` for what is not asked); float64, NaN where a frame is NaN
    and for bins without pixels.

    ``excluded`` (:class:`~.exclusion.Excluded`, optional): what the invalid-pixel rule
    excluded in each frame.  Those pixels are zero in ``block`` (they add nothing to a sum);
    a bin's mean is then taken over its other pixels: its count and normalisation lose the
    excluded pixels of that frame (NaN when none is left).
    """
    rings = None if k.rings is None else R.group_sums(block, k.rings)
    means = None
    if k.bins is not None:
        norm, count = k.bin_norm, k.bin_count
        if excluded is not None and excluded.bin_counts is not None:
            count = count - excluded.bin_counts
            norm = norm - (excluded.bin_counts if excluded.bin_weights is None
                           else excluded.bin_weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = R.run_sums(block, k.bins) / norm
        means[np.broadcast_to(count == 0, means.shape)] = np.nan
    return rings, means


def radial_arrays(tables: RadialTables, map_shape, chunk_shape, units: str) -> list[ArraySpec]:
    """The output arrays of the tables: ``radial`` ``(bin, y, x)`` with ``bin`` and
    ``radial_count``; the unit rings' coordinates ``ring``, ``ring_width``, ``ring_count``
    (their ``annulus_sum`` is laid out with the pixel rings'). ``units``: of the signal."""
    (ny, nx), (cy, cx) = map_shape, chunk_shape
    spec = tables.spec
    axis = unit_attrs(spec.unit)
    out = []
    nan = float("nan")
    if tables.bins is not None:
        b = tables.bins
        sector = "" if spec.chi is None else f", chi {spec.chi[0]:g}..{spec.chi[1]:g} deg"
        weighted = spec.solid_angle or spec.polarization is not None
        what = ("mean intensity per pixel" + (" (solid angle x polarization weighted)"
                                               if weighted else ""))
        out.append(ArraySpec("radial", ("bin", "y", "x"), (b.nbins, ny, nx),
                             (b.nbins, cy, cx), "float64", nan,
                             attrs={"long_name": f"{what} in each {spec.unit} bin{sector}",
                                    "units": units, "radial_unit": spec.unit,
                                    "radial_range": list(b.radial_range),
                                    "chi": None if spec.chi is None else list(spec.chi),
                                    "solid_angle": spec.solid_angle,
                                    "polarization": spec.polarization}))
        out.append(_coordinate("bin", b.centres, {
            **axis, "long_name": f"{axis['long_name']}, bin centre"}))
        out.append(_coordinate("radial_count", b.groups.count, {
            "long_name": "unmasked pixels in the bin (less radial_excluded in a frame)",
            "units": "1"}, "bin", "int64"))
    if tables.rings is not None:
        r = tables.rings
        out.append(_coordinate("ring", r.centres, {
            **axis, "long_name": f"{axis['long_name']}, ring centre"}))
        out.append(_coordinate("ring_width", r.widths, {
            **axis, "long_name": "full ring width (bounds inclusive)"}, "ring"))
        out.append(_coordinate("ring_count", r.groups.count, {
            "long_name": "unmasked pixels in the ring", "units": "1"}, "ring", "int64"))
    return out


def _coordinate(name, values, attrs, dim=None, dtype="float64") -> ArraySpec:
    values = np.ascontiguousarray(values, dtype=dtype)
    fill = 0 if np.dtype(dtype).kind in "iu" else float("nan")
    return ArraySpec(name, (dim or name,), values.shape, values.shape, dtype, fill,
                     attrs=attrs, values=values)
