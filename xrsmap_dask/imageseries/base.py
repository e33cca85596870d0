"""The imageseries interface (hexrd's) and the block reads the lazy layer is built on.

An image series is a sequence of 2-D frames of one shape and dtype:
``len(ims)``, ``ims[j]`` (frame ``j``, shape ``ims.shape``), ``ims[(j, rows, cols)]`` (a region
of frame ``j``), ``ims.shape`` (the *frame* shape, (rows, cols)), ``ims.dtype``,
``ims.metadata`` (a dict; numpy arrays allowed).  Ours beyond hexrd:
:meth:`ImageSeries.to_dask` and :meth:`ImageSeries.block_source`, a small picklable object
that reads the ROI of a run of frames (what one dask task does).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import FrameReadError, InputError
from ..roi import RoiSlices, normalize_roi, roi_shape

ON_ERROR = ("raise", "fill")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise InputError(f"must be one of {ON_ERROR}, got {on_error!r}", argument="on_error")
    return on_error


def fill_dtype(dtype: np.dtype) -> np.dtype:
    """Float dtype able to hold a series' values and NaN for unreadable frames."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    return np.dtype("float32") if dtype.itemsize <= 2 else np.dtype("float64")


class ImageSeries:
    """Base class of every image series (hexrd's thin interface plus block reads).

    Subclasses set ``_shape``, ``_dtype``, ``_metadata`` and implement ``__len__`` and
    :meth:`_read_region`; file-backed series override :meth:`block_source` so that a dask task
    carries only the file names and offsets of its own frames.
    """

    _shape: tuple[int, int]
    _dtype: np.dtype
    _metadata: dict
    #: ``'raise'``: an unreadable frame raises :class:`FrameReadError`; ``'fill'``: it reads as
    #: NaN (the lazy array is then float, see :func:`fill_dtype`).
    on_error: str = "raise"
    #: ``(index, path, reason)`` of the frames known to be unreadable when the series was
    #: opened (``on_error='fill'`` only; frames found bad while reading are reported by the
    #: maps and stats that read them).
    bad_frames: Sequence[tuple[int, str, str]] = ()
    #: One file path per frame for file-backed series (reads fetch whole rows of a file),
    #: ``None`` for every other series.
    filenames: list[str] | None = None
    #: Detector pixel mask from the file (True = pixel excluded), ``None`` when it has none.
    detector_mask: np.ndarray | None = None

    # -- hexrd interface -------------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (rows, cols)."""
        return tuple(self._shape)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def metadata(self) -> dict:
        return self._metadata

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            if len(key) != 3:
                raise TypeError("index with an int frame or (frame, rows, cols)")
            j, rows, cols = key
            roi = normalize_roi((_as_slice(rows), _as_slice(cols)), self.shape)
        else:
            j, roi = key, normalize_roi(None, self.shape)
        j = self._check_index(j)
        return self._read_region(j, *roi)

    def __iter__(self) -> Iterator[np.ndarray]:
        for j in range(len(self)):
            yield self[j]

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {len(self)} frames of {self.shape[0]} x "
                f"{self.shape[1]} {self.dtype}>")

    # -- reads -----------------------------------------------------------------------------
    def _check_index(self, j) -> int:
        if not isinstance(j, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(j).__name__}")
        n = len(self)
        if not -n <= j < n:
            raise IndexError(f"frame {j} out of range for a series of {n} frames")
        return int(j) % n

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        """Frame ``j`` restricted to ``[rows, cols]`` (normalized slices)."""
        raise NotImplementedError

    def read_block(self, start: int, stop: int, roi=None) -> np.ndarray:
        """ROI of frames ``start`` .. ``stop - 1`` as an array (frames, roi rows, roi cols)."""
        return self.block_source(start, stop).read(normalize_roi(roi, self.shape))

    def block_source(self, start: int, stop: int) -> "BlockSource":
        """A picklable reader of frames ``start`` .. ``stop - 1`` (what one dask task runs)."""
        return SeriesBlock(self, start, stop, self.on_error)

    def block_dtype(self) -> np.dtype:
        """dtype of the blocks :meth:`block_source` returns (float when ``on_error='fill'``)."""
        return fill_dtype(self.dtype) if self.on_error == "fill" else np.dtype(self.dtype)

    @property
    def token(self) -> str:
        """A name for this series' content, used in dask task names."""
        tok = self.__dict__.get("_token")
        if tok is None:
            tok = self.__dict__["_token"] = uuid.uuid4().hex
        return tok

    def to_dask(self, roi=None, frames_per_chunk: int | str = "auto"):
        """Lazy dask array ``(nframes, roi rows, roi cols)``; each block one batched ROI read.

        ``roi`` is numpy style, ``(slice(y0, y1), slice(x0, x1))``, stop exclusive, rows from
        the top; ``None`` is the whole frame.  ``frames_per_chunk='auto'`` batches frames so a
        block holds about 32 MiB.  See :func:`xrsmap_dask.lazy.series_to_dask`.
        """
        from ..lazy import series_to_dask  # the lazy layer sits downstream of the series

        return series_to_dask(self, roi=roi, frames_per_chunk=frames_per_chunk)


