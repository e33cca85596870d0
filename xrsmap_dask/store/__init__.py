"""Zarr outputs of map and statistics jobs: written unit by unit, resumable, verifiable.

One zarr v3 group per output.  A map output holds

* ``composite`` ``(y, x, det_y, det_x)`` (float32 by default), ``roi_sum`` ``(y, x)``
  float64, ``annulus_sum`` ``(ring, y, x)`` and ``radial`` ``(bin, y, x)`` float64 (those
  asked for), with their coordinates written once: ``y``/``x`` (scan positions),
  ``det_y``/``det_x`` (detector pixels), ``ring``/``ring_width``, ``bin``/``radial_count``;
* ``frame_unreadable`` ``(y, x)`` uint8: 1 where the frame of the scan point could not be
  read (``on_error='fill'``);

a statistics output holds one ``(det_y, det_x)`` image per statistic (``median``, ``max``,
``percentile_5``, ...) with ``det_y``/``det_x``, and ``frame_unreadable`` ``(tile, frame)``
uint8.  Every map and image has ``long_name`` and ``units``.  Both hold the records
``chunk_index`` (which chunks each write unit writes), ``chunk_checksum`` (blake2b-64 of
every chunk file, recorded when written, as two int32 words) and ``chunk_done`` (1 per
finished unit, written last), all with the attr ``bookkeeping: 1``, every array with
``dimension_names``, the group attr ``coordinates`` naming what xarray shows as
coordinates, so ``xarray.open_zarr(path)`` opens it with named, labelled dims and only the
maps as data variables.  Group attrs: the job's identity (ROI, binning, rings, radial
bins, scan, corrections, statistics, a digest of the inputs, ...) and its ``job_digest``,
``layout``, ``output_kind`` (``maps``/``stats``), ``xrsmap_dask_format`` (2), the package
version and date, ``bad_frames`` ``[index, file, reason]`` and ``complete``: set to true
last, once every unit is done, every file fsynced and the metadata consolidated.  Attrs
that netCDF cannot hold (dicts, ``None``, bools, lists of strings) are JSON strings named
in ``json_attrs`` (:func:`xrsmap_dask.layout.encode_attrs`), so ``to_netcdf`` takes the
group as it is; :func:`read_attrs` decodes them.

Resume: rerunning the same job computes only the units not done, and redoes a done unit
whose chunk file is missing or altered; a complete output is left alone (unless damaged, or
``overwrite=True``); another job's output is refused.  One writer at a time: an ``flock`` on
``<real path>.lock`` (:class:`OutputLock`).  :func:`verify` checks an output without its
job.  See :mod:`.writer` for the protocol and ``overwrite``.
"""
from __future__ import annotations

import datetime
import os

from ..layout import ArraySpec, OutputLayout, OutputRequest, inputs_digest, jsonable
from .lock import OutputLock, OutputLockedError, real_output_path
from .output import write_output
from .paths import check_free_space, check_output_path, check_writable
from .chunks import consolidate
from .verify import OutputCheck, VerifyReport, verify
from .writer import StoreResult, read_attrs, update_attrs

__all__ = ["write_maps", "write_stats", "write_statistics", "write_output", "open_maps",
           "verify", "check_output_path", "check_writable", "check_free_space",
           "real_output_path", "OutputLock", "OutputLockedError", "StoreResult",
           "VerifyReport", "OutputCheck", "inputs_digest", "consolidate", "read_attrs",
           "update_attrs"]


def write_maps(maps, path, ims, *, overwrite: bool = False, scheduler=None,
               attrs: dict | None = None, **compute_kwargs) -> StoreResult:
    """Write the maps of a job to the zarr group ``path``, unit by unit, resumably.

    Parameters
    ----------
    maps : xrsmap_dask.maps.Maps
        The lazy maps (:func:`xrsmap_dask.maps.build_maps`); anything with an
        ``output_request(ims, attrs)`` method.
    path : str or PathLike
        Zarr group directory.
    ims : ImageSeries
        The series the maps were built from (inputs digest, bad frames).
    overwrite : bool
        Replace an existing output of ours (complete or not, same job or not) once the new
        one is complete.
    scheduler : str or distributed.Client, optional
        Passed to ``dask.compute``.
    attrs : dict, optional
        Extra JSON-able attrs (part of the job identity).

    Returns
    -------
    StoreResult
        ``skipped=True`` when the output was already complete.
    """
    return write_output(maps.output_request(ims, attrs), path, overwrite=overwrite,
                        scheduler=scheduler, **compute_kwargs)


