"""Pixel-wise statistics kernels over a stack of frames: numpy in, numpy out, no dask.

Shared by :mod:`xrsmap_dask.imageseries.stats` (hexrd-compatible, eager) and
:mod:`xrsmap_dask.stats` (dask graphs); it imports neither.  A *tile* is a stack
``(nframes, rows, cols)``; the frame axis (axis 0) is reduced.

Exact quantiles
---------------
Results equal ``np.median(tile, axis=0)`` / ``np.percentile(tile, q, axis=0, method=...)``
(and ``np.nanmedian`` / ``np.nanpercentile`` with ``skipna=True``) bit for bit, same dtype
(one exception: for float32 data with ``skipna`` and a list ``q`` numpy's own dtype varies
with the data, float32 or float64; we always give numpy's no-NaN dtype, equal values):
for ``method='linear'`` (numpy's default) and the median the order statistics are taken
from a sorted pixel-major copy and combined with numpy's own arithmetic (``_lerp``: ``a +
(b - a) t``, or ``b - (b - a)(1 - t)`` when ``t >= 0.5``; the median as the mean of the two
middle values); any other numpy ``method`` hands each group of equal-length sorted rows to
``np.percentile`` itself.  NaN: without ``skipna`` a pixel holding a NaN gives NaN (as numpy);
with ``skipna`` NaNs are dropped per pixel and an all-NaN pixel gives NaN.

How, and why (measured on the 2-core AMD EPYC of the benchmarks: AVX2, no AVX-512; numpy
2.4; one tile of 200 frames x 16 x 2048 pixels; thread CPU time, median of 7, ms):

=============================================  =====================  ====================
per tile                                       synth data (66..181)   wide data (0..65535)
=============================================  =====================  ====================
``np.median(tile, axis=0)``                     165                    163
previous kernel (sort in a uint16 buffer)       200                    203
**this kernel** (int32 buffer)                   44                     40
whole-tile transpose (numpy copy of ``.T``)      34                     29
sort pixel-major uint16 (no SIMD here)          186                    197
sort pixel-major uint16, ``kind='stable'``       40                     46
sort pixel-major int32 (AVX2 SIMD sort)          31                     21
``partition(k)`` int32 + max of lower part       31                     27
``partition([k-1, k])`` int32                    76                     77
``partition(k)`` uint16                          75                     73
counting (``bincount`` per pixel and value)     131                 14,000
=============================================  =====================  ====================

* numpy's SIMD sort of 16-bit integers needs AVX512_ICL; without it a uint16 sort is a plain
  introsort (186 ms).  Widening to int32 costs little when done in cache and gets the AVX2
  SIMD sort (21-31 ms): :func:`sort_dtype` widens 8/16-bit integers to int32, or keeps
  them (8-bit to int16) where :func:`native_16bit_sort` finds the CPU feature.  The values,
  hence every order statistic, are unchanged; numpy's own ``b - a`` (which wraps for signed
  8/16-bit data) is reproduced in the data's dtype.
* A stable (radix) sort of uint16 comes close (40-46 ms) but is slower than the int32 SIMD
  sort and does nothing for 8-bit or wider data.  Partitioning is no faster than sorting
  for one quantile (``partition(k)`` + the maximum of the lower part), slower for two
  (``[k-1, k]``), and one sort serves any number of percentiles.  Counting selection is
  slower on narrow data and hopeless on wide data (a histogram per pixel).
* Once the sort is fast the transpose to pixel-major dominates: it is cache-blocked
  (``FRAME_BLOCK`` = 8 frames of a ``BUFFER_BYTES`` block of pixels, sorted while hot), in
  the data's own dtype and widened afterwards (2x faster than converting while
  transposing).  Working memory: one pixel block, not a copy of the tile.
* Reads overlap with sorting across threads (each tile task reads its tile, then sorts:
  with two threads one reads while the other sorts).  End to end:
  ``benchmarks/bench_median.py`` (``make bench``).
"""
from __future__ import annotations

import math
import warnings
import numpy as np

#: frames transposed at a time (cache blocking of the transpose)
FRAME_BLOCK = 8
#: bytes of the pixel-major working buffer (pixels x frames): fits in L2
BUFFER_BYTES = 512 * 1024

#: integer dtypes numpy sorts with SIMD on every x86-64-v3 CPU (AVX2): 32 and 64 bits
_SIMD_SORT_BITS = (32, 64)

METHODS = ("inverted_cdf", "averaged_inverted_cdf", "closest_observation",
           "interpolated_inverted_cdf", "hazen", "weibull", "linear", "median_unbiased",
           "normal_unbiased", "lower", "higher", "midpoint", "nearest")


