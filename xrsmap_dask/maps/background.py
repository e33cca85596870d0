"""The background image xrsmap subtracts, from a set of background frames."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError


def background_image(frames, method: str = "mean", pct: float | None = None, *,
                     dark: np.ndarray | None = None, flat: np.ndarray | None = None,
                     frame_shape: Sequence[int] | None = None, scheduler=None) -> np.ndarray:
    """The background image xrsmap subtracts: the ``method`` image of the background
    ``frames`` (any image series or list of paths; ``'mean'`` as xrsmap, ``'median'``, or
    ``'percentile'`` with ``pct`` in [0, 100], exact, see :func:`xrsmap_dask.stats.background`),
    itself dark-subtracted and flat-divided.  float64, (rows, cols).

    Shapes (of the background frames, ``dark``, ``flat`` and the scan's ``frame_shape`` when
    given) are checked before anything is read.
    """
    from ..imageseries import as_imageseries
    from ..stats import BACKGROUND_METHODS, background as stats_background

    if method not in BACKGROUND_METHODS:
        raise InputError(f"must be one of {BACKGROUND_METHODS}, got {method!r}",
                         argument="background method")
    frames = as_imageseries(frames)
    shape = tuple(frames.shape)
    for name, ref in (("background", frame_shape), ("dark", None if dark is None else dark.shape),
                      ("flat", None if flat is None else flat.shape)):
        if ref is not None and tuple(ref) != shape:
            what = "the frames'" if name == "background" else f"{name}"
            raise InputError(f"background frames are {shape[0]} x {shape[1]}, {what} "
                             f"{ref[0]} x {ref[1]}", argument=name)
    kwargs = {"scheduler": scheduler} if isinstance(scheduler, str) else {}
    bg = np.asarray(stats_background(frames, method, pct, **kwargs), dtype=np.float64)
    if dark is not None:
        bg = bg - dark
    if flat is not None:
        bg = bg / flat
    return bg
