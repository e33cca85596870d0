"""Layout of a map job: what is read (the box), how the map is cut into write units, and
which frames each unit reads.

A *write unit* is one chunk of the map ``(rows, cols)`` of scan points: the task of unit
``u`` reads exactly the frames whose points lie in its region (:meth:`MapPlan.unit_frames`),
reduces them and places the results, so a unit never waits for another and two units never
write the same chunk (the graph and the store use the same units, see
:meth:`MapPlan.output_layout`).  Regions are whole scan lines (rows; columns for
column-first scans) when a unit holds at least a line, else parts of one line; the number of
lines per unit is *rounded to the nearest* whole line, so a unit holds 2/3 to 3/2 of the
frames asked for.  With ``frames_per_chunk='auto'`` a unit reads about
:data:`~xrsmap_dask.lazy.TARGET_CHUNK_BYTES` of the box and never less than
:data:`MIN_UNIT_BYTES` (at most one task per 16 MiB), at least two units per thread when
the data allow it, and a multiple of the thread count when there are few.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..layout import DETECTOR_DIMS, ArraySpec, OutputLayout, detector_axes
from ..lazy import auto_frames_per_chunk
from ..roi import RoiSlices, check_binning, normalize_roi, roi_shape
from ..scan import ScanGeometry
from .kernels import ring_bbox, ring_mask, union_box
from .settings import Corrections, MapSpec

#: with frames_per_chunk='auto', a unit reads at least this many bytes of the box
MIN_UNIT_BYTES = 16 * 2**20

MAP_DIMS = {"composite": ("y", "x") + DETECTOR_DIMS, "roi_sum": ("y", "x"),
            "annulus_sum": ("ring", "y", "x"), "radial": ("bin", "y", "x"),
            "frame_unreadable": ("y", "x")}
#: long names of the maps (``units`` from :func:`signal_units`)
LONG_NAMES = {"composite": "corrected ROI of each scan point, binned (sum of b x b pixels)",
              "roi_sum": "sum of the corrected ROI pixels",
              "annulus_sum": "sum of the corrected pixels of each ring"}


def signal_units(corrections: Corrections | None) -> str:
    """Units of the maps: ``counts`` (detector counts, dark and background subtracted),
    ``arbitrary`` once a flat field divides or a per-frame ``norm`` normalises them."""
    if corrections is not None and (corrections.flat is not None or
                                    corrections.norm is not None):
        return "arbitrary"
    return "counts"


def auto_unit_frames(nframes: int, frame_bytes: int, threads: int) -> tuple[int, int]:
    """(frames per unit asked for, least frames per unit) for ``frames_per_chunk='auto'``."""
    frame_bytes = max(1, int(frame_bytes))
    target = auto_frames_per_chunk(nframes, frame_bytes)
    least = min(nframes, -(-MIN_UNIT_BYTES // frame_bytes))
    most = max(1, nframes // least)
    units = -(-nframes // max(target, least))
    units = min(most, max(units, 2 * threads))
    if threads < units < 4 * threads:
        units -= units % threads      # few units: a multiple of the threads keeps all busy
    return -(-nframes // units), least


def unit_chunk_shape(scan: ScanGeometry, frames: int, least: int = 1) -> tuple[int, int]:
    """Map chunk ``(rows, cols)`` of a unit of about ``frames`` frames (>= ``least``)."""
    ny, nx = scan.shape
    column = scan.kind == "column"
    nlines, line = (nx, ny) if column else (ny, nx)
    if frames >= line or least > line:
        k = max(1, int(round(frames / line)), -(-least // line))
        k = min(k, nlines)
        return (ny, k) if column else (k, nx)
    pieces = max(1, int(round(line / frames)))
    n = max(-(-line // pieces), least)
    return (n, 1) if column else (1, n)


@dataclass(frozen=True, eq=False)
class MapPlan:
    """Layout of one map job (derived from the series, spec, scan and corrections).

    ``box`` is the read box (frame coordinates, numpy slices); ``roi`` the ROI in frame
    coordinates (None without ROI outputs); ``chunk_shape`` the map region ``(rows, cols)``
    of a unit; ``frames_per_chunk`` the frames per unit asked for.
    """

    nframes: int
    frame_shape: tuple[int, int]
    box: RoiSlices
    roi: RoiSlices | None
    binning: int
    binned_shape: tuple[int, int]  # (fy, fx), (0, 0) without ROI outputs
    rings: tuple
    scan: ScanGeometry
    unfilled: int
    frames_per_chunk: int
    chunk_shape: tuple[int, int]
    point_to_frame: np.ndarray = field(repr=False)
    radial: object = None          # RadialTables of the job's geometry maps, or None

    @property
    def nrings(self) -> int:
        """Rings of the job (pixel rings, or rings in the radial unit)."""
        return len(self.rings) or (0 if self.radial is None else self.radial.nrings)

    @property
    def grid(self) -> tuple[int, int]:
        """Units along the map's rows and columns."""
        (ny, nx), (cy, cx) = self.scan.shape, self.chunk_shape
        return -(-ny // cy), -(-nx // cx)

    @property
    def nchunks(self) -> int:
        gy, gx = self.grid
        return gy * gx

    def unit_region(self, u: int) -> tuple[slice, slice]:
        """Map region ``(rows, cols)`` of unit ``u`` (units in frame order of their lines)."""
        gy, gx = self.grid
        iy, ix = divmod(u, gx) if self.scan.kind != "column" else divmod(u, gy)[::-1]
        (ny, nx), (cy, cx) = self.scan.shape, self.chunk_shape
        return (slice(iy * cy, min(ny, (iy + 1) * cy)), slice(ix * cx, min(nx, (ix + 1) * cx)))

    def unit_frames(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """``(frames, points)``: the frames unit ``u`` reads, ascending, and the index of each
        one's point in the region (C order)."""
        f = self.point_to_frame[self.unit_region(u)].ravel()
        points = np.flatnonzero(f >= 0)
        frames = f[points]
        order = np.argsort(frames, kind="stable")
        return frames[order], points[order]

    def output_layout(self, composite: bool, roi_sum: bool, dtype: str, *, axes=None,
                      units: str = "counts") -> OutputLayout:
        """The arrays of this job (maps, coordinates) and the region each unit writes in
        each map.  ``axes`` (:class:`~.coords.ScanAxes`) gives the scan coordinates
        (point indices without it); ``units`` those of the signal (:func:`signal_units`)."""
        from .coords import ScanAxes

        (ny, nx), (cy, cx) = self.scan.shape, self.chunk_shape
        fy, fx = self.binned_shape
        nr, nb = self.nrings, 0 if self.radial is None else self.radial.nbins
        nan = float("nan")
        arrays = []
        if composite:
            arrays.append(ArraySpec("composite", MAP_DIMS["composite"], (ny, nx, fy, fx),
                                    (cy, cx, fy, fx), dtype, nan, attrs=_signal("composite",
                                                                                units)))
        if roi_sum:
            arrays.append(ArraySpec("roi_sum", MAP_DIMS["roi_sum"], (ny, nx), (cy, cx),
                                    "float64", nan, attrs=_signal("roi_sum", units)))
        if nr:
            arrays.append(ArraySpec("annulus_sum", MAP_DIMS["annulus_sum"], (nr, ny, nx),
                                    (nr, cy, cx), "float64", nan,
                                    attrs=_signal("annulus_sum", units)))
        rad = []
        if self.radial is not None:
            from .radial import radial_arrays

            rad = radial_arrays(self.radial, (ny, nx), (cy, cx), units)
        arrays += [a for a in rad if a.values is None]
        arrays.append(ArraySpec(
            "frame_unreadable", MAP_DIMS["frame_unreadable"], (ny, nx), (cy, cx), "uint8", 0,
            attrs={"long_name": "frame of the scan point unreadable (1)", "units": "1",
                   "description": "1 where the frame of this scan point could not be read "
                                  "(on_error='fill'; its sums are NaN)", "bookkeeping": 1}))
        arrays += [a for a in rad if a.values is not None]
        if self.rings:
            for name, values in (("ring", [r.radius for r in self.rings]),
                                 ("ring_width", [r.width for r in self.rings])):
                arrays.append(ArraySpec(name, ("ring",), (nr,), (nr,), "float64", nan,
                                        attrs={"units": "pixel", "long_name": RING_NAMES[name]},
                                        values=np.asarray(values, dtype=np.float64)))
        arrays += (axes or ScanAxes()).arrays(self.point_to_frame)
        if composite:
            arrays += detector_axes(self.roi[0], self.roi[1], self.binning)
        units_ = []
        for u in range(self.nchunks):
            rows, cols = self.unit_region(u)
            regions = {"composite": (rows, cols, slice(0, fy), slice(0, fx)),
                       "roi_sum": (rows, cols), "annulus_sum": (slice(0, nr), rows, cols),
                       "radial": (slice(0, nb), rows, cols), "frame_unreadable": (rows, cols)}
            units_.append({a.name: regions[a.name] for a in arrays if a.values is None})
        return OutputLayout(tuple(arrays), tuple(units_))


RING_NAMES = {"ring": "ring radius (distance of pixel centres from the ring centre)",
              "ring_width": "full ring width (bounds inclusive)"}


def _signal(name: str, units: str) -> dict:
    return {"long_name": LONG_NAMES[name], "units": units}


def _read_box(ims, spec: MapSpec, frame_shape, tables=None) -> tuple[
        RoiSlices, RoiSlices | None, tuple[int, int]]:
    """(read box, ROI, binned shape) after checking the ROI, binning and rings; ``tables``
    (:class:`~.radial.RadialTables`) add their pixels' box."""
    boxes = [] if tables is None else [tables.box]
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
    return union_box(boxes), roi, (fy, fx)


def _frames_per_unit(frames_per_chunk, nframes: int, frame_bytes: int) -> tuple[int, int]:
    if frames_per_chunk == "auto":
        from .._graph import compute_threads

        return auto_unit_frames(nframes, frame_bytes, compute_threads())
    try:
        fpc = int(frames_per_chunk)
    except (TypeError, ValueError):
        fpc = 0
    if isinstance(frames_per_chunk, bool) or fpc < 1:
        raise InputError(f"must be a positive int or 'auto', got {frames_per_chunk!r}",
                         argument="frames_per_chunk")
    return min(fpc, nframes), 1


def plan_maps(ims, spec: MapSpec, scan: ScanGeometry, corrections: Corrections | None = None,
              frames_per_chunk: int | str = "auto",
              chunk_shape: tuple[int, int] | None = None) -> MapPlan:
    """Validate everything that can be checked before reading and lay the job out.

    ``chunk_shape`` forces the units' map region (to resume an output written with it).
    """
    nframes = len(ims)
    frame_shape = tuple(int(v) for v in ims.shape)
    unfilled = scan.check_nframes(nframes)
    if corrections is not None:
        corrections.check(frame_shape, nframes)
    tables = None
    if spec.radial is not None:
        tables = spec.radial.tables(frame_shape, None if corrections is None
                                    else corrections.mask)
    box, roi, binned = _read_box(ims, spec, frame_shape, tables)
    h, w = roi_shape(box)
    fpc, least = _frames_per_unit(frames_per_chunk, nframes,
                                  h * w * np.dtype(ims.block_dtype()).itemsize)
    if chunk_shape is None:
        chunk_shape = unit_chunk_shape(scan, fpc, least)
    return MapPlan(nframes, frame_shape, box, roi, spec.binning, binned, spec.rings, scan,
                   unfilled, fpc, tuple(int(v) for v in chunk_shape),
                   scan.point_to_frame(nframes), tables)
