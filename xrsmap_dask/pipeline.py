"""The per-scan pipeline every face runs: inputs -> corrections -> lazy maps and statistics
-> the store (or numpy, for in-memory ``Mapper`` calls).

It takes the validated settings objects of :mod:`xrsmap_dask.settings` (never raw options)
and raises :class:`~xrsmap_dask.errors.InputError` whose field names the calling face
relabels (:func:`xrsmap_dask.settings.relabel`).

>>> ims, maps = plan_scan(job)                 # headers read, sizes checked, graph built
>>> result = run_scan(job, executor)           # written to job.output_path, resumably
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .inputs import open_series, read_image, read_norm
from .settings import CorrectionSpec, ScanJob, StatsJob


# -- corrections -------------------------------------------------------------------------
def load_corrections(spec: CorrectionSpec, frame_shape=None, scheduler=None):
    """:class:`xrsmap_dask.maps.Corrections` from a :class:`CorrectionSpec`: images read
    (paths) or taken (arrays); the background image computed from its frames (``mean`` as
    xrsmap, ``median`` or a percentile, exact), itself dark/flat corrected.  Shapes are
    checked before the background frames are read (against ``frame_shape`` when given)."""
    from .maps import Corrections, background_image

    dark = read_image(spec.dark, "dark")
    flat = read_image(spec.flat, "flat")
    mask = read_image(spec.mask, "mask")
    bkg = spec.background
    background = None
    if bkg.image is not None:
        background = read_image(bkg.image, "background")
    elif bkg.frames:
        frames = open_series(list(bkg.frames))
        background = background_image(frames, bkg.method, bkg.pct, dark=dark, flat=flat,
                                      frame_shape=frame_shape, scheduler=scheduler)
    return Corrections(dark=dark, flat=flat, background=background, mask=mask,
                       norm=read_norm(spec.norm), dummy=spec.dummy, dtype=spec.dtype)


def with_detector_mask(corrections, ims, use: bool = True):
    """``corrections`` with the series' own detector mask (NeXus/Eiger ``pixel_mask``)
    joined to its mask (a pixel either excludes is excluded); unchanged when ``use`` is
    false or the series has none.  A mask of another shape is an error naming both."""
    from dataclasses import replace

    det = ims.detector_mask
    if not use or det is None:
        return corrections
    det = np.asarray(det, dtype=bool)
    if det.shape != tuple(ims.shape):
        raise InputError(f"the detector mask is {det.shape[0]} x {det.shape[1]}, the frames "
                         f"{ims.shape[0]} x {ims.shape[1]}", argument="detector_mask")
    mask = det if corrections.mask is None else (corrections.mask | det) \
        if corrections.mask.shape == det.shape else corrections.mask
    return replace(corrections, mask=mask)


# -- geometry and coordinates ----------------------------------------------------------------
def radial_spec(job: ScanJob):
    """The :class:`~xrsmap_dask.maps.RadialSpec` of a job whose rings or bins go through a
    detector geometry (a PONI file, read here with pyFAI; or pixels around the centre),
    else ``None`` (pixel rings are today's annuli)."""
    from .geometry import PixelGeometry, load_poni
    from .maps import RadialSpec

    g = job.geometry
    if not g.wanted or not (job.rings or g.radial_bins):
        return None
    if g.poni is not None:
        geo = load_poni(g.poni)
        positions = [r.position for r in job.rings]
    else:
        geo = PixelGeometry(*(g.centre or (job.rings[0].cen_y, job.rings[0].cen_x)))
        positions = [r.radius for r in job.rings]
    return RadialSpec(geo, g.unit, positions, [r.width for r in job.rings], g.radial_bins,
                      g.radial_range, g.chi, g.solid_angle, g.polarization)


def read_motor_positions(value) -> tuple[np.ndarray, str | None, tuple[str, str]]:
    """``(positions (frames, 2), units or None, (y name, x name))`` from what
    :func:`xrsmap_dask.maps.coords.parse_motor_positions` accepted: a ``(frames, 2)``
    array, a ``.npy`` file, a ``.csv``/``.txt`` table (two columns y, x; an optional header
    line names them) or two HDF5 datasets ``(file.h5:/y, file.h5:/x)`` (their ``units``
    attrs name the units)."""
    if isinstance(value, np.ndarray):
        return value, None, ("y", "x")
    if isinstance(value, tuple):
        import h5py

        cols, units, names = [], set(), []
        for spec in value:
            path, _, dset = spec.rpartition(":")
            try:
                with h5py.File(path, "r") as f:
                    ds = f[dset]
                    cols.append(np.asarray(ds[()], dtype=np.float64).ravel())
                    u = ds.attrs.get("units")
            except (OSError, KeyError, ValueError, TypeError) as exc:
                raise InputError(f"cannot read motor positions: {exc}", path=spec,
                                 argument="motor_positions") from None
            units.add(u.decode() if isinstance(u, bytes) else u)
            names.append(dset.rstrip("/").rsplit("/", 1)[-1])
        if len(cols[0]) != len(cols[1]):
            raise InputError(f"the y and x datasets hold {len(cols[0])} and {len(cols[1])} "
                             "positions", argument="motor_positions")
        units.discard(None)
        return np.stack(cols, axis=1), units.pop() if len(units) == 1 else None, tuple(names)
    return _read_position_table(value)


def _read_position_table(path: str):
    try:
        if path.lower().endswith(".npy"):
            return np.load(path, allow_pickle=False), None, ("y", "x")
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        sep = "," if "," in first else None
        head = [t.strip() for t in first.split(sep)]
        try:
            [float(t) for t in head]
            names, skip = ("y", "x"), 0
        except ValueError:
            names, skip = tuple(head[:2]), 1
        return np.loadtxt(path, delimiter=sep, skiprows=skip, ndmin=2), None, names
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read motor positions: {exc}", path=path,
                         argument="motor_positions") from None


