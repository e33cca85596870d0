"""What a map job computes: the ROI + binning and rings (:class:`MapSpec`), and the
corrections applied to every frame (:class:`Corrections`); validated once, on creation.

Conventions (see DESIGN.md): frames are ``(row, col) = (y, x)``; ROIs numpy style
``(slice(y0, y1), slice(x0, x1))``, rows from the top, stop **exclusive**; binning **sums**
``b x b`` blocks; a ring holds the pixels whose centre is at distance ``d`` from
``(cen_y, cen_x)`` (pixel units, pixel ``(i, j)`` has its centre at ``(i, j)``) with
``radius - width/2 <= d <= radius + width/2`` (both bounds inclusive); corrections in
xrsmap's order: ``dark`` subtracted, ``flat`` divided, ``background`` subtracted, ``mask``
applied (nonzero = excluded), per-frame ``norm`` divided.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..invalid import parse_invalid


def _finite_fields(obj, names) -> None:
    """Set the fields ``names`` of a frozen dataclass to floats, refusing non-numbers and
    non-finite values (:class:`InputError` naming the field)."""
    for name in names:
        try:
            value = float(getattr(obj, name))
        except (TypeError, ValueError):
            raise InputError(f"must be a number, got {getattr(obj, name)!r}",
                             argument=name) from None
        if not np.isfinite(value):
            raise InputError(f"must be finite, got {value}", argument=name)
        object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Ring:
    """One annulus: centre ``(cen_y, cen_x)``, ``radius`` and full ``width`` in pixels."""

    cen_y: float
    cen_x: float
    radius: float
    width: float

    def __post_init__(self):
        _finite_fields(self, ("cen_y", "cen_x", "radius", "width"))
        if self.radius < 0:
            raise InputError(f"must be >= 0, got {self.radius}", argument="radius")
        if self.width < 0:
            raise InputError(f"must be >= 0, got {self.width}", argument="width")

    @property
    def inner(self) -> float:
        return self.radius - self.width / 2

    @property
    def outer(self) -> float:
        return self.radius + self.width / 2


@dataclass(frozen=True)
class UnitRing:
    """A ring without a centre: ``position +- width / 2`` in the radial unit of the job's
    detector geometry (a PONI file places it on the detector; without one, the job's
    centre ``cen_y``/``cen_x`` makes it a pixel :class:`Ring`)."""

    position: float
    width: float

    def __post_init__(self):
        _finite_fields(self, ("position", "width"))
        if self.width < 0:
            raise InputError(f"must be >= 0, got {self.width}", argument="width")

    def centred(self, cen_y: float, cen_x: float) -> Ring:
        """The pixel ring of this position and width around ``(cen_y, cen_x)``."""
        return Ring(cen_y, cen_x, self.position, self.width)


def rings(cen_y: float, cen_x: float, radii, width) -> tuple[Ring, ...]:
    """Rings sharing a centre: ``radii`` a number or a list, ``width`` one or one per ring."""
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    widths = np.broadcast_to(np.asarray(width, dtype=float), radii.shape) \
        if np.ndim(width) == 0 or len(np.atleast_1d(width)) == len(radii) else None
    if widths is None:
        raise InputError(f"give one width or one per radius ({len(radii)})", argument="width")
    return tuple(Ring(cen_y, cen_x, float(r), float(w)) for r, w in zip(radii, widths))


def radial_bins(cen_y: float, cen_x: float, edges) -> tuple[Ring, ...]:
    """Rings from radial bin ``edges`` (increasing): ring k spans ``edges[k] .. edges[k+1]``
    (both bounds inclusive, so a pixel exactly on an edge counts in both neighbours)."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise InputError("bin edges must be an increasing list of at least 2 radii",
                         argument="edges")
    return tuple(Ring(cen_y, cen_x, (a + b) / 2, b - a) for a, b in zip(edges[:-1], edges[1:]))


def _as_image(value, name: str, dtype) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise InputError(f"must be a 2-D image, got shape {arr.shape}", argument=name)
    return np.ascontiguousarray(arr, dtype=dtype)


