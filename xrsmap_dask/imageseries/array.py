"""The ``array`` format: a series over an in-memory numpy array ``(frames, rows, cols)``.

``open(None, 'array', data=arr, meta={...})`` as in hexrd; a 2-D array is one frame.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._errors import SeriesRuntimeError
from .base import ImageSeries, as_metadata
from .registry import ImageSeriesFormat, register


class ArrayImageSeries(ImageSeries):
    """Frames of an in-memory array.

    ``copy=True`` (what ``open(None, 'array', data=...)`` does, as hexrd): the series holds
    its own copy, so later changes to the caller's array do not show; frames read are new
    arrays either way.  ``copy=False`` (internal use) keeps a view.
    """

    def __init__(self, data, meta=None, copy: bool = False):
        arr = np.array(data) if copy else np.asarray(data)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise SeriesRuntimeError(f"expected a (frames, rows, cols) array, got shape "
                                     f"{arr.shape}", argument="data")
        self._data = arr
        self._shape = arr.shape[1:]
        self._dtype = arr.dtype
        self._metadata = as_metadata(meta)

    def __len__(self) -> int:
        return self._data.shape[0]

    @property
    def data(self) -> np.ndarray:
        return self._data

    @property
    def token(self) -> str:
        """sha1 of the array's bytes, shape and dtype (so the same data gets the same task
        names and an output written from it can be resumed in another process)."""
        tok = self.__dict__.get("_token")
        if tok is None:
            import hashlib

            h = hashlib.sha1(f"{self._data.shape}{self._data.dtype.str}".encode())
            h.update(memoryview(np.ascontiguousarray(self._data)).cast("B"))
            tok = self.__dict__["_token"] = h.hexdigest()
        return tok

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self._data[j, rows, cols].copy()

    def read_block(self, start: int, stop: int, roi=None) -> np.ndarray:
        from ..roi import normalize_roi

        rows, cols = normalize_roi(roi, self.shape)
        return self._data[start:stop, rows, cols]


def open_array(filename=None, data=None, meta=None) -> ArrayImageSeries:
    if data is None:
        raise InputError("the 'array' format needs data=<(frames, rows, cols) array>",
                         argument="data")
    return ArrayImageSeries(data, meta, copy=True)


class ArrayFormat(ImageSeriesFormat):
    name = "array"
    description = "in-memory numpy array (frames, rows, cols): open(None, 'array', data=, meta=)"
    open_keywords = frozenset({"data", "meta"})
    needs_filename = False

    def guess_can_open(self, path: str) -> bool:
        return False

    def open(self, filename=None, **kwargs) -> ArrayImageSeries:
        return open_array(filename, **kwargs)


register(ArrayFormat())
