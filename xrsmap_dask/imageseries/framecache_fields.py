"""Fields of the ``frame-cache`` format checked before use: header values (``nframes``,
``shape``, ``dtype``) and the stored entries of each frame.  A frame cache is never read
with an index outside the frame, a pixel stored twice, or a value its dtype cannot hold."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._cast import check_fits
from ._utils import short_repr

#: largest frame side and frame count accepted in a header (checked before allocating)
MAX_DIM = 1 << 20
MAX_FRAMES = 1 << 31


def check_entries(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape,
                  dtype: np.dtype) -> str | None:
    """Why one frame's stored entries are not exactly pixels of a ``shape`` ``dtype`` frame
    (``None`` when they are): non-integer or out-of-range indices, row/col/data lengths that
    differ, a pixel stored twice, values the cache's dtype cannot hold."""
    if not len(rows) == len(cols) == len(values):
        return f"row/col/data lengths differ ({len(rows)}, {len(cols)}, {len(values)})"
    if not len(rows):
        return None
    for name, idx, n in (("row", rows, shape[0]), ("col", cols, shape[1])):
        if idx.dtype.kind not in "iu":
            return f"{name} indices are {idx.dtype}, not integers"
        if idx.min() < 0 or idx.max() >= n:
            return f"{name} indices {idx.min()} .. {idx.max()} outside 0 .. {n - 1}"
    flat = rows.astype(np.int64) * shape[1] + cols.astype(np.int64)
    if len(np.unique(flat)) != len(flat):
        return "a pixel is stored more than once"
    if values.dtype.kind not in "biuf":
        return f"data of dtype {values.dtype} is not numeric"
    reason = check_fits(values, dtype)
    return None if reason is None else f"data do not fit the cache's dtype: {reason}"


def plain_value(value, kind: type, field: str, where: str):
    """A YAML value of the Python type ``kind`` (a list: at most 2 ints), checked before numpy
    sees it (an alias bomb never becomes an array or a string)."""
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and kind is list:
        ok = len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                     for v in value)
    if not ok:
        raise InputError(f"must be {'two integers' if kind is list else kind.__name__}, got "
                         f"{short_repr(value)}", path=where, argument=field)
    return value


def header_int(value, field: str, where: str, low: int, high: int) -> int:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.size != 1:
        raise InputError(f"must be one integer, got {short_repr(value)}", path=where,
                         argument=field)
    v = int(arr.reshape(()))
    if not low <= v <= high:
        raise InputError(f"must be {low} .. {high}, got {v}", path=where, argument=field)
    return v


def header_shape(value, where: str) -> tuple[int, int]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.shape != (2,) or arr.min() < 1 or arr.max() > MAX_DIM:
        raise InputError(f"must be two integers 1 .. {MAX_DIM}, got {short_repr(value)}",
                         path=where, argument="shape")
    return int(arr[0]), int(arr[1])


def header_dtype(value, where: str) -> np.dtype:
    try:
        dt = np.dtype(as_str(value))
    except (TypeError, ValueError, UnicodeDecodeError):
        dt = None
    if dt is None or dt.kind not in "biuf":
        raise InputError(f"must name a numeric dtype, got {short_repr(value)}", path=where,
                         argument="dtype")
    return dt


def as_str(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "u" and value.ndim == 1 and value.dtype.itemsize == 1:
            return value.tobytes().decode()
        return as_str(value[()]) if value.ndim == 0 else str(value)
    return str(value)