class BlockSource:
    """Reads the ROI of a run of frames; small and picklable.  ``read(roi)`` returns
    ``(nframes, roi rows, roi cols)`` in :meth:`ImageSeries.block_dtype`.

    Sources with ``accepts_out = True`` also take ``read(roi, out=buffer)`` and fill a
    caller's C-contiguous buffer of that shape and dtype (a reused, cache-warm buffer saves
    memory traffic when the caller reduces each block at once).
    """

    nframes: int
    accepts_out = False

    def read(self, roi: RoiSlices) -> np.ndarray:
        raise NotImplementedError


@dataclass
class SeriesBlock(BlockSource):
    """Generic block: frame by frame through the series' own region read."""

    series: ImageSeries
    start: int
    stop: int
    on_error: str = "raise"

    @property
    def nframes(self) -> int:
        return self.stop - self.start

    def read(self, roi: RoiSlices) -> np.ndarray:
        def one(j: int, slot: np.ndarray) -> np.ndarray:
            return self.series._read_region(j, *roi)

        return read_frames(one, range(self.start, self.stop), roi_shape(roi),
                           self.series.dtype, self.on_error)


def read_frames(read_one, indices, shape: tuple[int, int], dtype: np.dtype,
                on_error: str, out: np.ndarray | None = None) -> np.ndarray:
    """Stack ``read_one(j, slot)`` for ``j`` in ``indices`` into ``out``.

    ``read_one`` may fill ``slot`` (the frame's view of ``out``) in place and return it, or
    return a new array that is copied in.  With ``on_error='fill'`` an unreadable frame
    (:class:`FrameReadError`) becomes NaN and the result is float.
    """
    indices = list(indices)
    if out is None:
        out = np.empty((len(indices),) + tuple(shape), dtype=dtype)
    bad = []
    for i, j in enumerate(indices):
        slot = out[i]
        try:
            got = read_one(j, slot)
            if got is not slot:
                slot[...] = got
        except FrameReadError:
            if on_error != "fill":
                raise
            bad.append(i)
    if on_error != "fill":
        return out
    result = out.astype(fill_dtype(out.dtype), copy=False)
    if bad:
        result[bad] = np.nan
    return result


def _as_slice(s) -> slice:
    if isinstance(s, slice):
        return s
    if isinstance(s, (list, tuple)) and len(s) == 2:
        return slice(*s)
    raise TypeError(f"region bounds must be slices or [start, stop] pairs, got {s!r}")


def as_metadata(meta: Any) -> dict:
    """Copy user metadata into a plain dict (``None`` -> ``{}``)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InputError(f"metadata must be a dict, got {type(meta).__name__}", argument="meta")
    return dict(meta)


def plain_metadata_value(key: str, value, where: str, arrays_as_lists: bool = False):
    """A metadata value as plain Python for text formats (YAML, JSON attrs): numpy scalars
    become Python numbers, containers are converted item by item, numpy arrays become lists
    when ``arrays_as_lists``; anything else raises :class:`InputError` naming the key and
    ``where`` it was to be written."""
    def plain(v):
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if arrays_as_lists and isinstance(v, np.ndarray):
            return plain(v.tolist())
        if v is None or isinstance(v, (str, int, float, bool)):
            return v
        raise InputError(f"metadata {key!r} of type {type(v).__name__} cannot be {where}",
                         argument="meta")

    return plain(value)