# -- helpers ----------------------------------------------------------------------------------
def quantile_result_dtype(dtype, q=None, method: str = "linear",
                          skipna: bool = False) -> np.dtype:
    """dtype numpy gives ``np.median`` (``q=None``) or ``np.percentile(.., q, method=)``
    (their ``nan`` variants with ``skipna``)."""
    probe = np.zeros((2, 1), dtype=dtype)
    if q is None:
        return (np.nanmedian if skipna else np.median)(probe, axis=0).dtype
    func = np.nanpercentile if skipna else np.percentile
    return func(probe, q, axis=0, method=method).dtype


def check_percentiles(q) -> np.ndarray:
    """``q`` as a float64 array (scalar or 1-D); ``ValueError`` outside [0, 100] or NaN."""
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"percentiles must be a scalar or a 1-D list, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("no percentile given")
    if not np.all((arr >= 0) & (arr <= 100)):
        raise ValueError(f"percentiles must be in [0, 100], got {q!r}")
    return arr


def percentiles_argument(q, argument: str):
    """``q`` checked for an API argument named ``argument``: a float or a list of floats in
    [0, 100]; anything else raises :class:`~xrsmap_dask.errors.InputError` naming it."""
    from .errors import InputError

    try:
        check_percentiles(q)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc), argument=argument) from None
    return q if np.ndim(q) == 0 else [float(v) for v in np.asarray(q, dtype=float)]


def native_16bit_sort() -> bool:
    """Whether this numpy sorts 16-bit integers with SIMD on this CPU (AVX512_ICL: Ice Lake
    or later, Zen 4 or later).  Without it a 16-bit sort is a plain introsort, ~8x slower."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # pragma: no cover - another numpy layout: assume the slow case
        return False
    return bool(__cpu_features__.get("AVX512_ICL")) and "AVX512_ICL" in __cpu_dispatch__


def sort_dtype(dtype, native16: bool | None = None) -> np.dtype:
    """dtype of the pixel-major working buffer for frames of ``dtype``.

    8- and 16-bit integers are widened (the values, hence every order statistic and the
    result, are unchanged) to the narrowest integer dtype numpy sorts with SIMD here:
    ``int32``, or ``int16`` for 8-bit data when ``native16`` (default:
    :func:`native_16bit_sort`); 16-bit data stays 16-bit when ``native16``.  Other dtypes
    are kept (floats, 32/64-bit integers: SIMD-sorted with AVX2 already).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize * 8 in _SIMD_SORT_BITS:
        return dtype
    if native16 is None:
        native16 = NATIVE_16BIT_SORT
    if native16:
        return dtype if dtype.itemsize == 2 else np.dtype(np.int16)
    return np.dtype(np.int32)


def pixel_major(flat: np.ndarray, j0: int, j1: int, out: np.ndarray,
                stage: np.ndarray | None = None) -> np.ndarray:
    """Copy pixels ``j0:j1`` of ``flat`` (frames, pixels) into ``out[:j1 - j0]`` as
    (pixels, frames), transposing ``FRAME_BLOCK`` frames at a time (cache blocking).

    With ``stage`` (a buffer of ``flat``'s dtype, at least as large as ``out``), the pixels
    are transposed in their own dtype into it and widened to ``out``'s dtype from there,
    in cache: twice as fast as converting while transposing."""
    n = flat.shape[0]
    dst = out[: j1 - j0, :n]
    tmp = dst if stage is None else stage[: j1 - j0, :n]
    for i in range(0, n, FRAME_BLOCK):
        tmp[:, i:i + FRAME_BLOCK] = flat[i:i + FRAME_BLOCK, j0:j1].T
    if stage is not None:
        dst[...] = tmp
    return dst


NATIVE_16BIT_SORT = native_16bit_sort()


