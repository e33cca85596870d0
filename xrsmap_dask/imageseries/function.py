"""The ``function`` format (hexrd's): frames made by a function of the frame index.

``open(None, 'function', func=f, num_frames=n, meta={...})``: ``f(j)`` returns frame ``j``
(a 2-D array); shape and dtype are those of ``f(0)``.  Tasks carry the function, so it must
pickle for a distributed cluster (a module-level function does).
"""
from __future__ import annotations

import numpy as np

from ..errors import FrameReadError, InputError
from ._utils import short_repr
from .base import ImageSeries, as_metadata
from .registry import ImageSeriesFormat, register


class FunctionImageSeries(ImageSeries):
    """Frames ``func(0) .. func(num_frames - 1)``."""

    def __init__(self, func, num_frames: int, meta=None):
        if not callable(func):
            raise InputError(f"must be callable, got {short_repr(func)}", argument="func")
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) \
                or num_frames < 0:
            raise InputError(f"must be an int >= 0, got {short_repr(num_frames)}",
                             argument="num_frames")
        self._func = func
        self._nframes = int(num_frames)
        first = self._frame(0) if self._nframes else np.zeros((0, 0))
        self._shape = tuple(int(v) for v in first.shape)
        self._dtype = first.dtype
        self._metadata = as_metadata(meta)

    def _frame(self, j: int) -> np.ndarray:
        frame = np.asarray(self._func(int(j)))
        if frame.ndim != 2 or (j and (frame.shape != self._shape or frame.dtype != self._dtype)):
            raise FrameReadError(f"func({j}) returned shape {frame.shape} {frame.dtype}; "
                                 "every frame must be 2-D with the shape and dtype of func(0)",
                                 frame=int(j))
        return frame

    def __len__(self) -> int:
        return self._nframes

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self._frame(j)[rows, cols]


class FunctionFormat(ImageSeriesFormat):
    name = "function"
    description = "frames from a function of the frame index: open(None, 'function', " \
                  "func=, num_frames=, meta=)"
    open_keywords = frozenset({"func", "num_frames", "meta"})
    needs_filename = False

    def guess_can_open(self, path: str) -> bool:
        return False

    def open(self, filename=None, func=None, num_frames=None, meta=None) -> FunctionImageSeries:
        if func is None or num_frames is None:
            from ._errors import MissingEntryError

            raise MissingEntryError("the 'function' format needs func= and num_frames=",
                                    argument="func" if func is None else "num_frames")
        return FunctionImageSeries(func, num_frames, meta)


register(FunctionFormat())
