"""One small parse function per settings field.

Each ``parse_<field>(value)`` takes what a face was given (a YAML value, a Python keyword
argument, or a command-line string already converted by :func:`from_text`) and returns the
checked value, or raises :class:`~xrsmap_dask.errors.InputError` whose ``argument`` is the
field's name.  The faces (CLI, job specs, ``Mapper``) translate that name into their own
words (``--binning``, ``scan 'a', key 'binning'``, ``binning``; see
:mod:`xrsmap_dask.settings.options`), so the same bad value gives the same reason on every
face.  A reason may name another field as ``@{field}``; the face replaces it too.

This module sits at the bottom of the package: it imports nothing but :mod:`numpy`,
:mod:`xrsmap_dask.errors` and :mod:`xrsmap_dask.roi`.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Sequence

import numpy as np

from ..errors import InputError

ON_ERROR = ("raise", "fill")
SCAN_ORDERS = ("raster", "snake", "column")
ROI_ORIGINS = ("upper", "lower")
BACKGROUND_METHODS = ("mean", "median", "percentile")
STAT_NAMES = ("max", "min", "mean", "median")
#: longest repr of a user value quoted in an error message
MAX_REPR = 80


def short(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_REPR` characters (error messages never print
    unbounded input)."""
    text = repr(value)
    return text if len(text) <= MAX_REPR else text[:MAX_REPR - 3] + "..."


# -- primitives --------------------------------------------------------------------------
def parse_bool(value: Any, name: str) -> bool:
    """``True``/``False`` (numpy bools too); anything else is an error (no truthiness)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InputError(f"must be true or false, got {short(value)}", argument=name)


def parse_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < minimum:
        what = "an int >= 1, a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise InputError(f"must be {what}, got {short(value)}", argument=name)
    return int(value)


def parse_number(value: Any, name: str) -> float:
    """A finite real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)):
        raise InputError(f"must be a finite number, got {short(value)}", argument=name)
    return float(value)


def parse_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"must be one of {', '.join(choices)}, got {short(value)}",
                         argument=name)
    return value


def parse_percent(value: Any, name: str) -> float:
    """A percentile in [0, 100]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not 0 <= float(value) <= 100:
        raise InputError(f"must be a number in [0, 100], got {short(value)}", argument=name)
    return float(value)


def resolve_path(value: Any, name: str, base_dir: str | None = None,
                 must_exist: bool = False) -> str:
    """An absolute, normalised path; relative paths are taken relative to ``base_dir``
    (default: the working directory)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"must be a path, got {short(value)}", argument=name)
    p = os.path.expanduser(value.strip())
    full = os.path.normpath(p if os.path.isabs(p) else
                            os.path.join(base_dir or os.getcwd(), p))
    if must_exist and not os.path.exists(_file_part(full)):
        raise InputError("file not found", path=full, argument=name)
    return full


def _file_part(path: str) -> str:
    """The file of ``file.h5:/dataset`` (the path itself otherwise)."""
    head, sep, tail = path.rpartition(":")
    return head if sep and tail.startswith("/") and head else path


# -- fields --------------------------------------------------------------------------------
def parse_on_error(value: Any) -> str:
    """``'raise'`` (an unreadable frame stops with an error) or ``'fill'`` (it becomes NaN
    and is listed in the output's ``bad_frames``)."""
    return parse_choice(value, "on_error", ON_ERROR)


def parse_scan_order(value: Any) -> str:
    """Point order of the scan: ``raster`` (row-major, x fastest), ``snake`` or
    ``column`` (y fastest)."""
    return parse_choice(value, "scan_order", SCAN_ORDERS)


def parse_roi_origin(value: Any) -> str:
    """``upper`` (rows counted from the top) or ``lower`` (from the bottom)."""
    return parse_choice(value, "roi_origin", ROI_ORIGINS)


def parse_binning(value: Any) -> int:
    """Side ``b`` of the ``b x b`` blocks summed in the composite (>= 1)."""
    return parse_int(value, "binning")


def parse_frames_per_chunk(value: Any) -> int | str:
    """Frames read by one task: a positive int or ``'auto'``."""
    if value == "auto" and isinstance(value, str):
        return "auto"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < 1:
        raise InputError(f"must be a positive int or 'auto', got {short(value)}",
                         argument="frames_per_chunk")
    return int(value)


def parse_dummy(value: Any) -> float:
    """Composite value of excluded pixels and unreadable frames."""
    return parse_number(value, "dummy")


def parse_dtype(value: Any) -> str:
    """Working and composite float dtype (``float32`` as xrsmap, or ``float64``)."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise InputError(f"not a dtype: {short(value)}", argument="dtype") from None
    if dtype.kind != "f":
        raise InputError(f"must be a float dtype, got {dtype}", argument="dtype")
    return dtype.name


def parse_mesh(value: Any) -> tuple[int, int]:
    """``[npt_y, npt_x]``: map rows (slow axis) and map columns."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InputError(f"must be [npt_y, npt_x], got {short(value)}", argument="mesh")
    return parse_int(value[0], "mesh"), parse_int(value[1], "mesh")


def parse_roi(value: Any) -> tuple[int, int, int, int] | None:
    """xrsmap ROI ``(x0, y0, x1, y1)``: integer pixel indices, bounds **inclusive**
    (``data[y0:y1 + 1, x0:x1 + 1]``); ``None`` = the whole frame."""
    if value is None:
        return None
    from ..roi import check_xrsmap_roi

    return check_xrsmap_roi(value)


def parse_image(value: Any, name: str, base_dir: str | None = None):
    """A 2-D image given as a path (``.npy``, an image file, ``file.h5:/dataset``; must
    exist) or as an array; ``None`` passes."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return resolve_path(value, name, base_dir, must_exist=True)
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise InputError(f"must be a 2-D image, got shape {arr.shape}", argument=name)
    return arr


def parse_norm(value: Any, base_dir: str | None = None):
    """Per-frame normalisation: a ``.npy``/text file of one value per frame, or a 1-D
    array of finite nonzero values; ``None`` passes."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return resolve_path(value, "norm", base_dir, must_exist=True)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"must be 1-D (one value per frame), got shape {arr.shape}",
                         argument="norm")
    if not np.all(np.isfinite(arr)) or np.any(arr == 0):
        raise InputError("must be finite and nonzero", argument="norm")
    return arr


def parse_background_method(method: Any, pct: Any = None) -> tuple[str, float | None]:
    """How background frames combine: ``('mean', None)`` (xrsmap's), ``('median', None)``
    or ``('percentile', q)`` with q in [0, 100] (and ``pct`` only then).

    The single check of the background method (CLI, job specs, ``Mapper``, stats).
    """
    method = parse_choice(method, "background_method", BACKGROUND_METHODS)
    if (method == "percentile") != (pct is not None):
        raise InputError("give @{background_pct} (in [0, 100]) with the percentile "
                         "background method, and only then", argument="background_pct")
    return method, None if pct is None else parse_percent(pct, "background_pct")


def parse_percentiles(value: Any, name: str = "percentile") -> tuple[float, ...]:
    """One percentile or a list, each in [0, 100]."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return tuple(parse_percent(q, name) for q in values)
