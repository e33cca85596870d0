"""Regions of interest.

Two conventions (see DESIGN.md):

* numpy style, used by :meth:`ImageSeries.to_dask` and all internals:
  ``(slice(y0, y1), slice(x0, x1))``, rows counted from the top, stop **exclusive**;
* xrsmap style, used by :class:`~xrsmap_dask.mapper.Mapper` and the CLI: a 4-tuple
  ``(x0, y0, x1, y1)`` with **inclusive** bounds, i.e. ``data[y0:y1 + 1, x0:x1 + 1]``;
  ``origin='lower'`` counts rows from the bottom (fabio's legacy 4-tuple convention).
"""
from __future__ import annotations

from typing import Sequence

from .errors import InputError

RoiSlices = tuple[slice, slice]


def normalize_roi(roi, frame_shape: Sequence[int], argument: str = "roi") -> RoiSlices:
    """Check a numpy-style ROI against ``frame_shape`` and return explicit slices.

    ``None`` means the whole frame; ``None`` bounds in a slice mean the frame edge.  Negative
    bounds, steps other than 1, empty regions and regions reaching outside the frame raise
    :class:`InputError` naming the ROI and the frame shape.
    """
    ny, nx = (int(v) for v in frame_shape)
    if roi is None:
        return slice(0, ny), slice(0, nx)
    try:
        rows, cols = roi
    except (TypeError, ValueError):
        raise InputError(f"expected (slice(y0, y1), slice(x0, x1)), got {roi!r}",
                         argument=argument) from None
    out = []
    for axis, (s, n) in enumerate(zip((rows, cols), (ny, nx))):
        if not isinstance(s, slice):
            raise InputError(f"expected slices, got {roi!r}", argument=argument)
        if s.step not in (None, 1):
            raise InputError(f"slice step must be 1, got {s!r}", argument=argument)
        start = 0 if s.start is None else int(s.start)
        stop = n if s.stop is None else int(s.stop)
        if start < 0 or stop > n or start >= stop:
            raise InputError(
                f"{'rows' if axis == 0 else 'columns'} {start}:{stop} are empty or outside "
                f"the frame of shape {ny} x {nx} (rows x columns)", argument=argument)
        out.append(slice(start, stop))
    return out[0], out[1]


def roi_shape(roi: RoiSlices) -> tuple[int, int]:
    """(rows, cols) of an already-normalized ROI."""
    return roi[0].stop - roi[0].start, roi[1].stop - roi[1].start


def check_xrsmap_roi(roi) -> tuple[int, int, int, int]:
    """The one check of an xrsmap ROI ``(x0, y0, x1, y1)``: four integer pixel indices
    ``>= 0`` with ``x0 <= x1`` and ``y0 <= y1`` (bounds inclusive).  Whether it fits a frame
    is checked against the frame (:func:`normalize_roi`)."""
    from numbers import Real

    try:
        values = list(roi)
    except TypeError:
        values = []
    if len(values) != 4 or any(isinstance(v, bool) or not isinstance(v, Real)
                               or v != int(v) for v in values):
        text = repr(roi) if len(repr(roi)) < 80 else repr(roi)[:77] + "..."
        raise InputError(f"expected (x0, y0, x1, y1): 4 integer pixel indices, bounds "
                         f"inclusive, got {text}", argument="roi")
    x0, y0, x1, y1 = (int(v) for v in values)
    if min(x0, y0, x1, y1) < 0:
        raise InputError(f"(x0, y0, x1, y1) = {(x0, y0, x1, y1)} reaches outside the frame "
                         "(pixel indices start at 0)", argument="roi")
    if x1 < x0 or y1 < y0:
        raise InputError(f"x1 < x0 or y1 < y0 in (x0, y0, x1, y1) = {(x0, y0, x1, y1)}",
                         argument="roi")
    return x0, y0, x1, y1


def xrsmap_roi_to_slices(roi, frame_shape: Sequence[int], origin: str = "upper") -> RoiSlices:
    """Convert xrsmap's inclusive ``(x0, y0, x1, y1)`` to numpy-style slices.

    ``origin='upper'`` (default) counts rows from the top of the array as numpy shows it;
    ``origin='lower'`` counts them from the bottom.  ``None`` means the whole frame.
    """
    ny, _ = (int(v) for v in frame_shape)
    if roi is None:
        return normalize_roi(None, frame_shape)
    if origin not in ("upper", "lower"):
        raise InputError(f"must be 'upper' or 'lower', got {origin!r}", argument="roi_origin")
    x0, y0, x1, y1 = check_xrsmap_roi(roi)
    if origin == "lower":
        y0, y1 = ny - 1 - y1, ny - 1 - y0
    return normalize_roi((slice(y0, y1 + 1), slice(x0, x1 + 1)), frame_shape)


def check_binning(shape: tuple[int, int], binning: int,
                  argument: str = "binning") -> tuple[int, int]:
    """Binned shape of a ``shape`` ROI; :class:`InputError` listing the binnings that work."""
    h, w = shape
    if h % binning or w % binning:
        good = [d for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0]
        raise InputError(f"binning {binning} does not divide the {h} x {w} ROI (rows x cols); "
                         f"binnings that work: {good}", argument=argument)
    return h // binning, w // binning
