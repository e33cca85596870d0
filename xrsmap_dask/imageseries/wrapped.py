"""Any hexrd adapter or duck-typed series behind our interface (hexrd's ``ImageSeries(adapter)``).

hexrd code hands stats, process and omega objects that only have ``len()``, ``obj[int]``,
``shape``, ``dtype`` and ``metadata`` (its adapters, or test doubles).  An
:class:`AdapterImageSeries` gives them our interface: frames are read with ``obj[int(j)]``
(one frame at a time: nothing more is known about the source), and everything else is asked
of the wrapped object only when needed.  Wrapping one of our own series keeps its batched
block reads.
"""
from __future__ import annotations

import uuid

import numpy as np

from .base import ImageSeries


class AdapterImageSeries(ImageSeries):
    """Our series interface over ``adapter`` (see the module docstring).

    ``shape``, ``dtype`` and ``metadata`` are those of the adapter, looked up when asked
    (``metadata`` is the adapter's own dict, so changes show in both); an adapter without
    ``metadata`` has ``{}``.
    """

    def __init__(self, adapter):
        if isinstance(adapter, AdapterImageSeries):
            adapter = adapter._adapter
        self._adapter = adapter
        self._series = adapter if isinstance(adapter, ImageSeries) else None
        if self._series is not None:
            self.on_error = self._series.on_error
        self._own_meta: dict = {}

    # -- hexrd interface -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._adapter)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(v) for v in self._adapter.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._adapter.dtype)

    @property
    def metadata(self) -> dict:
        meta = getattr(self._adapter, "metadata", None)
        return meta if isinstance(meta, dict) else self._own_meta

    @property
    def bad_frames(self):
        return self._series.bad_frames if self._series is not None else ()

    @property
    def filenames(self):
        return self._series.filenames if self._series is not None else None

    @property
    def source_files(self) -> list[str]:
        return self._series.source_files if self._series is not None else []

    def get_region(self, frame_idx: int, region) -> np.ndarray:
        own = getattr(self._adapter, "get_region", None)
        if self._series is None and callable(own):
            return own(frame_idx, region)
        return super().get_region(frame_idx, region)

    def set_option(self, key: str, value) -> None:
        if hasattr(self._adapter, "set_option"):
            self._adapter.set_option(key, value)
        else:
            super().set_option(key, value)

    def option_values(self) -> dict:
        values = getattr(self._adapter, "option_values", None)
        return values() if callable(values) else {}

    # -- reads -----------------------------------------------------------------------------
    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        if self._series is not None:
            return self._series._read_region(j, rows, cols)
        return np.asarray(self._adapter[int(j)])[rows, cols]

    def block_source(self, start: int, stop: int):
        if self._series is not None:
            return self._series.block_source(start, stop)
        return super().block_source(start, stop)

    def block_dtype(self) -> np.dtype:
        if self._series is not None:
            return self._series.block_dtype()
        return super().block_dtype()

    @property
    def token(self) -> str:
        if self._series is not None:
            return self._series.token
        tok = self.__dict__.get("_token")
        if tok is None:
            tok = self.__dict__["_token"] = uuid.uuid4().hex
        return tok

    def __repr__(self) -> str:
        return f"<AdapterImageSeries of {type(self._adapter).__name__}>"


def as_series(obj) -> ImageSeries:
    """``obj`` if it is one of our series, else an :class:`AdapterImageSeries` over it (any
    object with ``len()`` and ``obj[int]``)."""
    if isinstance(obj, ImageSeries):
        return obj
    if not hasattr(obj, "__len__"):
        from ._errors import InputTypeError

        raise InputTypeError(f"expected an image series (len(), [int], shape, dtype), "
                                   f"got {type(obj).__name__}", argument="ims")
    return AdapterImageSeries(obj)
