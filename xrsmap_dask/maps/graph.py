"""Composite, ROI-sum and annulus maps as dask graphs, all from one read pass.

Conventions (see DESIGN.md and :mod:`xrsmap_dask.maps.settings`):

* maps are ``(npt_y, npt_x)``; the composite is 4-D ``(npt_y, npt_x, fy, fx)`` with
  ``fy, fx = roi rows / binning, roi cols / binning`` (:func:`~.kernels.mosaic` gives
  xrsmap's 2-D picture); the annulus stack is ``(nrings, npt_y, npt_x)``;
* sums are float64; the composite is ``Corrections.dtype`` (float32 by default).  A frame
  that could not be read (``on_error='fill'``) is NaN in the sums, ``dummy`` in the
  composite and flagged in ``frame_unreadable``; map points no frame reaches (incomplete
  scan) are NaN everywhere.

Structure: one read of the union bounding box of the ROI and the rings (``box``).  The map
is cut into *write units* (:mod:`xrsmap_dask.maps.layout`); the task of a unit
(``map-reduce-<token>``) reads the frames of its points through ``ims.block_source`` -- the
reader ``ims.to_dask(box)`` tasks use -- a few frames (~2 MiB) at a time into one reused,
cache-warm buffer, reduces each piece at once with :func:`~.kernels.reduce_block` and places
the results at their points (:class:`~.kernels.UnitMaps`): read, reduce and placement are
one task, and every input byte is read once for all maps.  ``fuse_reads=False`` reads each
unit's frames in a separate ``read-roi`` task first (same numbers, one more pass over
memory).  The dask arrays add one cheap selection per chunk and array;
:meth:`Maps.compute` and the store run the unit tasks alone.

>>> ims = imageseries.from_files(files)                                    # doctest: +SKIP
>>> spec = MapSpec(roi=(slice(256, 768), slice(256, 768)), binning=16,
...                rings=rings(cen_y=510, cen_x=530, radii=[180, 310], width=6))
>>> m = build_maps(ims, spec, ScanGeometry(41, 41), Corrections(mask=mask))
>>> comp, total, ann = dask.compute(m.composite, m.roi_sum, m.annulus_sum)
>>> m.compute()                                  # the same, one task per unit
>>> store.write_maps(m, "maps.zarr", ims)        # or straight to zarr, resumably
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import numpy as np

from .._graph import Graph, compute_units, token
from ..invalid import InvalidRule, resolve_invalid
from ..roi import RoiSlices, roi_shape
from ..scan import ScanGeometry
from .kernels import KernelParams, UnitMaps, reduce_block, ring_mask
from .layout import MapPlan, plan_maps, signal_units
from .settings import Corrections, MapSpec

#: bytes a fused task reads at once before reducing them (stays in the CPU cache)
FUSED_READ_BYTES = 2 * 2**20
#: file series: read whole rows into the block (one pread, no copy), crop the box as a view
WIDEN_FILE_READS = True

MAP_NAMES = ("composite", "roi_sum", "annulus_sum", "radial")


def _dead_bins(mask, roi, binning, binned_shape):
    if mask is None or roi is None:
        return None
    fy, fx = binned_shape
    dead = mask[roi].reshape(fy, binning, fx, binning).all(axis=(1, 3))
    return dead if dead.any() else None


def _ring_pixels(plan: MapPlan, mask):
    """(rows, cols, starts) of the rings' pixels in the box, rings concatenated."""
    from ..errors import InputError

    if not plan.rings:
        return None, None, None
    w = roi_shape(plan.box)[1]
    pieces = []
    for ring in plan.rings:
        m = ring_mask(ring, plan.box)
        if mask is not None:
            m &= ~mask
        pieces.append(np.flatnonzero(m.ravel()))
    empty = [k for k, p in enumerate(pieces) if len(p) == 0]
    if empty:
        raise InputError(f"rings {empty} hold only masked pixels", argument="rings")
    starts = np.cumsum([0] + [len(p) for p in pieces[:-1]]).astype(np.intp)
    rows, cols = np.divmod(np.concatenate(pieces).astype(np.intp), w)
    return rows, cols, starts


