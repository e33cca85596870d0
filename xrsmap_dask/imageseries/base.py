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

    @property
    def source_files(self) -> list[str]:
        """Every file the series reads frames from (for the check that an output never
        overwrites an input): the frame files, or for HDF5 the data files behind external
        links and virtual datasets and their external raw files."""
        return list(dict.fromkeys(self.filenames or ()))

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

    def __new__(cls, *args, **kwargs):
        # hexrd's ``ImageSeries(adapter)``: the base class called with an adapter (any object
        # with len, [int], shape, dtype, metadata) gives a series wrapping it
        if cls is ImageSeries and args:
            from .wrapped import AdapterImageSeries

            return AdapterImageSeries(*args, **kwargs)
        return super().__new__(cls)

    def __getitem__(self, key) -> np.ndarray:
        """``ims[j]``: frame ``j`` (a new array); ``ims[j, rows]`` / ``ims[j, rows, cols]``:
        numpy indexing of frame ``j`` (slices, ints, integer arrays as in hexrd's
        ``pull_spots``), reading only the bounding region of the indices."""
        if isinstance(key, tuple):
            if not 1 <= len(key) <= 3:
                raise IndexError(f"index with a frame and at most two more indices, got "
                                 f"{len(key)} indices")
            j, rest = key[0], key[1:]
        else:
            j, rest = key, ()
        j = self._check_index(j)
        region, local = index_region(rest, self.shape)
        block = self._read_region(j, *region)
        return block if local is None else block[local]

    def get_region(self, frame_idx: int, region) -> np.ndarray:
        """hexrd's region read: ``region = ((r0, r1), (c0, c1))``, stops exclusive."""
        (r0, r1), (c0, c1) = region
        return self[(frame_idx, slice(r0, r1), slice(c0, c1))]

    def set_option(self, key: str, value) -> None:
        """hexrd's adapter options (e.g. Eiger threshold settings); none by default."""
        from ._errors import UnsupportedOptionError

        raise UnsupportedOptionError(f"{type(self).__name__} has no options (got {key!r})",
                                     argument=str(key))

    def option_values(self) -> dict:
        """hexrd's current adapter options: ``{}`` when the series has none."""
        return {}

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


def index_region(rest: tuple, shape) -> tuple[RoiSlices, tuple | None]:
    """For the row/column indices ``rest`` of a frame of ``shape``: the region to read (the
    bounding box of what is indexed) and the index to apply to that region afterwards
    (``None``: the region is the answer).  Slices with step 1 read exactly their region;
    ints, integer arrays and strided slices read their bounding box; anything else (boolean
    masks, ``None``, ``...``) reads the whole frame and leaves the indexing to numpy."""
    full = normalize_roi(None, shape)
    if not rest:
        return full, None
    if all(isinstance(s, slice) and s.step in (None, 1) for s in rest):
        try:
            roi = (_as_slice(rest[0]), _as_slice(rest[1]) if len(rest) > 1 else full[1])
            return normalize_roi(roi, shape), None
        except InputError:
            pass  # empty or partly outside the frame: numpy semantics below
    region, local = list(full), []
    for axis, idx in enumerate(rest):
        bounds = _axis_bounds(idx, int(shape[axis]))
        if bounds is None:
            return full, tuple(rest)
        lo, hi, loc = bounds
        region[axis] = slice(lo, hi)
        local.append(loc)
    return (region[0], region[1]), tuple(local)


def _axis_bounds(idx, n: int):
    """(lo, hi, index relative to lo) of one axis index, or None to read the whole axis."""
    if isinstance(idx, slice):
        start, stop, step = idx.indices(n)
        picked = range(start, stop, step)
        if not picked:
            return None
        lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
        rel_stop = stop - lo
        return lo, hi, slice(start - lo, rel_stop if rel_stop >= 0 else None, step)
    if isinstance(idx, (bool, np.bool_)):
        return None
    arr = np.asarray(idx)
    if arr.dtype.kind not in "iu" or arr.size == 0:
        return None
    if arr.min() < -n or arr.max() >= n:
        raise IndexError(f"index {int(arr.min() if arr.min() < -n else arr.max())} is out of "
                         f"bounds for an axis of size {n}")
    arr = np.where(arr < 0, arr + n, arr)
    lo, hi = int(arr.min()), int(arr.max()) + 1
    return lo, hi, (arr - lo) if arr.ndim else int(arr) - lo


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
