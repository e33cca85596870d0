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
    if corrections.invalid != job.invalid:
        from dataclasses import replace

        corrections = replace(corrections, invalid=job.invalid)
    from .job_geometry import radial_spec, scan_axes

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
def invalid_rule(setting, ims):
    """The invalid-pixel rule ``setting`` means for the series ``ims`` (its file dtype,
    compared in the dtype its blocks are read in)."""
    from .invalid import resolve_invalid

    return resolve_invalid(setting, ims.dtype, ims.block_dtype())


def write_scan_stats(job: ScanJob, ims, path: str, executor, overwrite: bool = False) -> bool:
    """Write the scan's statistics to the group ``<path>/stats`` (tile by tile, under the
    output lock, resumably: :func:`xrsmap_dask.store.write_statistics`); False when they
    were already complete for the same inputs and statistics.  Statistics of other inputs
    are refused unless ``overwrite``; the group's ``complete`` attr is set last.

    Over the whole frame (the maps' ROI does not apply); the pixels the scan's corrections
    mask and, unless ``detector_mask: false``, the series' detector mask exclude are NaN,
    as with the CLI ``stats --mask`` (:func:`stats_mask`)."""
    from .store import write_statistics

    mask = stats_mask(job.corrections.mask, ims, job.corrections.detector_mask)
    with executor.progress():
        res = write_statistics(ims, os.path.join(path, "stats"),
                               [s.name for s in job.stats if s.q is None],
                               [s.q for s in job.stats if s.q is not None], mask=mask,
                               overwrite=overwrite, scheduler=executor.scheduler,
                               invalid=invalid_rule(job.invalid, ims))
    return not res.skipped


def run_stats(job: StatsJob, executor, overwrite: bool = False) -> tuple:
    """Compute a :class:`StatsJob` to its output: a ``.zarr`` output is written tile by
    tile under the output lock, resumably (:func:`xrsmap_dask.store.write_statistics`); an
    image file (``.edf``, ``.tif``, ``.npy``; one statistic) is written once computed, and
    only then replaces an existing file.  Returns ``(ims, {label: image})`` (numpy)."""
    from .stats import compute_statistics
    from .store import check_output_path, write_statistics

    ims = open_series(job.inputs, on_error=job.on_error,
                      progress=executor.counter("reading headers"))
    roi = None if job.roi is None else job.roi.to_slices(ims.shape)
    mask = stats_mask(job.mask, ims, job.detector_mask)
    names = [s.name for s in job.stats if s.q is None]
    qs = [s.q for s in job.stats if s.q is not None]
    check_output_path(job.output, input_paths(job.inputs, ims))
    executor._say(f"{', '.join(job.labels)} of {len(ims)} frames")
    with executor.progress():
        if job.output.rstrip("/").lower().endswith(".zarr"):
            write_statistics(ims, job.output, names, qs, roi=roi, mask=mask,
                             overwrite=overwrite, scheduler=executor.scheduler,
                             invalid=invalid_rule(job.invalid, ims),
                             attrs={"roi": None if job.roi is None else
                                    list(job.roi.as_tuple())})
            import zarr

            group = zarr.open_group(job.output, mode="r")
            return ims, {label: group[label][...] for label in job.labels}
        images = compute_statistics(ims, names, qs, roi=roi, mask=mask,
                                    invalid=invalid_rule(job.invalid, ims),
                                    scheduler=executor.scheduler)
    replace_output(job.output, lambda path: write_image(path, next(iter(images.values()))))
    return ims, images


def input_paths(inputs, ims=None) -> list[str]:
    """Every file or directory a job reads (for the output-overlap check): the resolved
    input paths, and the series' source files (frame files; HDF5 data files behind
    external links and virtual datasets, external raw files)."""
    from .imageseries import split_inner_path
    from .inputs import InputSpec

    if isinstance(inputs, InputSpec):
        paths = list(inputs.paths)
    elif isinstance(inputs, (str, os.PathLike)):
        paths = [split_inner_path(os.fspath(inputs))[0]]
    elif isinstance(inputs, (list, tuple)):
        paths = [os.fspath(p) for p in inputs]
    else:
        paths = []
    if ims is not None:
        paths.extend(ims.source_files)
    return paths


def replace_output(path: str, write) -> None:
    """Run ``write(path)`` under the output lock (one writer at a time, as for zarr outputs:
    :class:`~xrsmap_dask.store.OutputLock`) so that an existing output at ``path`` is
    replaced only once the new one is whole: the old one is moved aside first and put back
    if writing fails (a partial new output is removed); an ``OSError`` (no space left,
    permission) is an :class:`InputError` naming the path."""
    from .store import OutputLock

    with OutputLock(path):
        _replace_output(path, write)


def _replace_output(path: str, write) -> None:
    import shutil

    aside = None
    if os.path.lexists(path):
        aside = os.path.join(os.path.dirname(path) or ".",
                             f".{os.path.basename(path)}.xrsmap-old-{os.getpid()}")
        os.rename(path, aside)
    try:
        write(path)
    except BaseException as exc:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
        if aside is not None:
            os.rename(aside, path)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the output: {exc.strerror or exc}", path=path,
                             argument="output") from None
        raise
    if aside is not None:
        shutil.rmtree(aside) if os.path.isdir(aside) and not os.path.islink(aside) \
            else os.remove(aside)


def write_image(path: str, img) -> None:
    """Write one 2-D image: ``.npy`` (numpy), ``.edf``, ``.tif``/``.tiff`` (fabio)."""
    low = path.lower()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if low.endswith(".npy"):
        np.save(path, img, allow_pickle=False)
    elif low.endswith(".edf"):
        import fabio.edfimage

        fabio.edfimage.EdfImage(data=img).write(path)
    elif low.endswith((".tif", ".tiff")):
        import fabio.tifimage

        data = img.astype(np.float32) if img.dtype.kind == "f" else img
        fabio.tifimage.TifImage(data=data).write(path)
    else:
        raise InputError("unknown image type; use .zarr, .npy, .edf or .tif", path=path,
                         argument="output")


def stats_mask(mask, ims, detector_mask: bool = True):
    """The pixels a statistics job excludes: the ``mask`` image (nonzero = excluded) and,
    with ``detector_mask``, the series' own detector mask; ``None`` when nothing is."""
    from .maps import Corrections

    corr = with_detector_mask(Corrections(mask=read_image(mask, "mask")), ims, detector_mask)
    if corr.mask is not None:
        corr.check(ims.shape, len(ims))
    return corr.mask


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


def check_scan_outputs(job: ScanJob, ims, overwrite: bool = False) -> None:
    """Refuse, before anything is computed, outputs of ``job`` that would destroy an input
    (any file ``ims`` reads), that cannot be written (under a file, read-only), or a NeXus
    file that is not ours (unless ``overwrite``)."""
    from .nexus_export import check_nexus_output
    from .store import check_output_path, check_writable

    inputs = input_paths(job.inputs, ims)
    check_output_path(job.output_path, inputs)
    check_writable(job.output_path)
    if job.nexus:
        check_output_path(job.nexus, inputs)
        check_writable(job.nexus, directory=False)
        check_nexus_output(job.nexus, overwrite)


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
    check_scan_outputs(job, ims, overwrite)
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