def scan_axes(job: ScanJob):
    """The :class:`~xrsmap_dask.maps.ScanAxes` of a job (motor positions read now)."""
    from .maps import ScanAxes

    a = job.axes
    if a.motor_positions is None:
        return ScanAxes(a.step, a.origin, a.position_units)
    positions, units, names = read_motor_positions(a.motor_positions)
    return ScanAxes(units=a.position_units or units, positions=positions, names=names)


# -- maps --------------------------------------------------------------------------------
def check_frame_count(job: ScanJob, ims) -> int:
    """Points of the scan no frame reaches (0 for a complete scan); a frame count that does
    not fit the mesh is an :class:`InputError` on ``inputs``."""
    scan = job.scan
    try:
        return scan.check_nframes(len(ims))
    except InputError:
        fewer = len(ims) < scan.npoints
        raise InputError(
            f"the inputs hold {len(ims)} frames for a {scan.npt_y} x {scan.npt_x} scan "
            f"(@{{npt_y}} x @{{npt_x}}) of {scan.npoints} points"
            + ("; accept a partial scan with @{allow_incomplete}" if fewer else ""),
            argument="inputs") from None


def plan_scan(job: ScanJob, ims=None, progress=None, corrections=None, scheduler=None):
    """Open the scan's inputs (headers only, unless ``ims`` is given), check the frame count
    and build its lazy maps.  Returns ``(ims, maps)``; ``maps`` is ``None`` when only
    statistics were asked for.  ``corrections`` (already loaded) skips loading them."""
    from .maps import MapSpec, build_maps

    if ims is None:
        ims = open_series(job.inputs, on_error=job.on_error, progress=progress)
    check_frame_count(job, ims)
    if not job.has_maps:
        return ims, None
    if corrections is None:
        corrections = load_corrections(job.corrections, ims.shape, scheduler)
    corrections = with_detector_mask(corrections, ims, job.corrections.detector_mask)
    radial = radial_spec(job)
    spec = MapSpec(roi=job.roi_slices(ims.shape), binning=job.binning,
                   rings=() if radial is not None else job.rings, composite=job.composite,
                   roi_sum=job.roi_sum, radial=radial)
    return ims, build_maps(ims, spec, job.scan, corrections, job.frames_per_chunk,
                           axes=scan_axes(job))


def compute_maps(maps, scheduler=None) -> dict:
    """The maps as numpy arrays (``{'composite': ..., 'roi_sum': ..., 'annulus_sum': ...}``,
    those asked for), computed in memory."""
    kwargs = {} if scheduler is None else {"scheduler": scheduler}
    return maps.compute(**kwargs)      # the unit tasks alone (one per write unit)


# -- statistics ----------------------------------------------------------------------------
def lazy_statistics(ims, requests, roi=None, on_error: str = "raise") -> dict:
    """``{label: lazy image}`` of the requested statistics.  Under ``on_error='fill'``
    unreadable frames are NaN and every statistic skips them (decided here, once)."""
    from . import stats as lazy_stats

    return lazy_stats.lazy_stats(ims, [s.name for s in requests if s.q is None],
                                 [s.q for s in requests if s.q is not None], roi=roi,
                                 skipna=on_error == "fill")


def write_scan_stats(job: ScanJob, ims, path: str, executor, overwrite: bool = False) -> bool:
    """Write the scan's statistics to the group ``<path>/stats`` (tile by tile, under the
    output lock, resumably: :func:`xrsmap_dask.store.write_statistics`); False when they
    were already complete for the same inputs and statistics.  Statistics of other inputs
    are refused unless ``overwrite``; the group's ``complete`` attr is set last."""
    from .store import write_statistics

    with executor.progress():
        res = write_statistics(ims, os.path.join(path, "stats"),
                               [s.name for s in job.stats if s.q is None],
                               [s.q for s in job.stats if s.q is not None],
                               overwrite=overwrite, scheduler=executor.scheduler)
    return not res.skipped