def kernel_params(plan: MapPlan, spec: MapSpec, corr: Corrections,
                  detect_bad: bool, invalid: InvalidRule | None = None) -> KernelParams:
    """What every unit task needs besides its frames (corrections cropped to the box)."""
    box = plan.box
    oy, ox = box[0].start, box[1].start

    def crop(a):
        return None if a is None else np.ascontiguousarray(a[box])

    mask = crop(corr.mask)
    if mask is not None and not mask.any():
        mask = None
    roi = None
    if plan.roi is not None:
        roi = (slice(plan.roi[0].start - oy, plan.roi[0].stop - oy),
               slice(plan.roi[1].start - ox, plan.roi[1].stop - ox))
    ring_rows, ring_cols, ring_starts = _ring_pixels(plan, mask)
    return KernelParams(roi, plan.binning, plan.binned_shape, spec.composite, spec.roi_sum,
                        ring_rows, ring_cols, ring_starts, crop(corr.dark), crop(corr.flat),
                        crop(corr.background), mask,
                        _dead_bins(mask, roi, plan.binning, plan.binned_shape),
                        corr.dummy, corr.dtype, detect_bad,
                        invalid=invalid if invalid is not None and invalid.active else None,
                        radial=None if plan.radial is None else plan.radial.kernel(box))


# ---------------------------------------------------------------------------------------
# task bodies


def _read_reduce_unit(sources, read_box: RoiSlices, params: KernelParams, norm, points,
                      region_shape):
    """Unit task: read the unit's frames a few at a time (``sources``), reduce each piece
    while it is still in the CPU cache and place it; ``{array name: block}``."""
    unit = UnitMaps.empty(region_shape[0] * region_shape[1], params)
    buf = None
    if sources and all(src.accepts_out for src in sources):
        rows, cols = read_box
        buf = np.empty((max(src.nframes for src in sources), rows.stop - rows.start,
                        cols.stop - cols.start), dtype=sources[0].dtype)
    k = 0
    for src in sources:
        n = src.nframes
        block = src.read(read_box) if buf is None else src.read(read_box, out=buf[:n])
        unit.place(reduce_block(block, params, None if norm is None else norm[k:k + n],
                                owned=buf is not None), points[k:k + n])
        k += n
    return unit.blocks(tuple(region_shape))


def _read_unit(sources, box: RoiSlices):
    """Unfused read task: the unit's frames, ``(frames, box rows, box cols)``."""
    return np.concatenate([src.read(box) for src in sources]) if sources else None


def _reduce_unit(block, params: KernelParams, norm, points, region_shape):
    """Unfused reduce task: reduce and place a block read by :func:`_read_unit`."""
    unit = UnitMaps.empty(region_shape[0] * region_shape[1], params)
    if block is not None:
        unit.place(reduce_block(block, params, norm), points)
    return unit.blocks(tuple(region_shape))


def _flagged_frames(point_to_frame, regions, *units):
    """Frame indices flagged unreadable by the units (``bad_found``)."""
    found = [point_to_frame[r][u["frame_unreadable"] != 0] for r, u in zip(regions, units)]
    return np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)


def _sources(ims, frames: np.ndarray, per: int | None):
    """Block sources of ``frames`` (ascending): runs of consecutive frames, each cut in
    pieces of at most ``per`` frames (``None``: whole runs)."""
    if len(frames) == 0:
        return []
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    out = []
    for run in np.split(frames, cuts):
        start, stop = int(run[0]), int(run[-1]) + 1
        step = per or (stop - start)
        out.extend(ims.block_source(s, min(stop, s + step)) for s in range(start, stop, step))
    return out


# ---------------------------------------------------------------------------------------
# graph


