"""A series cast to another dtype, refusing values the dtype cannot hold (image-files ``dtype``).

hexrd raises ``RuntimeError("specified dtype will truncate image")`` when a pixel is above
the requested dtype's maximum; we raise :class:`~._errors.FrameRuntimeError` (a
``FrameReadError`` and a ``RuntimeError``) for any value the dtype cannot hold exactly:
above its maximum, below its minimum, or (for an integer dtype) a fraction.  Under
``on_error='fill'`` such a frame reads as NaN like any unreadable frame.
"""
from __future__ import annotations

import numpy as np

from ..roi import RoiSlices
from ._errors import FrameRuntimeError
from .base import BlockSource, ImageSeries, fill_dtype


def check_fits(frame: np.ndarray, dtype: np.dtype) -> str | None:
    """Why ``frame`` cannot be cast to ``dtype`` unchanged, or ``None`` when it can."""
    dtype = np.dtype(dtype)
    if frame.size == 0 or np.can_cast(frame.dtype, dtype, "safe"):
        return None
    finite = frame[np.isfinite(frame)] if frame.dtype.kind == "f" else frame
    if finite.size == 0:
        return None
    lo, hi = finite.min(), finite.max()
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype) if dtype.kind == "f" \
        else None
    if info is not None and (hi > info.max or lo < info.min):
        return f"specified dtype {dtype} will truncate image (values {lo} .. {hi})"
    if dtype.kind in "iub" and frame.dtype.kind == "f" and np.any(finite != np.trunc(finite)):
        return f"specified dtype {dtype} will truncate image (fractional values)"
    if dtype.kind == "b" and (hi > 1 or lo < 0):
        return f"specified dtype {dtype} will truncate image (values {lo} .. {hi})"
    return None


class CastImageSeries(ImageSeries):
    """``inner`` read as ``dtype``, each block checked with :func:`check_fits`."""

    def __init__(self, inner: ImageSeries, dtype):
        self._inner = inner
        self._dtype = np.dtype(dtype)
        self._shape = inner.shape
        self.on_error = inner.on_error

    @property
    def metadata(self) -> dict:
        return self._inner.metadata

    @property
    def bad_frames(self):
        return self._inner.bad_frames

    @property
    def filenames(self):
        return self._inner.filenames

    @property
    def source_files(self) -> list[str]:
        return self._inner.source_files

    def __len__(self) -> int:
        return len(self._inner)

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_source(self, start: int, stop: int) -> "CastBlock":
        names = self._inner.filenames
        return CastBlock(self._inner.block_source(start, stop), self._dtype, start,
                         None if names is None else names[start:stop], self.on_error)

    @property
    def token(self) -> str:
        from dask.base import tokenize

        return tokenize(self._inner.token, self._dtype.str)


class CastBlock(BlockSource):
    """The inner block read, checked and cast (pickles as small as the inner block)."""

    def __init__(self, inner: BlockSource, dtype: np.dtype, first_frame: int, paths,
                 on_error: str):
        self.inner, self.dtype, self.first_frame = inner, dtype, first_frame
        self.paths, self.on_error = paths, on_error

    @property
    def nframes(self) -> int:
        return self.inner.nframes

    def read(self, roi: RoiSlices) -> np.ndarray:
        data = self.inner.read(roi)
        want = fill_dtype(self.dtype) if self.on_error == "fill" else self.dtype
        bad = []
        for k in range(data.shape[0]):
            reason = check_fits(data[k], self.dtype)
            if reason is None:
                continue
            if self.on_error != "fill":
                raise FrameRuntimeError(reason, path=None if self.paths is None
                                        else self.paths[k], frame=self.first_frame + k)
            bad.append(k)
        out = data.astype(want)
        if bad:
            out[bad] = np.nan
        return out
