"""HDF5 hyperslab reads: the ROI of a block of frames from a 3-D dataset ``(frame, y, x)``."""
from __future__ import annotations

import os

import numpy as np

from ..errors import FrameReadError, InputError


def open_dataset(filename: str, dataset: str):
    """Open ``filename`` and return ``(h5py.File, dataset)``; clear errors for bad input."""
    import h5py

    if not os.path.exists(filename):
        raise FrameReadError("file not found", path=filename)
    try:
        f = h5py.File(filename, "r")
    except OSError as exc:
        raise FrameReadError(f"not a readable HDF5 file: {exc}", path=filename) from None
    if dataset not in f:
        f.close()
        raise InputError(f"HDF5 file has no dataset {dataset!r}", path=filename)
    ds = f[dataset]
    if not isinstance(ds, h5py.Dataset) or ds.ndim not in (2, 3):
        f.close()
        raise InputError(f"{dataset!r} is not a 2-D or 3-D dataset", path=filename)
    return f, ds


def read_hyperslab(filename: str, dataset: str, start: int, stop: int, rows: slice,
                   cols: slice) -> np.ndarray:
    """``ds[start:stop, rows, cols]`` read as one hyperslab (frames ``start`` to ``stop - 1``)."""
    f, ds = open_dataset(filename, dataset)
    try:
        if ds.ndim == 2:
            return np.asarray(ds[rows, cols])[None][start:stop]
        return np.asarray(ds[start:stop, rows, cols])
    except OSError as exc:
        raise FrameReadError(f"cannot read frames {start}..{stop - 1} of {dataset!r}: {exc}",
                             path=filename, frame=start) from None
    finally:
        f.close()