@dataclass(eq=False)
class Maps:
    """Lazy maps of one job (dask arrays; ``None`` for what was not asked).

    ``composite`` ``(npt_y, npt_x, fy, fx)``, ``roi_sum`` ``(npt_y, npt_x)`` float64,
    ``annulus_sum`` ``(nrings, npt_y, npt_x)`` float64, ``radial`` ``(nbins, npt_y, npt_x)``
    float64 (bin means); chunked by write units (:meth:`MapPlan.unit_region`), all from one
    shared read.  ``bad_frames`` lists ``(index, path, reason)`` known at open;
    :attr:`bad_found` is a dask array of the frame indices found unreadable while reading.
    ``axes`` (:class:`~.coords.ScanAxes`) gives the outputs' scan coordinates.
    """

    composite: object
    roi_sum: object
    annulus_sum: object
    plan: MapPlan
    spec: MapSpec
    corrections: Corrections
    bad_frames: list
    graph: Graph
    unit_name: str
    unit_tasks: list
    unit_deps: list
    series: object
    fuse_reads: bool = True
    radial: object = None
    axes: object = None
    #: the invalid-pixel rule resolved for the series' dtype
    invalid_rule: InvalidRule | None = None
    #: ``invalid`` attrs (rule and counts) of the last :meth:`compute`
    invalid_summary: dict | None = None

    @property
    def unfilled(self) -> int:
        return self.plan.unfilled

    def arrays(self) -> dict:
        """``{'composite': ..., 'roi_sum': ..., 'annulus_sum': ..., 'radial': ...}`` of the
        maps asked for."""
        return {k: v for k, v in zip(MAP_NAMES, (self.composite, self.roi_sum,
                                                 self.annulus_sum, self.radial))
                if v is not None}

    def layout(self):
        """The :class:`~xrsmap_dask.layout.OutputLayout` (arrays and unit regions)."""
        from .output import with_invalid_arrays

        return with_invalid_arrays(
            self.plan.output_layout(self.spec.composite, self.spec.roi_sum,
                                    self.corrections.dtype, axes=self.axes,
                                    units=signal_units(self.corrections)), self.invalid_rule)

    def compute(self, flags: bool = False, **compute_kwargs) -> dict:
        """The maps as numpy arrays (``dask.compute`` of the unit tasks alone, assembled
        here); ``flags=True`` adds ``frame_unreadable`` ``(npt_y, npt_x)`` uint8."""
        from .output import invalid_summary

        keys = [(self.unit_name, u) for u in range(self.plan.nchunks)]
        out = compute_units(self.layout(), self.graph.hlg(), keys, **compute_kwargs)
        self.invalid_summary = invalid_summary(self, out)
        names = MAP_NAMES + (("frame_unreadable",) if flags else ())
        return {k: v for k, v in out.items() if k in names}

    @property
    def bad_found(self):
        """dask array of the frame indices found unreadable while reading."""
        g = self.graph.copy()
        name = "bad-frames-" + self.unit_name.split("-")[-1]
        regions = [self.plan.unit_region(u) for u in range(self.plan.nchunks)]
        g.add(name, {(name, 0): (_flagged_frames, self.plan.point_to_frame, regions)
                     + tuple((self.unit_name, u) for u in range(self.plan.nchunks))},
              [self.unit_name])
        return g.array(name, ((np.nan,),), np.int64)

    def output_request(self, ims=None, attrs: dict | None = None):
        """What :func:`xrsmap_dask.store.write_output` writes (see :mod:`.output`)."""
        from .output import map_request

        return map_request(self, self.series if ims is None else ims, attrs)


def _token(ims, plan: MapPlan, spec: MapSpec, corr: Corrections, fuse: bool,
           rule: InvalidRule) -> str:
    box = plan.box
    return token(ims.token, rule.to_attrs(), box[0].start, box[0].stop, box[1].start, box[1].stop,
                      plan.frames_per_chunk, plan.chunk_shape, fuse,
                      spec.roi and (spec.roi[0].start, spec.roi[0].stop,
                                    spec.roi[1].start, spec.roi[1].stop),
                      spec.binning, spec.rings, spec.composite, spec.roi_sum,
                      corr.to_attrs(), plan.scan.to_attrs(),
                      None if spec.radial is None else spec.radial.to_attrs())


