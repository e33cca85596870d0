"""Pixel-wise statistics of an image series (hexrd's ``imageseries.stats``), exact and eager.

>>> from xrsmap_dask.imageseries import stats
>>> bkg = stats.median(ims)                                # doctest: +SKIP
>>> low = stats.percentile(ims, [5, 10], nframes=100)      # (2, rows, cols)  # doctest: +SKIP
>>> for img in stats.average_iter(ims, 10):                # progress bar hook  # doctest: +SKIP
...     pass

Every function takes one of our series, any hexrd-style series object (``len``, ``[int]``,
``shape``, ``dtype``) or a numpy stack ``(frames, rows, cols)``.  ``nframes=0`` means all
frames, otherwise the first ``nframes`` (clamped to the series length, as hexrd does).

Results equal numpy's on the stacked frames: ``max``/``min`` are ``np.max``/``np.min(stack,
axis=0)`` in the series dtype; ``sum`` is ``np.sum(stack, axis=0)`` in float64;
``average``, ``median`` and ``percentile`` are ``np.mean`` / ``np.median`` /
``np.percentile(stack, pctl, axis=0)`` as float32.  ``pctl`` is a number in [0, 100] or a
list of them (then the result is ``(len(pctl), rows, cols)``).

Iterators (what hexrd's yield, as new arrays each time):

- ``max_iter``, ``min_iter``, ``sum_iter``, ``average_iter`` (``nchunk``): the frames are cut
  into ``nchunk`` consecutive groups (:func:`_chunk_stops`); after each group the running
  result over all frames so far is yielded (the average divides by the frames so far).
- ``median_iter``, ``percentile_iter`` (``nchunks``): the frame is cut into ``nchunks`` row
  bands; after each band the image with the rows done so far is yielded (the rest 0).

How: frames are read in batches (:meth:`ImageSeries.read_block`), never one at a time, and
each frame only once.  Median/percentile read a band of rows of every frame into one buffer
(for EDF one positioned read per frame and band) and reduce it with the exact kernels of
:mod:`xrsmap_dask._stat_kernels`; memory is at most :data:`STATS_BUFFER` bytes for the band
(bands shrink to fit; a band is at least one row).
"""
from __future__ import annotations

import builtins
from typing import Iterator

import numpy as np

from .. import _stat_kernels as K
from ..errors import InputError
from .base import ImageSeries

#: memory used for one band of all frames (median/percentile); hexrd's name
STATS_BUFFER = 256 * 2**20
BUFFER_BYTES = STATS_BUFFER  # earlier name
#: frames read per block read
READ_BATCH = 64

__all__ = ["max", "min", "sum", "average", "median", "percentile", "max_iter", "min_iter",
           "sum_iter", "average_iter", "median_iter", "percentile_iter", "read_band"]

_FLOAT32 = np.dtype("float32")


# -- inputs -------------------------------------------------------------------------------------
def _as_source(ims):
    """A 3-D numpy stack (2-D: one frame) or a series (hexrd-style objects wrapped)."""
    if isinstance(ims, np.ndarray):
        if ims.ndim == 2:
            return ims[None]
        if ims.ndim == 3:
            return ims
        raise InputError(f"expected a (frames, rows, cols) stack, got shape {ims.shape}",
                         argument="ims")
    if isinstance(ims, ImageSeries):
        return ims
    from . import as_imageseries

    return as_imageseries(ims)


def _frame_shape(src) -> tuple[int, int]:
    return tuple(src.shape[1:]) if isinstance(src, np.ndarray) else tuple(src.shape)


def _read_dtype(src) -> np.dtype:
    return src.dtype if isinstance(src, np.ndarray) else np.dtype(src.block_dtype())


def _nframes(src, nframes) -> int:
    """Frames to use: all for ``nframes=0``, else ``min(nframes, len)`` (hexrd clamps)."""
    total = len(src)
    if isinstance(nframes, bool) or not isinstance(nframes, (int, np.integer)):
        raise InputError(f"must be an int, got {nframes!r}", argument="nframes")
    if nframes < 0:
        raise InputError(f"must be 0 (all frames) or positive, got {nframes}",
                         argument="nframes")
    if total == 0:
        raise InputError("the image series has no frames", argument="ims")
    return builtins.min(total, int(nframes)) if nframes else total


def _chunk_count(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"must be a positive int, got {value!r}", argument=argument)
    return int(value)


def _pick(value, alias, name: str, alias_name: str, required: bool = True):
    """One of two spellings of an argument (hexrd's and ours)."""
    if value is not None and alias is not None:
        raise InputError(f"give {name} or {alias_name}, not both", argument=name)
    value = value if value is not None else alias
    if value is None and required:
        raise InputError("is required", argument=name)
    return value


