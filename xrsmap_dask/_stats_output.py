"""Pixel-wise statistics as an output request: all statistics from one read, tile by tile.

:func:`stats_output` lays the frame (or its ROI) out in pixel tiles
(:func:`xrsmap_dask.stats.plan_tiles`, within the memory budget); the task of a tile reads
that tile of every frame once (``read_band``) and computes every statistic asked for from
it, so :mod:`xrsmap_dask.store` writes statistics tile by
tile -- locked, resumable and checksummed as maps are.

The on_error decision lives here, once: with ``ims.on_error == 'fill'`` a frame that could
not be read is NaN, every statistic skips it (``np.nanmedian`` semantics, ``skipna``), and
each tile flags the frames that were NaN over the whole tile (``frame_unreadable``,
``(tile, frame)``), so the output lists every frame that failed while being read, not only
those known when the series was opened.
"""
from __future__ import annotations

import datetime
import warnings

import numpy as np

from . import _stat_kernels as K
from .errors import InputError
from .imageseries.stats import read_band
from .layout import (DETECTOR_DIMS, ArraySpec, OutputLayout, OutputRequest, bad_frame_list,
                     detector_axes, inputs_digest)
from .roi import normalize_roi, roi_shape

STAT_NAMES = ("median", "max", "min", "mean")


def skipna_for(ims) -> bool:
    """The one place deciding that statistics of a ``fill`` series skip NaN frames."""
    return ims.on_error == "fill"


def values_dtype(ims, invalid=None) -> np.dtype:
    """The dtype whose numpy statistics the statistics of the series ``ims`` are (values,
    dtype and arithmetic): the file's dtype, except float64 for integer data where NaN may
    stand in for values (under ``on_error='fill'``, whose float blocks hold the integers
    exactly, float32 for 16-bit data; with an active ``invalid`` rule).  So statistics of
    integer data are float64 then (``max``/``min`` too) and equal ``np.nanmedian`` /
    ``np.nanpercentile`` / ... of the float64 stack with those values NaN, the quantile
    interpolation done in float64.  Float data keep their dtype."""
    from .invalid import stat_dtype

    if skipna_for(ims) and np.dtype(ims.dtype).kind in "iub":
        return np.dtype(np.float64)
    return stat_dtype(ims.block_dtype(), invalid)


def stat_plan(names, percentiles) -> list[tuple[str, str, float | None]]:
    """``[(label, stat, q)]``: names first, then percentiles, duplicates dropped; labels
    as :func:`xrsmap_dask.stats.stat_label` (never two statistics under one label)."""
    from .stats import stat_label

    plan, seen = [], {}
    for name in names:
        if name not in STAT_NAMES:
            raise InputError(f"unknown statistic {name!r}; known: {', '.join(STAT_NAMES)}",
                             argument="stat")
        seen.setdefault(stat_label(name), (name, None))
    for q in percentiles:
        q = float(K.percentiles_argument(q, "percentile"))
        label = stat_label("percentile", q)
        if seen.get(label, ("percentile", q))[1] != q:
            raise InputError(f"percentiles {seen[label][1]!r} and {q!r} have the same label "
                             f"{label!r}", argument="percentile")
        seen.setdefault(label, ("percentile", q))
    for label, (stat, q) in seen.items():
        plan.append((label, stat, q))
    if not plan:
        raise InputError("no statistic asked for", argument="stat")
    return plan


def _result_dtype(dtype, stat: str, q, method: str, skipna: bool) -> np.dtype:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return K.stat_tile(np.zeros((2, 1, 1), dtype), stat, q, method=method,
                           skipna=skipna).dtype


def invalid_result_dtype(dtype, stat: str, q, method: str, invalid) -> np.dtype:
    """dtype of ``stat`` over frames of ``dtype`` under an active ``invalid`` rule: the
    NaN-skipping statistic once excluded pixels may be NaN (integer results float64)."""
    from .invalid import stat_dtype

    return _result_dtype(stat_dtype(dtype, invalid), stat, q, method, True)


def _stats_tile(ims, rows: slice, cols: slice, nframes: int, plan, dtypes, method: str,
                skipna: bool, detect_bad: bool, batch: int, excluded=None,
                invalid=None, data_dtype=None) -> dict:
    """Unit task: read tile ``rows x cols`` of every frame once; every statistic of it
    (NaN at the ``excluded`` pixels of the tile, when given; pixels the ``invalid`` rule
    excludes are NaN in their frames and skipped), numpy's for ``data_dtype`` values
    (:func:`values_dtype`)."""
    from .invalid import nan_invalid

    tile = read_band(ims, rows, cols, nframes, batch=batch)
    flags = np.zeros((1, nframes), np.uint8)
    if detect_bad and tile.dtype.kind == "f" and tile.size:
        flags[0] = np.isnan(tile).all(axis=(1, 2))   # before excluded pixels become NaN
    if invalid is not None:
        tile = nan_invalid(tile, invalid)
        skipna = True
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN pixels under fill
        for (label, stat, q), dtype in zip(plan, dtypes):
            # one q per call: a scalar q gives exactly np.percentile(x, q) (a list of q
            # computes in float64 and would differ in the last bit for float32 frames)
            out[label] = K.stat_tile(tile, stat, q, method=method, skipna=skipna,
                                     data_dtype=data_dtype).astype(dtype, copy=False)
            if excluded is not None:
                out[label][excluded] = np.nan
    out["frame_unreadable"] = flags
    return out


