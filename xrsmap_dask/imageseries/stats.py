"""Pixel-wise statistics of an image series (hexrd's ``imageseries.stats``), exact and eager.

>>> from xrsmap_dask.imageseries import stats
>>> bkg = stats.median(ims)                       # doctest: +SKIP
>>> low = stats.percentile(ims, [5, 10], nframes=100)   # (2, rows, cols)   # doctest: +SKIP
>>> for img in stats.median_iter(ims, nchunks=10):       # progress bar hook  # doctest: +SKIP
...     pass

Every function takes an :class:`~xrsmap_dask.imageseries.base.ImageSeries` or a plain numpy
stack ``(frames, rows, cols)``; ``nframes=0`` means all frames, otherwise the first
``nframes``.  Results equal numpy's on the stacked frames: ``max``/``min`` are
``np.max``/``np.min(stack, axis=0)`` in the series dtype; ``average``, ``median`` and
``percentile`` are ``np.mean`` / ``np.median`` / ``np.percentile(stack, pct, axis=0)`` cast
to float32 (as hexrd returns them).  ``pct`` is a number in [0, 100] or a list of them (then
the result is ``(len(pct), rows, cols)``).

How: the frame is cut into row bands; a band is read from every frame (for EDF the rows of
a band are contiguous on disk, so one positioned read per frame and band) into one buffer
``(nframes, band rows, cols)`` and reduced with the kernels of
:mod:`xrsmap_dask._stat_kernels` (the median/percentile kernel is exact and several times
faster than ``np.median``).  Each frame is read once in all, unlike hexrd's chunked stats
that re-read whole frames for every chunk.  Memory: the band buffer, at most
:data:`BUFFER_BYTES` (bands shrink to fit; a band is at least one row).

The ``*_iter`` variants cut the frame into ``nchunks`` bands and yield after each band: the
image with one more band of pixels done (the rest zero), the last yield equal to the plain
function.  ``use_buffer=True`` reuses one band buffer; ``False`` allocates per band.
"""
from __future__ import annotations

import builtins
from typing import Iterator

import numpy as np

from .. import _stat_kernels as K
from ..errors import InputError
from .base import ImageSeries

#: memory the plain (non-iterator) functions use for one band of all frames
BUFFER_BYTES = 256 * 2**20
#: frames read per block read when filling a band buffer
READ_BATCH = 64

__all__ = ["max", "min", "average", "median", "percentile", "max_iter", "min_iter",
           "average_iter", "median_iter", "percentile_iter", "read_band"]


# -- inputs -------------------------------------------------------------------------------------
def _as_source(ims):
    """An ImageSeries or a 3-D numpy stack (2-D: one frame)."""
    if isinstance(ims, ImageSeries):
        return ims
    if isinstance(ims, np.ndarray):
        if ims.ndim == 2:
            return ims[None]
        if ims.ndim == 3:
            return ims
        raise InputError(f"expected a (frames, rows, cols) stack, got shape {ims.shape}",
                         argument="ims")
    from . import as_imageseries

    try:
        return as_imageseries(ims)
    except TypeError as exc:
        raise InputError(str(exc), argument="ims") from None


def _frame_shape(src) -> tuple[int, int]:
    return tuple(src.shape[1:]) if isinstance(src, np.ndarray) else tuple(src.shape)


def _read_dtype(src) -> np.dtype:
    if isinstance(src, np.ndarray):
        return src.dtype
    return np.dtype(src.block_dtype())


def _check_nframes(src, nframes) -> int:
    total = len(src)
    try:
        n = int(nframes)
    except (TypeError, ValueError):
        raise InputError(f"must be an int, got {nframes!r}", argument="nframes") from None
    if n < 0 or n > total:
        raise InputError(f"must be 0 (all frames) or 1..{total}, got {nframes}",
                         argument="nframes")
    if total == 0:
        raise InputError("the image series has no frames", argument="ims")
    return n or total


def _check_nchunks(nchunks) -> int:
    try:
        n = int(nchunks)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise InputError(f"must be a positive int, got {nchunks!r}", argument="nchunks")
    return n


def read_band(src, rows: slice, cols: slice, nframes: int, out: np.ndarray | None = None,
              batch: int = READ_BATCH) -> np.ndarray:
    """Rows ``rows`` x columns ``cols`` (numpy slices, stop exclusive) of frames
    ``0 .. nframes - 1`` as ``(nframes, band rows, band cols)``, read ``batch`` frames per
    block read (:meth:`ImageSeries.read_block`); into ``out`` when given."""
    h = rows.stop - rows.start
    w = cols.stop - cols.start
    if isinstance(src, np.ndarray):
        band = src[:nframes, rows, cols]
        if out is None:
            return band
        out[...] = band
        return out
    if out is None:
        out = np.empty((nframes, h, w), dtype=_read_dtype(src))
    for start in range(0, nframes, batch):
        stop = builtins.min(nframes, start + batch)
        out[start:stop] = src.read_block(start, stop, (rows, cols))
    return out


# -- driver -------------------------------------------------------------------------------------
_FLOAT32 = np.dtype("float32")