def _chunk_stops(n: int, nchunks: int) -> np.ndarray:
    """Last item (0-based, inclusive) of each of ``nchunks`` consecutive chunks of ``n``
    items; the first chunks are one item longer when ``n`` does not divide (hexrd's yield
    points).  ``nchunks > n`` raises InputError (a ValueError)."""
    if nchunks > n:
        raise InputError(f"{nchunks} chunks cannot exceed the {n} items to cut",
                         argument="nchunks")
    sizes = np.full(nchunks, n // nchunks, dtype=int)
    sizes[: n % nchunks] += 1
    return np.cumsum(sizes) - 1


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


def _frames(src, start: int, stop: int) -> np.ndarray:
    """Whole frames ``start .. stop - 1`` (one block read)."""
    if isinstance(src, np.ndarray):
        return src[start:stop]
    return src.read_block(start, stop)


# -- frame groups: max, min, sum, average -------------------------------------------------------
def _group_partial(stat: str, block: np.ndarray) -> np.ndarray:
    if stat == "max":
        return K.max_tile(block)
    if stat == "min":
        return K.min_tile(block)
    return block.sum(axis=0, dtype=np.float64)  # sum, average


def _combine(stat: str, acc, part):
    if acc is None:
        return part
    if stat == "max":
        return np.maximum(acc, part, out=acc)
    if stat == "min":
        return np.minimum(acc, part, out=acc)
    acc += part
    return acc


def _finish(stat: str, acc: np.ndarray, nseen: int) -> np.ndarray:
    if stat == "average":
        return (acc / nseen).astype(_FLOAT32)
    return acc.copy()


def _frame_groups(src, stat: str, stops) -> Iterator[np.ndarray]:
    """Running ``stat`` over all frames so far, yielded after frame ``stop`` of each group."""
    acc, start = None, 0
    for stop in stops:
        for b0 in range(start, int(stop) + 1, READ_BATCH):
            b1 = builtins.min(int(stop) + 1, b0 + READ_BATCH)
            acc = _combine(stat, acc, _group_partial(stat, _frames(src, b0, b1)))
        start = int(stop) + 1
        yield _finish(stat, acc, start)


def _group_run(ims, stat: str, nframes, nchunk=None) -> Iterator[np.ndarray]:
    src = _as_source(ims)
    n = _nframes(src, nframes)
    stops = [n - 1] if nchunk is None else _chunk_stops(n, _chunk_count(nchunk, "nchunk"))
    return _frame_groups(src, stat, stops)


# -- row bands: median, percentile -------------------------------------------------------------
def _band_stops(nframes: int, shape, itemsize: int) -> np.ndarray:
    per_row = nframes * shape[1] * itemsize
    rows = builtins.max(1, STATS_BUFFER // builtins.max(1, per_row))
    return _chunk_stops(shape[0], -(-shape[0] // rows))


def _bands(src, n: int, pct, stops, use_buffer: bool) -> Iterator[np.ndarray]:
    shape = _frame_shape(src)
    out_shape = shape if np.ndim(pct) == 0 else (len(pct),) + shape
    result = np.zeros(out_shape, dtype=_FLOAT32)
    edges = np.concatenate([[0], np.asarray(stops) + 1])
    buf = None
    if use_buffer and not isinstance(src, np.ndarray):
        buf = np.empty((n, int(np.diff(edges).max()), shape[1]), dtype=_read_dtype(src))
    cols = slice(0, shape[1])
    for r0, r1 in zip(edges[:-1], edges[1:]):
        rows = slice(int(r0), int(r1))
        band = read_band(src, rows, cols, n, out=None if buf is None else buf[:, : r1 - r0])
        result[..., rows, :] = K.quantile_tile(band, pct)
        yield result.copy()


def _band_run(ims, pct, nframes, nchunks=None, use_buffer: bool = True):
    """``pct=None``: the median."""
    src = _as_source(ims)
    n = _nframes(src, nframes)
    pct = None if pct is None else K.percentiles_argument(pct, "pct")
    shape = _frame_shape(src)
    if nchunks is None:
        stops = _band_stops(n, shape, _read_dtype(src).itemsize)
    else:
        stops = _chunk_stops(shape[0], _chunk_count(nchunks, "nchunks"))
    return _bands(src, n, pct, stops, use_buffer)


def _last(it: Iterator[np.ndarray]) -> np.ndarray:
    result = None
    for result in it:
        pass
    return result


# -- hexrd API ----------------------------------------------------------------------------------
def max(ims, nframes: int = 0) -> np.ndarray:  # noqa: A001
    """Pixel-wise maximum of the first ``nframes`` frames (0: all); series dtype."""
    return _last(_group_run(ims, "max", nframes))


def min(ims, nframes: int = 0) -> np.ndarray:  # noqa: A001
    """Pixel-wise minimum of the first ``nframes`` frames (0: all); series dtype."""
    return _last(_group_run(ims, "min", nframes))


def sum(ims, nframes: int = 0) -> np.ndarray:  # noqa: A001
    """Pixel-wise sum (``np.sum(stack, axis=0)``) accumulated in float64."""
    return _last(_group_run(ims, "sum", nframes))


def average(ims, nframes: int = 0) -> np.ndarray:
    """Pixel-wise mean (``np.mean(stack, axis=0)``) as float32."""
    return _last(_group_run(ims, "average", nframes))


def median(ims, nframes: int = 0) -> np.ndarray:
    """Exact pixel-wise median (``np.median(stack, axis=0)``) as float32."""
    return _last(_band_run(ims, None, nframes))


def percentile(ims, pctl=None, nframes: int = 0, *, pct=None) -> np.ndarray:
    """Exact pixel-wise percentile(s) (``np.percentile(stack, pctl, axis=0)``, linear) as
    float32; ``pctl`` (also ``pct=``) a number in [0, 100] -> (rows, cols), a list ->
    (len(pctl), rows, cols)."""
    return _last(_band_run(ims, _pick(pctl, pct, "pctl", "pct"), nframes))


def max_iter(ims, nchunk=None, nframes: int = 0, use_buffer: bool = True, *,
             nchunks=None) -> Iterator[np.ndarray]:
    """:func:`max` over ``nchunk`` frame groups, yielding the running maximum after each.
    ``use_buffer`` is accepted for symmetry with :func:`median_iter` (frames are read in
    batches either way)."""
    return _group_run(ims, "max", nframes, _pick(nchunk, nchunks, "nchunk", "nchunks"))


def min_iter(ims, nchunk=None, nframes: int = 0, use_buffer: bool = True, *,
             nchunks=None) -> Iterator[np.ndarray]:
    """:func:`min` over ``nchunk`` frame groups, yielding the running minimum after each."""
    return _group_run(ims, "min", nframes, _pick(nchunk, nchunks, "nchunk", "nchunks"))


def sum_iter(ims, nchunk=None, nframes: int = 0, use_buffer: bool = True, *,
             nchunks=None) -> Iterator[np.ndarray]:
    """:func:`sum` over ``nchunk`` frame groups, yielding the running sum after each."""
    return _group_run(ims, "sum", nframes, _pick(nchunk, nchunks, "nchunk", "nchunks"))


def average_iter(ims, nchunk=None, nframes: int = 0, use_buffer: bool = True, *,
                 nchunks=None) -> Iterator[np.ndarray]:
    """:func:`average` over ``nchunk`` frame groups, yielding the mean of the frames so far
    after each."""
    return _group_run(ims, "average", nframes, _pick(nchunk, nchunks, "nchunk", "nchunks"))


def median_iter(ims, nchunks=None, nframes: int = 0, use_buffer: bool = True, *,
                nchunk=None) -> Iterator[np.ndarray]:
    """:func:`median` in ``nchunks`` row bands, yielding after each band (rows not done
    yet are 0)."""
    return _band_run(ims, None, nframes, _pick(nchunks, nchunk, "nchunks", "nchunk"),
                     use_buffer)


def percentile_iter(ims, pctl=None, nchunks=None, nframes: int = 0, use_buffer: bool = True,
                    *, pct=None, nchunk=None) -> Iterator[np.ndarray]:
    """:func:`percentile` in ``nchunks`` row bands, yielding after each band (rows not done
    yet are 0)."""
    return _band_run(ims, _pick(pctl, pct, "pctl", "pct"), nframes,
                     _pick(nchunks, nchunk, "nchunks", "nchunk"), use_buffer)


# -- hexrd's private helpers (its tests call them) ----------------------------------------------
def _alloc_buffer(ims, nf: int) -> np.ndarray:
    """A buffer of as many whole frames (up to ``nf``) as :data:`STATS_BUFFER` holds."""
    src = _as_source(ims)
    shape, dtype = _frame_shape(src), _read_dtype(src)
    fit = STATS_BUFFER // builtins.max(1, shape[0] * shape[1] * dtype.itemsize)
    return np.empty((int(builtins.min(nf, fit)),) + shape, dtype)


def _toarray(ims, nframes: int, rows=None, buffer=None) -> np.ndarray:
    """Frames ``0 .. nframes - 1`` (rows ``rows = (r0, r1)`` only, when given) as one array;
    the first frames go through ``buffer`` (whole frames) when one is given with ``rows``."""
    src = _as_source(ims)
    h, w = _frame_shape(src)
    r0, r1 = (0, h) if rows is None else (int(rows[0]), int(rows[1]))
    if buffer is not None and rows is not None and len(buffer):
        nb = builtins.min(len(buffer), nframes)
        if r0 == 0:
            read_band(src, slice(0, h), slice(0, w), nb, out=buffer[:nb])
    return read_band(src, slice(r0, r1), slice(0, w), nframes)