def _tile_shape(ims, nframes, hw, itemsize, memory_budget, nq) -> tuple[int, int]:
    from .stats import _budget, _threads, plan_tiles

    rchunks, cchunks = plan_tiles(nframes, hw, itemsize, _budget(memory_budget), _threads(),
                                  nq)
    return rchunks[0], cchunks[0]


def stat_long_name(stat: str, q: float | None) -> str:
    """``long_name`` of a statistics image."""
    what = f"{q:g}th percentile" if stat == "percentile" else \
        {"mean": "mean", "median": "median", "max": "maximum", "min": "minimum"}[stat]
    return f"pixel-wise {what} of the frames"


def _layout(plan, dtypes, roi, tile, nframes) -> OutputLayout:
    (h, w), (th, tw) = roi_shape(roi), tile
    arrays = [ArraySpec(label, DETECTOR_DIMS, (h, w), (th, tw), dt,
                        np.nan if np.dtype(dt).kind == "f" else 0,
                        attrs={"long_name": stat_long_name(stat, q), "units": "counts"})
              for (label, stat, q), dt in zip(plan, dtypes)]
    gy, gx = -(-h // th), -(-w // tw)
    arrays.append(ArraySpec("frame_unreadable", ("tile", "frame"), (gy * gx, nframes),
                            (1, nframes), "uint8", 0,
                            attrs={"long_name": "frame unreadable in the tile (1)",
                                   "units": "1",
                                   "description": "1 where the frame was NaN over the whole "
                                                  "tile (could not be read, on_error='fill')",
                                   "bookkeeping": 1}))
    units = []
    for i in range(gy):
        for j in range(gx):
            region = (slice(i * th, min(h, (i + 1) * th)), slice(j * tw, min(w, (j + 1) * tw)))
            u = len(units)
            units.append({**{a.name: region for a in arrays[:-1]},
                          "frame_unreadable": (slice(u, u + 1), slice(0, nframes))})
    return OutputLayout(tuple(arrays + detector_axes(*roi)), tuple(units))


def _excluded(mask, ims, roi):
    """The mask (True = excluded) checked against the frames; None when it excludes nothing
    in the ROI."""
    if mask is None:
        return None
    mask = np.asarray(mask) != 0
    if mask.shape != tuple(ims.shape):
        raise InputError(f"the mask is {mask.shape} and the frames {tuple(ims.shape)}",
                         argument="mask")
    return mask if mask[roi].any() else None


def stats_output(data, names=(), percentiles=(), *, roi=None,
                 memory_budget: int | None = None, method: str = "linear", mask=None,
                 extra: dict | None = None,
                 tile_shape: tuple[int, int] | None = None, invalid=None) -> OutputRequest:
    """The statistics ``names`` and ``percentiles`` of ``data`` (an image series, or what
    :func:`~xrsmap_dask.imageseries.as_imageseries` takes) as an
    :class:`~xrsmap_dask.layout.OutputRequest`: one ``(row, col)`` image per statistic over
    ``roi`` (numpy slices, stop exclusive), written tile by tile.  ``mask`` (frame shape,
    nonzero = excluded) makes those pixels NaN in every image (integer statistics become
    float64 then).  ``tile_shape`` forces the tiles (to resume an output); ``extra`` joins
    the identity.  Values equal :func:`xrsmap_dask.stats.median` and friends; ``skipna``
    follows :func:`skipna_for`.  ``invalid`` (an :class:`~xrsmap_dask.invalid.InvalidRule`):
    pixels holding its values are NaN in their frames and every statistic skips them
    (integer statistics become float64).  Values and dtypes are numpy's on
    :func:`values_dtype` data (float64 for integer data under ``on_error='fill'``).
    """
    from .invalid import active_rule
    from .stats import READ_BATCH, _check_method

    ims = _series_of(data)
    method = _check_method(method)
    plan = stat_plan(names, percentiles)
    nframes = len(ims)
    rows, cols = normalize_roi(roi, ims.shape)
    hw = roi_shape((rows, cols))
    dtype = np.dtype(ims.block_dtype())
    skipna = skipna_for(ims)
    invalid = active_rule(invalid)
    excluded = _excluded(mask, ims, (rows, cols))
    data_dtype = values_dtype(ims, invalid)
    dtypes = _stat_dtypes(data_dtype, plan, method, skipna or invalid is not None,
                          excluded is not None)
    # an excluded pixel turns an integer tile into a float64 copy beside it
    itemsize = dtype.itemsize + (8 if invalid is not None and dtype.kind != "f" else 0)
    tile = tuple(tile_shape) if tile_shape else \
        _tile_shape(ims, nframes, hw, itemsize, memory_budget, len(plan))
    layout = _layout(plan, dtypes, (rows, cols), tile, nframes)
    skey = f"imageseries-{ims.token}"

    def unit_task(u):
        r, c = layout.region(u, plan[0][0])
        trows = slice(rows.start + r.start, rows.start + r.stop)
        tcols = slice(cols.start + c.start, cols.start + c.stop)
        return (_stats_tile, skey, trows, tcols, nframes, plan, dtypes, method, skipna,
                skipna, READ_BATCH, None if excluded is None else excluded[trows, tcols],
                invalid, data_dtype)

    def summarize(arrays: dict) -> dict:
        flagged = np.flatnonzero(np.asarray(arrays["frame_unreadable"]).any(axis=0))
        return {"bad_frames": bad_frame_list(ims, flagged)}

    def relayout(stored: dict):
        try:
            chunks = stored["layout"]["arrays"][plan[0][0]]["chunks"]
        except (KeyError, TypeError):
            return None
        return stats_output(ims, names, percentiles, roi=roi, memory_budget=memory_budget,
                            method=method, mask=mask, extra=extra, tile_shape=tuple(chunks),
                            invalid=invalid)

    from dask.highlevelgraph import HighLevelGraph

    return OutputRequest(layout, unit_task, HighLevelGraph({skey: {skey: ims}}, {skey: set()}),
                         _identity(ims, plan, method, skipna, (rows, cols), excluded,
                                   extra if invalid is None else
                                   {"invalid": invalid.to_attrs(), **(extra or {})}),
                         _attrs(tile), summarize, ("frame_unreadable",), relayout,
                         tuple(ims.source_files), kind="stats",
                         task_name="stats-tile-write")


def _series_of(data):
    """The image series a statistics output reads (not a dask array; at least one frame)."""
    from .stats import _as_input, _is_dask

    ims = _as_input(data)
    if _is_dask(ims):
        raise InputError("a statistics output reads an image series (files, HDF5, ...), "
                         "not a dask array", argument="data")
    if len(ims) == 0:
        raise InputError("no frames to reduce", argument="data")
    return ims


def _stat_dtypes(data_dtype: np.dtype, plan, method: str, skipna: bool,
                 masked: bool) -> list[np.dtype]:
    """Each statistic's output dtype: numpy's for ``data_dtype`` values
    (:func:`values_dtype`), float64 where a mask must make an integer statistic NaN."""
    dtypes = [_result_dtype(data_dtype, stat, q, method, skipna) for _, stat, q in plan]
    if masked:
        dtypes = [d if d.kind == "f" else np.dtype("float64") for d in dtypes]
    return dtypes


def _identity(ims, plan, method: str, skipna: bool, roi, excluded, extra) -> dict:
    import hashlib

    rows, cols = roi
    mask = None if excluded is None else {
        "shape": list(excluded.shape), "excluded": int(excluded.sum()),
        "sha1": hashlib.sha1(np.packbits(excluded).tobytes()).hexdigest()}
    return {"stats": [label for label, _, _ in plan], "method": method, "skipna": skipna,
            "mask": mask,
            "roi": {"rows": [rows.start, rows.stop], "cols": [cols.start, cols.stop],
                    "convention": "numpy slices, rows from the top, stop exclusive"},
            "frame_shape": list(ims.shape), "nframes": len(ims),
            "inputs_digest": inputs_digest(ims), "on_error": ims.on_error,
            "convention": "pixel-wise over all frames; frame rows x cols", **(extra or {})}


def _attrs(tile) -> dict:
    from . import __version__

    return {"tile_shape": list(tile), "xrsmap_dask_version": __version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def compute_statistics(data, names=(), percentiles=(), *, roi=None,
                       memory_budget: int | None = None, method: str = "linear", mask=None,
                       invalid=None, **compute_kwargs) -> dict:
    """``{label: image}`` (numpy) of :func:`stats_output`'s statistics, without writing
    them (one read of every tile for all statistics; ``compute_kwargs`` go to
    ``dask.compute``)."""
    from ._graph import compute_request

    request = stats_output(data, names, percentiles, roi=roi, memory_budget=memory_budget,
                           method=method, mask=mask, invalid=invalid)
    out = compute_request(request, "stats-tile", **compute_kwargs)
    out.pop("frame_unreadable")
    return out
