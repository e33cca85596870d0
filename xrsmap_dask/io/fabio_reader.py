"""Any image format fabio reads (TIFF, CBF, ...): whole-frame read, then crop.

Used where a positioned read of the ROI rows is not possible.  Errors name the file and frame,
and quote fabio's message cut to a bounded length.  A path that is not a regular file (a
directory, a FIFO) is refused before fabio opens it (fabio would block on a FIFO).
"""
from __future__ import annotations

import numpy as np

from ..errors import FrameReadError
from .files import require_regular

#: longest excerpt of fabio's own message quoted in an error
_WHY_LIMIT = 200


def _open(path: str, frame: int | None):
    import fabio

    require_regular(path, frame)
    try:
        return fabio.open(path)
    except Exception as exc:  # fabio raises many types for unreadable files
        raise FrameReadError(f"fabio cannot read it: {_why(exc)}", path=path,
                             frame=frame) from None


def _why(exc: BaseException) -> str:
    """An exception's message (cut to :data:`_WHY_LIMIT` characters), or its type when the
    message is empty."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _WHY_LIMIT else text[:_WHY_LIMIT] + "..."


def probe(path: str) -> tuple[int, tuple[int, int], np.dtype]:
    """(number of frames, frame shape, dtype) of an image file, through fabio."""
    img = _open(path, None)
    try:
        data = img.data
        nframes = int(getattr(img, "nframes", 1) or 1)
    except Exception as exc:  # fabio reads lazily: a bad file may fail only here
        raise FrameReadError(f"fabio cannot read it: {_why(exc)}", path=path) from None
    finally:
        _close(img)
    if not isinstance(data, np.ndarray) or data.ndim != 2:
        raise FrameReadError(f"expected 2-D frames, got {getattr(data, 'shape', None)}",
                             path=path)
    return nframes, tuple(data.shape), data.dtype


def _close(img) -> None:
    close = getattr(img, "close", None)
    if close is not None:
        close()


def read_frame(path: str, index_in_file: int, shape: tuple[int, int], dtype: np.dtype,
               rows: slice, cols: slice, frame: int | None = None) -> np.ndarray:
    """Frame ``index_in_file`` of ``path`` cropped to ``[rows, cols]``; shape/dtype checked."""
    img = _open(path, frame)
    try:
        if index_in_file:
            sub = img.getframe(index_in_file)
            data = sub.data
            if sub is not img:
                _close(sub)
        else:
            data = img.data
    except Exception as exc:
        raise FrameReadError(f"fabio cannot read frame {index_in_file} of the file: {_why(exc)}",
                             path=path, frame=frame) from None
    finally:
        _close(img)
    if data is None or tuple(data.shape) != tuple(shape):
        raise FrameReadError(f"frame shape {None if data is None else data.shape} differs from "
                             f"the series' {tuple(shape)}", path=path, frame=frame)
    if data.dtype != dtype:
        raise FrameReadError(f"dtype {data.dtype} differs from the series' {dtype}", path=path,
                             frame=frame)
    return np.ascontiguousarray(data[rows, cols])
