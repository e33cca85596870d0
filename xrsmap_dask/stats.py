"""Pixel-wise statistics of a frame stack as lazy dask graphs, in bounded memory.

>>> from xrsmap_dask import stats
>>> med = stats.median(sorted(glob.glob('scan/*.edf')), memory_budget=2**30)  # doctest: +SKIP
>>> med.compute()                                                    # (rows, cols) float64
>>> low = stats.percentile(ims, [5, 10], roi=(slice(0, 512), slice(None)))  # (2, 512, cols)
>>> bkg = stats.background(files, method='median')                   # numpy image, computed

``data`` is an :class:`~xrsmap_dask.imageseries.base.ImageSeries`, anything
:func:`~xrsmap_dask.imageseries.as_imageseries` accepts (a list of image paths, a glob, a
numpy stack), or a dask array ``(frames, rows, cols)``.  Frames (axis 0) are reduced; results
are ``(rows, cols)`` images, or ``(len(q), rows, cols)`` for a list of percentiles.  ``roi``
is numpy style ``(slice(y0, y1), slice(x0, x1))``, stop exclusive, rows from the top.

Median and percentile
---------------------
Exact (equal to ``np.median`` / ``np.percentile(.., axis=0, method=method)``, and to
``np.nanmedian`` / ``np.nanpercentile`` with ``skipna=True``; values and, except noted in
:mod:`xrsmap_dask._stat_kernels`, dtype).  The graph is one task per *pixel tile*, the frame
axis whole in each task: for an image series a tile task reads just its tile's rows (and
columns) from every frame, ``READ_BATCH`` frames per block read
(``ims.block_source(start, stop).read((rows, cols))``; EDF rows are contiguous, so this is
one positioned read per frame), into one ``(nframes, tile rows, tile cols)`` buffer, and
reduces it with the exact sort-based kernel (blocked transpose to pixel-major + SIMD sort;
the measurements that chose it are in :mod:`xrsmap_dask._stat_kernels`: about 7x
``np.median`` per tile, and 8x ``np.median`` / 2.8x ``dask.array.median`` end to end on 200
frames of 1024 x 1024 from EDF files, ``benchmarks/bench_median.py``).  There is no rechunk of the stack, and every
frame is read once in all.  Tasks are named ``median-tile-<token>`` /
``percentile-tile-<token>``.

Memory: ``memory_budget`` (bytes) is what the whole computation may hold at once.  A tile is
sized so that ``threads`` tasks running together fit: per task ``nframes x tile pixels x
itemsize`` (the buffer) + one read batch + the float64 output, with ``threads`` the
threads of the local scheduler (``dask.config num_workers`` or the CPU count) or, with an
active ``distributed`` client, the threads of its largest worker.  The default budget is
:data:`DEFAULT_BUDGET_FRACTION` of the machine's memory, or of the smallest worker's memory
limit with a distributed client.  Tiles are whole rows when a row of all frames fits,
otherwise parts of a row.

Generic dask arrays: when the array's own spatial chunks already fit the per-task budget,
its frame chunks are concatenated per spatial chunk (``rechunk({0: -1})``, no all-to-all:
each output block depends on one column of input blocks) and reduced per block.  Otherwise
each tile task computes ``x[:, tile]`` one frame chunk at a time with the synchronous
scheduler into its buffer: a task holds its tile buffer plus one computed input chunk at a
time (the input's chunk size is the caller's: dask's slicing optimisation makes array
sources such as zarr or HDF5 read just the tile, while other chunks, our own ``read-roi``
blocks included, are computed whole and sliced), and every input chunk is computed once per
tile it overlaps.  So pass the image series itself when you can.

max / min / mean
----------------
Ordinary dask tree reductions over frame-batched reads (``ims.to_dask``), chunks sized from
the budget.  ``max``/``min`` keep the dtype; ``mean`` is float64 for integer data (exact for
integers; floats equal ``np.mean`` to rounding, the summation order differs).

Integer data under ``on_error='fill'`` (an image series; its blocks are float, NaN for an
unreadable frame) or an active invalid rule: every statistic is numpy's on the float64
frames (float64, ``max``/``min`` included; quantiles interpolated in float64), see
:func:`values_dtype`.
"""
from __future__ import annotations

import builtins
import warnings
from typing import Any

import numpy as np

from . import _stat_kernels as K
from ._graph import array_from_tasks, layer_name
from ._stats_inputs import (_as_input, _budget, _check_method, _is_dask, _threads,
                            default_memory_budget)