def run_stats(job: StatsJob, executor) -> tuple:
    """Compute a :class:`StatsJob`: ``(ims, {label: image})`` (numpy images)."""
    ims = open_series(job.inputs, on_error=job.on_error,
                      progress=executor.counter("reading headers"))
    roi = None if job.roi is None else job.roi.to_slices(ims.shape)
    mask = stats_mask(job.mask, ims, job.detector_mask)
    lazy = lazy_statistics(ims, job.stats, roi, job.on_error)
    results = executor.compute(*lazy.values(),
                               label=f"{', '.join(lazy)} of {len(ims)} frames")
    if mask is not None:
        keep = mask if roi is None else mask[roi]
        results = [masked_image(img, keep) for img in results]
    return ims, dict(zip(lazy, results))


def stats_mask(mask, ims, detector_mask: bool = True):
    """The pixels a statistics job excludes: the ``mask`` image (nonzero = excluded) and,
    with ``detector_mask``, the series' own detector mask; ``None`` when nothing is."""
    from .maps import Corrections

    corr = with_detector_mask(Corrections(mask=read_image(mask, "mask")), ims, detector_mask)
    if corr.mask is not None:
        corr.check(ims.shape, len(ims))
    return corr.mask


def masked_image(img, mask) -> np.ndarray:
    """``img`` with the ``mask`` pixels (True) NaN: float64 for integer images (exact for
    every count), float images keep their dtype."""
    img = np.asarray(img)
    out = img.astype(np.float64 if img.dtype.kind != "f" else img.dtype, copy=True)
    out[..., mask] = np.nan
    return out


# -- NeXus ---------------------------------------------------------------------------------
def export_nexus(jobs, results) -> list[str]:
    """Export the complete map groups of ``jobs`` to their NeXus files (``job.nexus``; jobs
    sharing a file get one NXentry each, named by their group, a single job ``entry``).
    A file is (re)written when one of its scans was computed now or it does not exist;
    scans that failed are left out.  Returns the files written."""
    from .nexus_export import export_entries
    from .store import read_attrs

    files: dict = {}
    for job, res in zip(jobs, results):
        if job.nexus is not None:
            files.setdefault(job.nexus, []).append((job, res))
    written = []
    for path, members in files.items():
        done = [(j, r) for j, r in members if (read_attrs(j.output_path) or {}).get(
            "complete") is True and j.has_maps]
        fresh = any(r.status in ("done", "resumed") for _, r in members)
        if not done or (os.path.exists(path) and not fresh):
            continue
        entries = {"entry" if len(members) == 1 else (j.group or j.name): j.output_path
                   for j, _ in done}
        written.append(export_entries(entries, path, overwrite=True))
    return written


# -- one scan to its output ----------------------------------------------------------------
@dataclass
class ScanResult:
    """One row of a survey's summary table."""

    scan: str
    status: str            # done | resumed | skipped | failed | not run
    frames: int = 0
    bad_frames: int = 0
    seconds: float = 0.0
    retries: int = 0
    output: str = ""
    message: str = ""
    started: float = 0.0    # epoch seconds (not in the table)
    finished: float = 0.0

    def row(self) -> dict:
        return {"scan": self.scan, "status": self.status, "frames": self.frames,
                "bad_frames": self.bad_frames, "seconds": f"{self.seconds:.1f}",
                "retries": self.retries, "output": self.output, "message": self.message}


def run_scan(job: ScanJob, executor, overwrite: bool = False, ims=None) -> ScanResult:
    """Process one scan to ``job.output_path``: skip if complete, resume if not.

    ``ims`` is the scan's already opened series (opened now when omitted).
    """
    import zarr

    from .store import write_maps

    t0 = time.perf_counter()
    path = job.output_path
    faults_before = executor.retries
    result = ScanResult(job.name, "failed", output=path)
    ims, maps = plan_scan(job, ims, executor.counter(f"{job.name}: reading headers"),
                          scheduler=executor.scheduler)
    result.frames = len(ims)
    status = "skipped"
    bad: list = []
    if maps is not None:
        executor._say(f"{job.name}: {len(ims)} frames -> {path}")
        with executor.progress():
            res = write_maps(maps, path, ims, overwrite=overwrite, scheduler=executor.scheduler,
                             attrs={"scan_name": job.name})
        bad = res.bad_frames
        if not res.skipped:
            status = "done" if len(res.computed_chunks) == res.nchunks else "resumed"
    else:
        if overwrite and os.path.exists(path):
            import shutil

            shutil.rmtree(path)
        zarr.open_group(store=path, mode="a", zarr_format=3)
        bad = [[i, p, r] for i, p, r in ims.bad_frames]
    if job.stats:
        if write_scan_stats(job, ims, path, executor, overwrite=overwrite) and \
                status == "skipped":
            status = "resumed" if maps is not None else "done"
    if maps is None:
        from .store import consolidate, read_attrs, update_attrs

        group = zarr.open_group(store=path, mode="r+")
        if read_attrs(path).get("complete") is not True:
            update_attrs(group, {"bad_frames": bad, "scan_name": job.name})
            consolidate(path)
            update_attrs(group, {"complete": True})
    result.status = status
    result.bad_frames = len(bad)
    result.retries = executor.retries - faults_before
    result.seconds = time.perf_counter() - t0
    return result