def write_statistics(ims, path, names=(), percentiles=(), *, roi=None, mask=None,
                     memory_budget: int | None = None, overwrite: bool = False,
                     scheduler=None, attrs: dict | None = None, invalid=None,
                     **compute_kwargs) -> StoreResult:
    """The one entry point for pixel-wise statistics outputs (CLI ``stats`` and job specs).

    Statistics ``names`` (``median``, ``max``, ``min``, ``mean``) and ``percentiles`` of
    the image series ``ims`` over ``roi`` (numpy slices), written tile by tile to the zarr
    group ``path`` under the output lock, resumably, as maps are.  With
    ``ims.on_error == 'fill'`` every statistic skips the frames that could not be read and
    they are listed in ``bad_frames`` (see :func:`xrsmap_dask.stats.stats_output`).
    ``mask`` (frame shape, nonzero = excluded): those pixels are NaN in every image.
    ``attrs`` are extra JSON-able attrs (part of the identity).  ``invalid``: an
    invalid-pixel rule (:class:`xrsmap_dask.invalid.InvalidRule`): pixels holding its values
    are NaN in their frames and every statistic skips them.
    """
    from ..stats import stats_output

    request = stats_output(ims, names, percentiles, roi=roi, mask=mask,
                           memory_budget=memory_budget, extra=attrs, invalid=invalid)
    return write_output(request, path, overwrite=overwrite, scheduler=scheduler,
                        **compute_kwargs)


def _image_unit(label: str, image):
    return {label: image}


def write_stats(path, images: dict, attrs: dict | None = None,
                origin: tuple[int, int] = (0, 0), units: str = "counts") -> StoreResult:
    """Write already computed images ``{label: (rows, cols) array}`` as the zarr group
    ``path``, replacing an output of ours: one array per label, dims ``(det_y, det_x)``
    with their coordinates (detector pixels; ``origin`` is the frame pixel ``(row, col)``
    of image pixel ``(0, 0)``, e.g. a ROI's corner), group attrs ``stats`` (the labels)
    and ``attrs``; same protocol as every output (lock, checksums, ``complete`` last).
    Prefer :func:`write_statistics`, which computes and writes tile by tile."""
    import numpy as np

    from .. import __version__
    from ..layout import DETECTOR_DIMS, detector_axes

    images = {str(k): np.asarray(v) for k, v in images.items()}
    arrays = tuple(ArraySpec(label, DETECTOR_DIMS, img.shape, img.shape, img.dtype,
                             np.nan if img.dtype.kind == "f" else 0,
                             attrs={"long_name": f"{label} of the frames", "units": units})
                   for label, img in images.items())
    units_ = tuple({a.name: (slice(0, a.shape[0]), slice(0, a.shape[1]))} for a in arrays)
    if arrays:
        (h, w), (y0, x0) = arrays[0].shape, (int(v) for v in origin)
        arrays += tuple(detector_axes(slice(y0, y0 + h), slice(x0, x0 + w)))
    labels = list(images)
    request = OutputRequest(
        OutputLayout(arrays, units_), lambda u: (_image_unit, labels[u], images[labels[u]]),
        identity=jsonable({**(attrs or {}), "stats": labels}),
        attrs={"xrsmap_dask_version": __version__, "date": datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds")}, kind="stats")
    return write_output(request, path, overwrite=True)


def open_maps(path):
    """Open a map group with zarr (read only)."""
    import zarr

    return zarr.open_group(store=os.fspath(path), mode="r")