def _unit_tasks(ims, plan: MapPlan, params: KernelParams, pkey: str, corr: Corrections,
                g: Graph, tok: str, fuse: bool):
    """The task of every unit (and, unfused, the read layer)."""
    box = plan.box
    read_box = box
    if fuse and WIDEN_FILE_READS and ims.filenames is not None and \
            (box[1].start, box[1].stop) != (0, ims.shape[1]):
        # file reads fetch whole rows anyway (one pread): take them straight into the
        # block, no copy, and let the kernel see the box's columns as a view
        read_box = (box[0], slice(0, int(ims.shape[1])))
        params = replace(params, crop_cols=box[1])
        if plan.radial is not None and not params.needs_corrected:
            # the radial tables read the raw block: lay them on the whole rows read
            params = replace(params, radial=plan.radial.kernel(read_box))
    h, w = roi_shape(read_box)
    per = max(1, FUSED_READ_BYTES // (h * w * np.dtype(ims.block_dtype()).itemsize)) \
        if ims.filenames is not None else None
    rname = f"read-roi-{tok}"
    tasks, reads = [], {}
    for u in range(plan.nchunks):
        frames, points = plan.unit_frames(u)
        rows, cols = plan.unit_region(u)
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        norm = None if corr.norm is None else corr.norm[frames]
        if fuse:
            tasks.append((_read_reduce_unit, _sources(ims, frames, per), read_box, pkey, norm,
                          points, shape))
        else:
            reads[(rname, u)] = (_read_unit, _sources(ims, frames, None), box)
            tasks.append((_reduce_unit, (rname, u), pkey, norm, points, shape))
    g.add(pkey, {pkey: params})
    if not fuse:
        g.add(rname, reads)
    return tasks, [pkey] + ([] if fuse else [rname])


def build_maps(ims, spec: MapSpec, scan: ScanGeometry, corrections: Corrections | None = None,
               frames_per_chunk: int | str = "auto", fuse_reads: bool = True, *,
               chunk_shape: tuple[int, int] | None = None, axes=None) -> Maps:
    """Build the lazy maps of ``spec`` over ``ims`` (one read of the union bounding box).

    Parameters
    ----------
    ims : ImageSeries
        Frames in scan order (``len(ims)`` checked against ``scan``).
    spec : MapSpec
    scan : ScanGeometry
    corrections : Corrections, optional
    frames_per_chunk : int or 'auto'
        Frames per write unit (one task); rounded to the nearest whole number of scan lines
        when at least one line (:mod:`xrsmap_dask.maps.layout`).
    fuse_reads : bool
        ``True`` (default): each unit task reads its frames through ``ims.block_source`` a
        few at a time and reduces each piece at once; ``False``: a separate read task per
        unit (one more pass over memory).  Same results.
    chunk_shape : (rows, cols), optional
        Map region of a unit, overriding ``frames_per_chunk`` (to resume an output).
    axes : ScanAxes, optional
        Scan coordinates of the outputs (:class:`~xrsmap_dask.maps.coords.ScanAxes`: a
        step and origin, or measured motor positions; point indices without it).
    """
    corr = corrections if corrections is not None else Corrections()
    plan = plan_maps(ims, spec, scan, corr, frames_per_chunk, chunk_shape)
    rule = resolve_invalid(corr.invalid, ims.dtype, ims.block_dtype())
    params = kernel_params(plan, spec, corr, detect_bad=ims.on_error == "fill", invalid=rule)
    tok = _token(ims, plan, spec, corr, fuse_reads, rule)
    g = Graph()
    tasks, deps = _unit_tasks(ims, plan, params, f"map-params-{tok}", corr, g, tok,
                              fuse_reads)
    uname = g.add(f"map-reduce-{tok}",
                  {(f"map-reduce-{tok}", u): t for u, t in enumerate(tasks)}, deps)
    arrays = {}
    layout = plan.output_layout(spec.composite, spec.roi_sum, corr.dtype, axes=axes)
    for a in layout.arrays:  # the maps (bookkeeping arrays are the store's business)
        if a.name not in MAP_NAMES:
            continue
        name = f"{a.name.replace('_', '-')}-{tok}"
        g.add(name, {(name,) + layout.chunk_index(u, a.name):
                     (operator.getitem, (uname, u), a.name) for u in range(plan.nchunks)},
              [uname])
        chunks = tuple(_split(n, c) for n, c in zip(a.shape, a.chunks))
        arrays[a.name] = g.array(name, chunks, a.dtype)
    return Maps(arrays.get("composite"), arrays.get("roi_sum"), arrays.get("annulus_sum"),
                plan, spec, corr, list(ims.bad_frames), g, uname, tasks, deps, ims, fuse_reads,
                arrays.get("radial"), axes, rule)


def _split(n: int, c: int) -> tuple[int, ...]:
    full, rest = divmod(n, c)
    return (c,) * full + ((rest,) if rest else ())


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
    from .settings import rings

    spec = MapSpec(rings=rings(cen_y, cen_x, radii, width), composite=False, roi_sum=False)
    return build_maps(ims, spec, scan, corrections, frames_per_chunk).annulus_sum