def _pixel_block(nframes: int, itemsize: int) -> int:
    return int(max(64, BUFFER_BYTES // max(1, nframes * itemsize)))


# -- order statistics from sorted rows --------------------------------------------------------
def _median_sorted(s: np.ndarray, n: int, res_dtype: np.dtype,
                   data_dtype: np.dtype) -> np.ndarray:
    """Median of each row's first ``n`` (sorted) values, numpy's arithmetic on
    ``data_dtype`` values (mean of the middle one or two values in the mean's accumulator
    dtype: float64 for integers)."""
    k = n // 2
    acc = np.float64 if np.dtype(data_dtype).kind in "iub" else data_dtype
    if n % 2:
        return s[:, k].astype(res_dtype)
    lo = s[:, k - 1].astype(acc)
    hi = s[:, k].astype(acc)
    return (np.add(lo, hi) / 2).astype(res_dtype, copy=False)


def _linear_sorted(s: np.ndarray, n: int, qfrac: np.ndarray, weak_q: bool,
                   res_dtype: np.dtype, data_dtype: np.dtype) -> np.ndarray:
    """numpy's ``method='linear'`` quantiles of each row's first ``n`` sorted values.

    ``b - a`` is taken in the data's dtype, as numpy does (a widened buffer must not fix
    numpy's wrap-around for signed 8/16-bit data spanning more than half the range).
    Returns (nq, rows) for a 1-D ``qfrac``, (rows,) for a 0-d one."""
    out = []
    for qf in np.atleast_1d(qfrac):
        virtual = (n - 1) * qf
        prev = math.floor(virtual)
        nxt = prev + 1
        if virtual >= n - 1:
            prev = nxt = -1
        elif virtual < 0:
            prev = nxt = 0
        gamma = virtual - prev
        t = float(gamma) if weak_q else np.float64(gamma)
        a = s[:, prev if prev >= 0 else n - 1]
        b = s[:, nxt if nxt >= 0 else n - 1]
        diff = np.subtract(b, a, dtype=data_dtype, casting="unsafe")
        if t >= 0.5:
            r = b - diff * (1 - t)
        else:
            r = a + diff * t
        out.append(np.asarray(r).astype(res_dtype, copy=False))
    if np.ndim(qfrac) == 0:
        return out[0]
    return np.stack(out)


def _generic_sorted(s: np.ndarray, n: int, q, method: str, res_dtype: np.dtype,
                    data_dtype: np.dtype) -> np.ndarray:
    """Any numpy method: numpy itself on the (already sorted, so cheap) rows, in the data's
    dtype (numpy's arithmetic on it)."""
    rows = s[:, :n].astype(data_dtype, copy=False)
    if q is None:
        return np.median(rows, axis=1).astype(res_dtype, copy=False)
    r = np.percentile(rows, q, axis=1, method=method)
    return r.astype(res_dtype, copy=False)


def _rows_stat(s, n, q, qfrac, weak_q, method, res_dtype, data_dtype):
    if q is None and method == "linear":
        return _median_sorted(s, n, res_dtype, data_dtype)
    if method == "linear":
        return _linear_sorted(s, n, qfrac, weak_q, res_dtype, data_dtype)
    return _generic_sorted(s, n, q, method, res_dtype, data_dtype)


def _sorted_rows_stat(s: np.ndarray, dest: np.ndarray, skipna: bool, stat_args) -> None:
    """The statistic of each sorted row of ``s`` (pixels, frames) into ``dest`` (..., pixels):
    a row holding NaN (sorted last) gives NaN, or, with ``skipna``, the statistic of its
    non-NaN values (NaN when it has none)."""
    n = s.shape[1]
    nan_rows = np.isnan(s[:, -1]) if s.dtype.kind == "f" else None
    if nan_rows is None or not nan_rows.any():
        dest[...] = _rows_stat(s, n, *stat_args)
    elif not skipna:
        dest[...] = _rows_stat(s, n, *stat_args)
        dest[..., nan_rows] = np.nan
    else:
        counts = n - np.isnan(s).sum(axis=1)
        for c in np.unique(counts):
            rows = np.flatnonzero(counts == c)
            dest[..., rows] = np.nan if c == 0 else _rows_stat(s[rows], int(c), *stat_args)


def quantile_tile(tile: np.ndarray, q=None, *, method: str = "linear",
                  skipna: bool = False, work_dtype=None, data_dtype=None) -> np.ndarray:
    """Exact median (``q=None``) or percentile(s) ``q`` of a tile over its frame axis.

    Parameters
    ----------
    tile : ndarray (nframes, rows, cols)
        Any real dtype; not modified.
    q : None, float or sequence of float
        Percentile(s) in [0, 100]; ``None`` for the median.
    method : str
        numpy's quantile method (``'linear'`` default; the median with another method is
        its 50th percentile).
    skipna : bool
        Ignore NaNs (``np.nanmedian`` / ``np.nanpercentile`` semantics).
    work_dtype : dtype, optional
        dtype of the sorted pixel-major buffer; default :func:`sort_dtype` of the tile's
        (must hold every value of the tile exactly).
    data_dtype : dtype, optional
        dtype of the values the tile stands for (default the tile's; it must hold every
        value of the tile exactly): the result, its dtype and the interpolation are
        numpy's on ``tile.astype(data_dtype)``, while the sort stays in the tile's own
        (narrower) dtype.  E.g. float64 for a float32 tile of 16-bit integers read with
        NaN for unreadable frames: float64 results, interpolated in float64.

    Returns
    -------
    ndarray
        (rows, cols) for the median or a scalar ``q``; (len(q), rows, cols) for a list.
        dtype as numpy's for ``data_dtype`` (float64 for integer input; float32 stays
        float32 for the median and a Python-scalar ``q``).
    """
    tile = np.asarray(tile)
    if tile.ndim != 3:
        raise ValueError(f"expected a (frames, rows, cols) tile, got shape {tile.shape}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if q is None and method != "linear":
        q = 50.0
    weak_q = type(q) in (int, float)
    qfrac = None
    if q is not None:
        check_percentiles(q)
        qfrac = np.true_divide(q, 100)
    n, h, w = tile.shape
    if n == 0:
        raise ValueError("no frames to reduce")
    data_dtype = tile.dtype if data_dtype is None else np.dtype(data_dtype)
    res_dtype = quantile_result_dtype(data_dtype, q, method, skipna)
    shape = (h, w) if q is None or np.ndim(q) == 0 else (len(q), h, w)
    out = np.empty(shape[:-2] + (h * w,), dtype=res_dtype)
    flat = tile.reshape(n, h * w)
    work = sort_dtype(tile.dtype) if work_dtype is None else np.dtype(work_dtype)
    if not np.can_cast(tile.dtype, work, casting="safe"):
        raise ValueError(f"work_dtype {work} cannot hold every {tile.dtype} value")
    pb = _pixel_block(n, work.itemsize)
    buf = np.empty((min(pb, h * w), n), dtype=work)
    stage = None if work == tile.dtype else np.empty(buf.shape, dtype=tile.dtype)
    stat_args = (q, qfrac, weak_q, method, res_dtype, data_dtype)
    for j0 in range(0, h * w, pb):
        j1 = min(h * w, j0 + pb)
        s = pixel_major(flat, j0, j1, buf, stage)
        s.sort(axis=1)  # NaN sorts last
        _sorted_rows_stat(s, out[..., j0:j1], skipna, stat_args)
    return out.reshape(shape)


# -- simple reductions -------------------------------------------------------------------------
def max_tile(tile: np.ndarray) -> np.ndarray:
    """``np.max(tile, axis=0)`` (dtype kept)."""
    return np.max(tile, axis=0)


def min_tile(tile: np.ndarray) -> np.ndarray:
    """``np.min(tile, axis=0)`` (dtype kept)."""
    return np.min(tile, axis=0)


def mean_tile(tile: np.ndarray, skipna: bool = False, dtype=None) -> np.ndarray:
    """``np.mean(tile, axis=0)`` (``np.nanmean`` with ``skipna``); float64 for integers.
    ``dtype``: the accumulator and result dtype (numpy's ``dtype=``; default numpy's)."""
    if skipna and tile.dtype.kind == "f":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(tile, axis=0, dtype=dtype)
    return np.mean(tile, axis=0, dtype=dtype)


def stat_tile(tile: np.ndarray, stat: str, q=None, *, method: str = "linear",
              skipna: bool = False, data_dtype=None) -> np.ndarray:
    """Dispatch: ``stat`` in ``max``, ``min``, ``mean``, ``median``, ``percentile``.

    ``data_dtype`` (default the tile's; must hold every value of the tile exactly): the
    result is numpy's for ``tile.astype(data_dtype)``, values and dtype, without that copy
    (see :func:`quantile_tile`)."""
    data = tile.dtype if data_dtype is None else np.dtype(data_dtype)
    if stat in ("max", "min"):
        nan = skipna and tile.dtype.kind == "f"
        func = {"max": (max_tile, lambda t: np.nanmax(t, axis=0)),
                "min": (min_tile, lambda t: np.nanmin(t, axis=0))}[stat][nan]
        return func(tile).astype(data, copy=False)
    if stat == "mean":
        return mean_tile(tile, skipna, None if data_dtype is None else
                         (np.float64 if data.kind in "iub" else data))
    if stat == "median":
        return quantile_tile(tile, None, method=method, skipna=skipna, data_dtype=data)
    if stat == "percentile":
        return quantile_tile(tile, q, method=method, skipna=skipna, data_dtype=data)
    raise ValueError(f"unknown statistic {stat!r}")