def _reduce_band(band: np.ndarray, stat: str, pct) -> np.ndarray:
    if stat == "max":
        return K.max_tile(band)
    if stat == "min":
        return K.min_tile(band)
    if stat == "average":
        return K.mean_tile(band)
    if stat == "median":
        return K.quantile_tile(band, None)
    return K.quantile_tile(band, pct)


def _out_dtype(src, stat: str) -> np.dtype:
    if stat in ("max", "min"):
        return _read_dtype(src)
    return _FLOAT32


def _bands_for_budget(nframes: int, shape, itemsize: int) -> int:
    per_row = nframes * shape[1] * itemsize
    rows = builtins.max(1, BUFFER_BYTES // builtins.max(1, per_row))
    return -(-shape[0] // rows)


def _run(ims, stat: str, nchunks: int | None, nframes, pct=None,
         use_buffer: bool = True) -> Iterator[np.ndarray]:
    """Check the arguments now, then return the band-by-band generator."""
    src = _as_source(ims)
    n = _check_nframes(src, nframes)
    shape = _frame_shape(src)
    dtype = _read_dtype(src)
    if nchunks is None:
        nchunks = _bands_for_budget(n, shape, dtype.itemsize)
    return _bands(src, stat, nchunks, n, shape, dtype, pct, use_buffer)


def _bands(src, stat, nchunks, n, shape, dtype, pct, use_buffer) -> Iterator[np.ndarray]:
    # yields the same array each time, filled one band further
    edges = np.linspace(0, shape[0], nchunks + 1).round().astype(int)
    out_shape = shape if pct is None or np.ndim(pct) == 0 else (len(pct),) + shape
    result = np.zeros(out_shape, dtype=_out_dtype(src, stat))
    cols = slice(0, shape[1])
    buf = None
    if use_buffer and not isinstance(src, np.ndarray):
        buf = np.empty((n, int(np.diff(edges).max()), shape[1]), dtype=dtype)
    for r0, r1 in zip(edges[:-1], edges[1:]):
        if r1 > r0:
            rows = slice(int(r0), int(r1))
            out = None if buf is None else buf[:, : r1 - r0]
            band = read_band(src, rows, cols, n, out=out)
            result[..., rows, :] = _reduce_band(band, stat, pct)
        yield result


def _last(it: Iterator[np.ndarray]) -> np.ndarray:
    result = None
    for result in it:
        pass
    return result


# -- hexrd API ----------------------------------------------------------------------------------
def max(ims, nframes: int = 0) -> np.ndarray:  # noqa: A001
    """Pixel-wise maximum of the first ``nframes`` frames (0: all); series dtype."""
    return _last(_run(ims, "max", None, nframes))


def min(ims, nframes: int = 0) -> np.ndarray:  # noqa: A001
    """Pixel-wise minimum of the first ``nframes`` frames (0: all); series dtype."""
    return _last(_run(ims, "min", None, nframes))


def average(ims, nframes: int = 0) -> np.ndarray:
    """Pixel-wise mean (``np.mean(stack, axis=0)``) as float32."""
    return _last(_run(ims, "average", None, nframes))


def median(ims, nframes: int = 0) -> np.ndarray:
    """Exact pixel-wise median (``np.median(stack, axis=0)``) as float32."""
    return _last(_run(ims, "median", None, nframes))


def percentile(ims, pct, nframes: int = 0) -> np.ndarray:
    """Exact pixel-wise percentile(s) (``np.percentile(stack, pct, axis=0)``, linear) as
    float32; ``pct`` a number in [0, 100] -> (rows, cols), a list -> (len(pct), rows, cols)."""
    return _last(_run(ims, "percentile", None, nframes, K.percentiles_argument(pct, "pct")))


def max_iter(ims, nchunks: int, nframes: int = 0,
             use_buffer: bool = True) -> Iterator[np.ndarray]:
    """:func:`max` in ``nchunks`` row bands, yielding after each band."""
    return _run(ims, "max", _check_nchunks(nchunks), nframes, None, use_buffer)


def min_iter(ims, nchunks: int, nframes: int = 0,
             use_buffer: bool = True) -> Iterator[np.ndarray]:
    """:func:`min` in ``nchunks`` row bands, yielding after each band."""
    return _run(ims, "min", _check_nchunks(nchunks), nframes, None, use_buffer)


def average_iter(ims, nchunks: int, nframes: int = 0,
                 use_buffer: bool = True) -> Iterator[np.ndarray]:
    """:func:`average` in ``nchunks`` row bands, yielding after each band."""
    return _run(ims, "average", _check_nchunks(nchunks), nframes, None, use_buffer)


def median_iter(ims, nchunks: int, nframes: int = 0,
                use_buffer: bool = True) -> Iterator[np.ndarray]:
    """:func:`median` in ``nchunks`` row bands, yielding after each band."""
    return _run(ims, "median", _check_nchunks(nchunks), nframes, None, use_buffer)


def percentile_iter(ims, pct, nchunks: int, nframes: int = 0,
                    use_buffer: bool = True) -> Iterator[np.ndarray]:
    """:func:`percentile` in ``nchunks`` row bands, yielding after each band."""
    return _run(ims, "percentile", _check_nchunks(nchunks), nframes, K.percentiles_argument(pct, "pct"),
                use_buffer)