from .errors import InputError
from .imageseries.base import ImageSeries
from .imageseries.stats import read_band
from .invalid import active_rule, nan_invalid, stat_dtype
from .roi import normalize_roi, roi_shape

#: default memory budget: this fraction of the machine's (or the smallest worker's) memory
DEFAULT_BUDGET_FRACTION = 0.25
#: frames per block read inside a tile task
READ_BATCH = 32
#: largest tile buffer (frames x tile pixels x itemsize) whatever the budget
MAX_TILE_BYTES = 64 * 2**20
#: at least this many tiles per thread when the frame has enough pixels (load balance)
MIN_TILES_PER_THREAD = 4

__all__ = ["max", "min", "mean", "median", "percentile", "background", "default_memory_budget",
           "plan_tiles", "lazy_stats", "stat_label", "stats_output", "compute_statistics",
           "skipna_for", "values_dtype"]


# -- planning ----------------------------------------------------------------------------------
def plan_tiles(nframes: int, roi_hw: tuple[int, int], itemsize: int, budget: int,
               threads: int, nq: int = 1,
               batch: int = READ_BATCH) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Row and column chunk sizes of the pixel tiles for a median/percentile graph.

    A tile task holds ``nframes x pixels x itemsize`` (its buffer) + ``batch x pixels x
    itemsize`` (one block read) + ``2 x nq x pixels x 8`` (result); ``threads`` tasks run
    at once within ``budget`` bytes.  Raises :class:`InputError` when not even one pixel
    per task fits.
    """
    h, w = roi_hw
    per_task = budget // builtins.max(1, threads)
    per_task -= builtins.min(K.BUFFER_BYTES, per_task // 8)  # the kernel's pixel-major buffer
    per_pixel = itemsize * (nframes + builtins.min(batch, nframes)) + 16 * nq
    pixels = per_task // per_pixel
    if pixels < 1:
        raise InputError(
            f"{budget} bytes for {threads} threads cannot hold one pixel of {nframes} frames "
            f"(needs about {(per_pixel + K.BUFFER_BYTES) * threads} bytes)",
            argument="memory_budget")
    # enough tiles to keep every thread busy (and tiles small enough to pipeline reads with
    # sorting): a tile task re-opens each file, which costs little next to its pixels
    pixels = builtins.min(pixels, builtins.max(1, MAX_TILE_BYTES // (itemsize * nframes)),
                          builtins.max(1, (h * w) // (MIN_TILES_PER_THREAD * threads)))
    if pixels >= w:
        th = int(builtins.min(h, pixels // w))
        tw = w
    else:
        th, tw = 1, int(pixels)
    return _even_chunks(h, th), _even_chunks(w, tw)


def _even_chunks(n: int, size: int) -> tuple[int, ...]:
    """``n`` split in ``ceil(n / size)`` chunks of near-equal sizes (each <= size)."""
    k = -(-n // builtins.max(1, size))
    base, extra = divmod(n, k)
    return tuple(base + 1 if i < extra else base for i in range(k))


def _offsets(chunks) -> list[int]:
    return [0] + list(np.cumsum(chunks)[:-1].tolist())


# -- task bodies (plain numpy, picklable arguments) --------------------------------------------
def _series_tile(ims: ImageSeries, rows: slice, cols: slice, nframes: int, stat: str, q,
                 method: str, skipna: bool, batch: int, invalid=None,
                 data_dtype=None) -> np.ndarray:
    """Read the tile ``rows x cols`` of every frame and reduce it over frames (pixels the
    ``invalid`` rule excludes are NaN in their frames; then ``skipna`` is true)."""
    tile = read_band(ims, rows, cols, nframes, batch=batch)
    return _block_stat(tile, stat, q, method, skipna, invalid, data_dtype)


def _block_stat(block: np.ndarray, stat: str, q, method: str, skipna: bool,
                invalid=None, data_dtype=None) -> np.ndarray:
    """``stat`` of ``block`` over frames, numpy's for ``data_dtype`` values (default the
    block's, or :func:`~xrsmap_dask.invalid.stat_dtype` under ``invalid``)."""
    if invalid is None:
        return K.stat_tile(block, stat, q, method=method, skipna=skipna,
                           data_dtype=data_dtype)
    data_dtype = stat_dtype(block.dtype if data_dtype is None else data_dtype, invalid)
    dtype = _result_dtype(data_dtype, stat, q, method, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # pixels excluded in every frame
        return K.stat_tile(nan_invalid(block, invalid), stat, q, method=method,
                           skipna=True, data_dtype=data_dtype).astype(dtype, copy=False)




class _Deferred:
    """Holds a dask collection as a plain task argument (dask must not schedule it as a
    dependency: the task computes it piecewise itself)."""

    def __init__(self, array):
        self.array = array


def _dask_tile(deferred: _Deferred, stat: str, q, method: str, skipna: bool,
              invalid=None, data_dtype=None) -> np.ndarray:
    """Compute ``x[:, tile]`` one frame chunk at a time (sync scheduler) into one buffer."""
    import dask

    sub = deferred.array
    out = np.empty(sub.shape, dtype=sub.dtype)
    start = 0
    for k, n in enumerate(sub.chunks[0]):
        (blk,) = dask.compute(sub.blocks[k], scheduler="sync")
        out[start:start + n] = blk
        start += n
    return _block_stat(out, stat, q, method, skipna, invalid, data_dtype)


# -- graph builders ----------------------------------------------------------------------------
def _source(src, roi, invalid=None) -> tuple:
    """``(x, (rows, cols), dtype, data_dtype, nframes)`` of a dask stack or an image
    series: ``x`` the stack restricted to the ROI (a dask array; None for a series, read
    tile by tile), ``dtype`` that of its blocks, ``data_dtype`` the dtype whose numpy
    statistics the results are (:func:`values_dtype` for a series)."""
    if _is_dask(src):
        rows, cols = normalize_roi(roi, src.shape[1:])
        x, dtype, nframes = src[:, rows, cols], np.dtype(src.dtype), int(src.shape[0])
        data_dtype = stat_dtype(dtype, invalid)
    else:
        rows, cols = normalize_roi(roi, src.shape)
        x, dtype, nframes = None, np.dtype(src.block_dtype()), len(src)
        data_dtype = values_dtype(src, invalid)
    if nframes == 0:
        raise InputError("no frames to reduce", argument="data")
    return x, (rows, cols), dtype, data_dtype, nframes


def _quantile_graph(data, stat: str, q, *, memory_budget, method, skipna, roi,
                    invalid=None):
    method = _check_method(method)
    invalid = active_rule(invalid)
    src = _as_input(data)
    budget = _budget(memory_budget)
    threads = _threads()
    nq = 1 if q is None or np.ndim(q) == 0 else len(q)
    listq = q is not None and np.ndim(q) == 1

    x, (rows, cols), dtype, data_dtype, nframes = _source(src, roi, invalid)
    res_dtype = K.quantile_result_dtype(data_dtype, q if q is not None or method == "linear"
                                        else 50.0, method, skipna or invalid is not None)
    hw = roi_shape((rows, cols))
    # an excluded pixel turns an integer tile into a float64 copy beside it
    itemsize = dtype.itemsize + (8 if invalid is not None and dtype.kind != "f" else 0)
    rchunks, cchunks = plan_tiles(nframes, hw, itemsize, budget, threads, nq)

    if _is_dask(src):
        fits = (builtins.max(x.chunks[1]) * builtins.max(x.chunks[2])
                <= rchunks[0] * cchunks[0])
        if fits:
            merged = x.rechunk({0: -1})
            if listq:
                return merged.map_blocks(_block_stat, stat, q, method, skipna, invalid,
                                         data_dtype, chunks=((nq,),) + merged.chunks[1:],
                                         dtype=res_dtype, name=f"{stat}-tile")
            return merged.map_blocks(_block_stat, stat, q, method, skipna, invalid,
                                     data_dtype, drop_axis=0, dtype=res_dtype,
                                     name=f"{stat}-tile")
    name = layer_name(
        f"{stat}-tile", src.name if _is_dask(src) else src.token, rows.start, rows.stop, cols.start,
        cols.stop, stat, q, method, skipna, rchunks, cchunks, dtype.str, data_dtype.str,
        None if invalid is None else invalid.to_attrs())
    dsk: dict[Any, Any] = {}
    series_key = None
    if not _is_dask(src):
        series_key = f"imageseries-{src.token}"
        dsk[series_key] = src
    for i, (r0, rh) in enumerate(zip(_offsets(rchunks), rchunks)):
        for j, (c0, cw) in enumerate(zip(_offsets(cchunks), cchunks)):
            trows = slice(rows.start + r0, rows.start + r0 + rh)
            tcols = slice(cols.start + c0, cols.start + c0 + cw)
            if series_key is not None:
                task = (_series_tile, series_key, trows, tcols, nframes, stat, q, method,
                        skipna, READ_BATCH, invalid, data_dtype)
            else:
                sub = _Deferred(x[:, r0:r0 + rh, c0:c0 + cw])
                task = (_dask_tile, sub, stat, q, method, skipna, invalid, data_dtype)
            key = (name, 0, i, j) if listq else (name, i, j)
            dsk[key] = task
    chunks = ((nq,), rchunks, cchunks) if listq else (rchunks, cchunks)
    return array_from_tasks(name, dsk, chunks, res_dtype)


def median(data, *, memory_budget: int | None = None, method: str = "linear",
           skipna: bool = False, roi=None, invalid=None):
    """Lazy exact pixel-wise median over frames, ``(rows, cols)``.

    Parameters
    ----------
    data : ImageSeries, list of paths, glob, numpy stack or dask array (frames, rows, cols)
    memory_budget : int, optional
        Bytes the computation may hold at once (see the module docstring); default
        :func:`default_memory_budget`.
    method : str
        numpy quantile method; ``'linear'`` (default) is ``np.median``; any other gives the
        50th percentile by that method.
    skipna : bool
        ``np.nanmedian`` semantics (NaNs ignored; an all-NaN pixel is NaN).
    roi : (slice, slice), optional
        numpy style, stop exclusive.
    invalid : InvalidRule, optional
        Invalid-pixel rule (:func:`xrsmap_dask.invalid.resolve_invalid`): the pixels
        holding its values are NaN in their frames and skipped (``np.nanmedian`` of the
        rest; NaN where a pixel is excluded in every frame); integer data give float64.
    """
    return _quantile_graph(data, "median", None, memory_budget=memory_budget, method=method,
                           skipna=skipna, roi=roi, invalid=invalid)


def percentile(data, q, *, memory_budget: int | None = None, method: str = "linear",
               skipna: bool = False, roi=None, invalid=None):
    """Lazy exact pixel-wise percentile(s) ``q`` (in [0, 100]) over frames.

    ``q`` a number -> ``(rows, cols)``; a list -> ``(len(q), rows, cols)``.  Equal to
    ``np.percentile(stack, q, axis=0, method=method)`` (``np.nanpercentile`` with
    ``skipna``).  Other arguments as :func:`median`; ``q`` outside [0, 100] raises
    :class:`InputError` (argument ``'q'``).
    """
    q = K.percentiles_argument(q, "q")
    return _quantile_graph(data, "percentile", q, memory_budget=memory_budget, method=method,
                           skipna=skipna, roi=roi, invalid=invalid)


def _frames_lazy(data, memory_budget, roi, invalid=None):
    """(frames, roi rows, roi cols) dask array with frame chunks sized from the budget;
    with an active ``invalid`` rule, excluded pixels NaN (integer data as float64); a
    series' blocks as its :func:`values_dtype` (float64 for integer data under fill)."""
    src = _as_input(data)
    invalid = active_rule(invalid)
    if _is_dask(src):
        rows, cols = normalize_roi(roi, src.shape[1:])
        return _nan_blocks(src[:, rows, cols], invalid)
    rows, cols = normalize_roi(roi, src.shape)
    budget = _budget(memory_budget)
    h, w = roi_shape((rows, cols))
    dtype = np.dtype(src.block_dtype())
    data_dtype = values_dtype(src, invalid)
    itemsize = dtype.itemsize + (data_dtype.itemsize if data_dtype != dtype else 0)
    # a block, its reduction temporaries and the tree's partial results: ~4 blocks per thread
    per_chunk = budget // (4 * _threads())
    fpc = int(builtins.max(1, builtins.min(len(src), per_chunk // builtins.max(1, h * w * itemsize))))
    return _nan_blocks(src.to_dask(roi=(rows, cols), frames_per_chunk=fpc), invalid,
                       data_dtype)


def _nan_blocks(x, invalid, dtype=None):
    """``x`` as ``dtype`` (default :func:`~xrsmap_dask.invalid.stat_dtype`; a cast that
    is exact: fill blocks hold the integers), the ``invalid`` pixels NaN (compared in the
    blocks as read)."""
    dtype = stat_dtype(x.dtype, invalid) if dtype is None else np.dtype(dtype)
    if invalid is None:
        return x if x.dtype == dtype else x.astype(dtype)
    return x.map_blocks(nan_invalid, invalid, dtype, dtype=dtype, name="invalid-nan")


def max(data, *, memory_budget: int | None = None, skipna: bool = False,  # noqa: A001
        roi=None, invalid=None):
    """Lazy pixel-wise maximum over frames (dtype kept; ``np.nanmax`` with ``skipna``;
    ``invalid`` as :func:`median`)."""
    return _reduce("max", data, memory_budget, skipna, roi, invalid)


def min(data, *, memory_budget: int | None = None, skipna: bool = False,  # noqa: A001
        roi=None, invalid=None):
    """Lazy pixel-wise minimum over frames (dtype kept; ``np.nanmin`` with ``skipna``;
    ``invalid`` as :func:`median`)."""
    return _reduce("min", data, memory_budget, skipna, roi, invalid)


def mean(data, *, memory_budget: int | None = None, skipna: bool = False, roi=None,
         invalid=None):
    """Lazy pixel-wise mean over frames (float64 for integers; ``np.nanmean`` with
    ``skipna``; ``invalid`` as :func:`median`)."""
    return _reduce("mean", data, memory_budget, skipna, roi, invalid)


def _reduce(stat: str, data, memory_budget, skipna: bool, roi, invalid):
    import dask.array as da

    x = _frames_lazy(data, memory_budget, roi, invalid)
    nan = skipna or active_rule(invalid) is not None
    func = {"max": (da.max, da.nanmax), "min": (da.min, da.nanmin),
            "mean": (da.mean, da.nanmean)}[stat][nan]
    return func(x, axis=0)


BACKGROUND_METHODS = ("mean", "median", "percentile")


def background(data, method: str = "mean", pct: float | None = None, *,
               memory_budget: int | None = None, roi=None, skipna: bool = False,
               scheduler: str | None = None) -> np.ndarray:
    """A background image (computed, numpy) from a set of frames, for the Mapper.

    ``method``: ``'mean'`` (xrsmap's background: mean of the background frames),
    ``'median'`` or ``'percentile'`` (then ``pct`` in [0, 100] is required, one number).
    Float64 for integer frames.  ``scheduler`` is passed to ``compute`` (default: dask's
    current one, the distributed client when one is active).
    """
    if method not in BACKGROUND_METHODS:
        raise InputError(f"must be one of {BACKGROUND_METHODS}, got {method!r}",
                         argument="method")
    if method == "percentile":
        if pct is None or np.ndim(pct) != 0:
            raise InputError("method='percentile' needs one percentile pct= in [0, 100]",
                             argument="pct")
        lazy = percentile(data, pct, memory_budget=memory_budget, roi=roi, skipna=skipna)
    elif pct is not None:
        raise InputError(f"pct is only used with method='percentile', not {method!r}",
                         argument="pct")
    elif method == "median":
        lazy = median(data, memory_budget=memory_budget, roi=roi, skipna=skipna)
    else:
        lazy = mean(data, memory_budget=memory_budget, roi=roi, skipna=skipna)
    kwargs = {} if scheduler is None else {"scheduler": scheduler}
    return np.asarray(lazy.compute(**kwargs))


def stat_label(name: str, q: float | None = None) -> str:
    """Output name of a statistic: ``median``, ``max``, ... or ``percentile_Q`` with ``Q``
    the shortest decimal that reads back as ``q`` (``percentile_5``, ``percentile_99.9``,
    ``percentile_12.3456789``): two different percentiles never share a label."""
    return name if q is None else \
        f"percentile_{np.format_float_positional(float(q), trim='-')}"


def lazy_stats(data, names=(), percentiles=(), *, roi=None, skipna: bool = False,
               memory_budget: int | None = None, invalid=None) -> dict:
    """``{label: lazy image}`` for the statistics ``names`` (``'median'``, ``'max'``,
    ``'min'``, ``'mean'``) and ``percentiles`` (each in [0, 100]) of ``data``, in that order;
    labels as :func:`stat_label`.  Arguments as :func:`median`."""
    funcs = {"median": median, "max": max, "min": min, "mean": mean}
    kw = dict(roi=roi, skipna=skipna, memory_budget=memory_budget, invalid=invalid)
    out = {}
    for name in names:
        if name not in funcs:
            raise InputError(f"unknown statistic {name!r}; known: {', '.join(funcs)}",
                             argument="stat")
        out[stat_label(name)] = funcs[name](data, **kw)
    for q in percentiles:
        q = K.percentiles_argument(q, "percentile")
        out[stat_label("percentile", q)] = percentile(data, q, **kw)
    return out


from ._stats_output import (_result_dtype, compute_statistics,  # noqa: E402
                            invalid_result_dtype, skipna_for, stats_output, values_dtype)