@dataclass(frozen=True, eq=False)
class Corrections:
    """Per-pixel and per-frame corrections, applied in xrsmap's order.

    Parameters
    ----------
    dark : (rows, cols) array, optional
        Subtracted first.
    flat : (rows, cols) array, optional
        Divided next.
    background : (rows, cols) array, optional
        Subtracted next (an image already dark/flat corrected, e.g. the mean of background
        frames).
    mask : (rows, cols) array, optional
        Nonzero/True = pixel excluded: it adds nothing to any sum and shows ``dummy`` in
        the composite (a binned pixel shows ``dummy`` when all its pixels are excluded).
    norm : (nframes,) array, optional
        Every result of frame ``i`` is divided by ``norm[i]`` (e.g. incident flux).
    dummy : float
        Composite value of excluded pixels and of unreadable frames.
    dtype : str
        Working and composite dtype (``'float32'`` as xrsmap).
    invalid : 'auto', 'none' or values
        Invalid-pixel rule (:mod:`xrsmap_dask.invalid`): pixels holding a detector's
        reserved values are excluded in the frames that hold them, as masked pixels are in
        every frame.  ``'auto'`` (default): the all-ones value of unsigned integer data,
        negative values of signed integer data, nothing for floats; resolved against the
        series' dtype by :func:`~xrsmap_dask.maps.build_maps`.
    """

    dark: np.ndarray | None = None
    flat: np.ndarray | None = None
    background: np.ndarray | None = None
    mask: np.ndarray | None = None
    norm: np.ndarray | None = None
    dummy: float = 0.0
    dtype: str = "float32"
    invalid: Any = "auto"

    def __post_init__(self):
        object.__setattr__(self, "invalid", parse_invalid(self.invalid))
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            raise InputError(f"not a dtype: {self.dtype!r}", argument="dtype") from None
        if dtype.kind != "f":
            raise InputError(f"must be a float dtype, got {dtype}", argument="dtype")
        object.__setattr__(self, "dtype", dtype.name)
        for name in ("dark", "flat", "background"):
            object.__setattr__(self, name, _as_image(getattr(self, name), name, dtype))
        mask = _as_image(self.mask, "mask", None)
        if mask is not None:
            mask = mask != 0
        object.__setattr__(self, "mask", mask)
        shapes = {n: getattr(self, n).shape for n in ("dark", "flat", "background", "mask")
                  if getattr(self, n) is not None}
        if len(set(shapes.values())) > 1:
            raise InputError("shapes differ: " + ", ".join(f"{n} {s[0]} x {s[1]}"
                                                           for n, s in shapes.items()),
                             argument="/".join(shapes))
        keep = None if mask is None else ~mask
        for name in ("dark", "flat", "background"):
            arr = getattr(self, name)
            if arr is None or (keep is not None and arr.shape != keep.shape):
                continue
            vals = arr if keep is None else arr[keep]
            bad = ~np.isfinite(vals) if name != "flat" else ~np.isfinite(vals) | (vals == 0)
            if bad.any():
                what = "zero or non-finite" if name == "flat" else "non-finite"
                raise InputError(f"{int(bad.sum())} {what} values at pixels the mask keeps "
                                 f"(they would make the maps NaN/inf); mask them",
                                 argument=name)
        if self.norm is not None:
            norm = np.asarray(self.norm, dtype=np.float64)
            if norm.ndim != 1:
                raise InputError(f"must be 1-D (one value per frame), got shape {norm.shape}",
                                 argument="norm")
            if not np.all(np.isfinite(norm)) or np.any(norm == 0):
                raise InputError("must be finite and nonzero", argument="norm")
            object.__setattr__(self, "norm", norm)
        try:
            object.__setattr__(self, "dummy", float(self.dummy))
        except (TypeError, ValueError):
            raise InputError(f"must be a number, got {self.dummy!r}", argument="dummy") from None

    @property
    def pixelwise(self) -> bool:
        """Whether any per-pixel correction is set."""
        return any(getattr(self, n) is not None for n in ("dark", "flat", "background", "mask"))

    def check(self, frame_shape: Sequence[int], nframes: int) -> None:
        """Raise :class:`InputError` naming the correction whose shape does not fit."""
        frame_shape = tuple(int(v) for v in frame_shape)
        for name in ("dark", "flat", "background", "mask"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != frame_shape:
                raise InputError(f"shape {arr.shape[0]} x {arr.shape[1]} differs from the "
                                 f"frames' {frame_shape[0]} x {frame_shape[1]}", argument=name)
        if self.norm is not None and len(self.norm) != nframes:
            raise InputError(f"{len(self.norm)} values for {nframes} frames", argument="norm")

    def to_attrs(self) -> dict:
        """JSON-able summary: which corrections are set, with a digest of each array."""
        import hashlib

        out: dict = {"dummy": self.dummy, "dtype": self.dtype,
                      "invalid": list(self.invalid) if isinstance(self.invalid, tuple)
                      else self.invalid}
        for name in ("dark", "flat", "background", "mask", "norm"):
            arr = getattr(self, name)
            out[name] = None if arr is None else {
                "shape": list(arr.shape),
                "sha1": hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()}
        return out



@dataclass(frozen=True, eq=False)
class MapSpec:
    """What to compute: ROI + binning (composite and/or ROI sum), rings and radial bins.

    ``roi`` is numpy style ``(slice(y0, y1), slice(x0, x1))`` (stop exclusive, rows from the
    top; ``None`` = whole frame); ``binning`` a positive int dividing both ROI sides;
    ``rings`` pixel rings (:class:`Ring`); ``radial`` a
    :class:`~xrsmap_dask.maps.radial.RadialSpec`: rings in a physical unit and/or radial
    bins from a detector geometry (a PONI file).  Rings are either pixel rings or rings of
    ``radial``, not both (they share the output ``annulus_sum``).
    """

    roi: tuple | None = None
    binning: int = 1
    rings: tuple = ()
    composite: bool = True
    roi_sum: bool = True
    radial: object = None

    def __post_init__(self):
        b = self.binning if self.binning is not None else 1
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise InputError(f"must be a positive int, got {self.binning!r}", argument="binning")
        object.__setattr__(self, "binning", int(b))
        rs = tuple(self.rings)
        for r in rs:
            if not isinstance(r, Ring):
                raise InputError(f"expected Ring objects, got {r!r}", argument="rings")
        object.__setattr__(self, "rings", rs)
        if self.radial is not None:
            from .radial import RadialSpec

            if not isinstance(self.radial, RadialSpec):
                raise InputError(f"expected a RadialSpec, got {self.radial!r}",
                                 argument="radial")
            if rs and self.radial.nrings:
                raise InputError("rings are given either in pixels around a centre or in the "
                                 "radial unit of the geometry, not both", argument="rings")
        if not (self.composite or self.roi_sum or rs or self.radial is not None):
            raise InputError("nothing to compute: no composite, no roi_sum and no rings",
                             argument="spec")
