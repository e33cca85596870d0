"""Detector geometry: per-pixel radial and azimuthal (chi) values, in pixels or from pyFAI.

Two geometries share one interface (:class:`DetectorGeometry`):

* :class:`PixelGeometry` -- no calibration: the radial value of pixel ``(i, j)`` is its
  distance in pixels from a centre ``(cen_y, cen_x)``, pixel ``(i, j)`` having its centre at
  ``(i, j)`` (the convention of the pixel rings in :mod:`xrsmap_dask.maps`); unit
  ``'pixel'``.  Today's pixel rings are this case of the same code.
* :class:`PoniGeometry` -- a pyFAI PONI file read with pyFAI itself (distance, PONI, the
  three tilts, wavelength, detector): per-pixel values at pixel centres from pyFAI's
  ``array_from_unit(shape, 'center', unit)`` in pyFAI's units ``q_nm^-1``, ``q_A^-1``,
  ``2th_deg``, ``2th_rad``, ``r_mm``, ``d*2_A^-2``; the detector's own mask (module gaps);
  pyFAI's solid-angle and polarization arrays.

Conventions:

* frames are ``(row, col) = (y, x)``, rows from the top; a ``box`` is numpy style
  ``(slice(y0, y1), slice(x0, x1))``, stop exclusive; arrays come back ``(box rows, box
  cols)``, float64, read-only;
* chi (azimuth) in radians in ``(-pi, pi]`` as pyFAI's ``chi_rad``; for a pixel geometry
  ``atan2(i - cen_y, j - cen_x)``, which is pyFAI's chi for an untilted detector whose PONI
  sits on pixel ``(cen_y, cen_x)``; chi *sectors* are given in degrees (as pyFAI's
  ``azimuth_range``), bounds inclusive, see :func:`chi_sector_mask`;
* masks: ``True`` = pixel excluded (pyFAI: nonzero = masked).

Both geometries are frozen and picklable (a PONI geometry carries the file's parameters, not
the file, and rebuilds its pyFAI object where it is used).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import InputError
from .roi import RoiSlices, normalize_roi
from .settings.fields import parse_bool, parse_number, short

#: radial units: name -> (long name, units string for attrs and NeXus)
UNITS = {
    "pixel": ("distance from the centre", "pixel"),
    "q_nm^-1": ("scattering vector q", "1/nm"),
    "q_A^-1": ("scattering vector q", "1/angstrom"),
    "2th_deg": ("scattering angle 2theta", "degree"),
    "2th_rad": ("scattering angle 2theta", "rad"),
    "r_mm": ("radius on the detector", "mm"),
    "d*2_A^-2": ("reciprocal spacing squared d*^2", "1/angstrom^2"),
}
PONI_UNITS = tuple(u for u in UNITS if u != "pixel")
_NEEDS_WAVELENGTH = ("q_nm^-1", "q_A^-1", "d*2_A^-2")
_ALIASES = {"px": "pixel", "pixels": "pixel", "pix": "pixel"}


# ---------------------------------------------------------------------------------------
# parse functions (one per settings field; errors name the field)


def parse_unit(value) -> str | None:
    """A radial unit of :data:`UNITS` (any letter case; ``px``/``pixels``), canonical
    spelling; ``None`` = the geometry's default unit (pixel, or q_nm^-1 with a PONI file)."""
    if value is None:
        return None
    names = {u.lower(): u for u in UNITS} | _ALIASES
    if not isinstance(value, str) or value.strip().lower() not in names:
        raise InputError(f"must be one of {', '.join(UNITS)}, got {short(value)}",
                         argument="unit")
    return names[value.strip().lower()]


def parse_chi_sector(value) -> tuple[float, float] | None:
    """An azimuthal sector ``[start, stop]`` in degrees, or ``None`` (all azimuths).

    The sector runs from ``start`` towards increasing chi to ``stop`` (``[170, -170]`` is the
    20 degrees around 180); both in [-360, 360] and not equal; ``stop - start = 360`` (e.g.
    ``[-180, 180]``) is the full circle.
    """
    if value is None:
        return None
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise InputError(f"must be two angles [start, stop] in degrees, got {short(value)}",
                         argument="chi")
    start, stop = (parse_number(v, "chi") for v in value)
    if abs(start) > 360 or abs(stop) > 360 or start == stop:
        raise InputError(f"angles must be in [-360, 360] and differ, got {short(value)}",
                         argument="chi")
    return start, stop


def parse_poni(value) -> str | None:
    """Path of a pyFAI PONI file (checked: it exists and pyFAI reads a geometry from it)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise InputError(f"must be the path of a PONI file, got {short(value)}",
                         argument="poni")
    path = os.path.abspath(os.fspath(value))
    _read_poni(path)
    return path


def parse_polarization(value) -> float | None:
    """Polarization factor in [-1, 1] (pyFAI's: 0 unpolarized, ~0.99 horizontal at a
    synchrotron) or ``None`` for no polarization correction."""
    if value is None:
        return None
    factor = parse_number(value, "polarization")
    if not -1 <= factor <= 1:
        raise InputError(f"must be in [-1, 1], got {short(value)}", argument="polarization")
    return factor


def parse_solid_angle(value) -> bool:
    """Whether to divide by the pixels' solid angle (``True``/``False``)."""
    return parse_bool(value, "solid_angle")


# ---------------------------------------------------------------------------------------
# chi sectors


def chi_sector_mask(chi: np.ndarray, sector: tuple[float, float] | None) -> np.ndarray:
    """``True`` where ``chi`` (radians, ``(-pi, pi]``) lies in ``sector`` (degrees, see
    :func:`parse_chi_sector`), both bounds inclusive, as pyFAI's ``azimuth_range``."""
    if sector is None:
        return np.ones(np.shape(chi), dtype=bool)
    start, stop = sector
    if stop - start >= 360:
        return np.ones(np.shape(chi), dtype=bool)

    def wrap(deg):  # into (-180, 180]
        deg = math.fmod(deg, 360.0)
        return deg - 360 if deg > 180 else deg + 360 if deg <= -180 else deg

    lo, hi = np.deg2rad(wrap(start)), np.deg2rad(wrap(stop))
    if lo <= hi:
        return (chi >= lo) & (chi <= hi)
    return (chi >= lo) | (chi <= hi)


# ---------------------------------------------------------------------------------------
# geometries


def _box_grid(shape, box) -> tuple[np.ndarray, np.ndarray]:
    box = normalize_roi(box, shape, argument="box")
    yy = np.arange(box[0].start, box[0].stop, dtype=np.float64)[:, None]
    xx = np.arange(box[1].start, box[1].stop, dtype=np.float64)[None, :]
    return yy, xx


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


class DetectorGeometry:
    """Interface of the detector geometries (see the module docstring for conventions).

    ``shape`` arguments are the frame shape ``(rows, cols)``; ``box`` a numpy-style region of
    it (``None`` = the whole frame).
    """

    kind: str = ""
    default_unit: str = ""
    units: tuple = ()

    def resolve_unit(self, unit: str | None) -> str:
        """``unit`` checked against this geometry (``None``: its default unit)."""
        unit = self.default_unit if unit is None else parse_unit(unit)
        if unit not in self.units:
            hint = ("give a PONI file (poni) for pyFAI's units" if self.kind == "pixel" else
                    "with a PONI file, use r_mm for distances on the detector")
            raise InputError(f"unit {unit!r} is not available with a {self.kind} geometry; "
                             f"{hint} (available: {', '.join(self.units)})", argument="unit")
        return unit

    def check_shape(self, shape: Sequence[int]) -> tuple[int, int]:
        """The frame shape as ints; :class:`InputError` if it does not fit the detector."""
        shape = tuple(int(v) for v in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise InputError(f"a frame shape is (rows, cols), got {shape}", argument="shape")
        return shape

    def radial(self, unit: str | None, shape, box: RoiSlices | None = None) -> np.ndarray:
        raise NotImplementedError

    def chi(self, shape, box: RoiSlices | None = None) -> np.ndarray:
        raise NotImplementedError

    def mask(self, shape, box: RoiSlices | None = None) -> np.ndarray | None:
        """The detector's own mask (``True`` = excluded), or ``None`` when it has none."""
        return None

    def solid_angle(self, shape, box: RoiSlices | None = None) -> np.ndarray:
        raise InputError("the solid-angle correction needs a PONI file (poni)",
                         argument="solid_angle")

    def polarization(self, shape, factor: float, box: RoiSlices | None = None) -> np.ndarray:
        raise InputError("the polarization correction needs a PONI file (poni)",
                         argument="polarization")

    def to_attrs(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class PixelGeometry(DetectorGeometry):
    """Distances in pixels from ``(cen_y, cen_x)`` (pixel ``(i, j)`` centred at ``(i, j)``)."""

    cen_y: float
    cen_x: float
    kind = "pixel"
    default_unit = "pixel"
    units = ("pixel",)

    def __post_init__(self):
        for name in ("cen_y", "cen_x"):
            object.__setattr__(self, name, parse_number(getattr(self, name), name))

    def radial(self, unit: str | None, shape, box: RoiSlices | None = None) -> np.ndarray:
        """Distance of each pixel centre from the centre, pixels, ``(box rows, box cols)``."""
        self.resolve_unit(unit)
        yy, xx = _box_grid(self.check_shape(shape), box)
        return _readonly(np.hypot(yy - self.cen_y, xx - self.cen_x))

    def chi(self, shape, box: RoiSlices | None = None) -> np.ndarray:
        """``atan2(row - cen_y, col - cen_x)``, radians in (-pi, pi]."""
        yy, xx = _box_grid(self.check_shape(shape), box)
        return _readonly(np.arctan2(yy - self.cen_y, xx - self.cen_x))

    def to_attrs(self) -> dict:
        return {"kind": "pixel", "cen_y": self.cen_y, "cen_x": self.cen_x,
                "convention": "pixel (i, j) centred at (i, j), rows from the top"}

    def __dask_tokenize__(self):
        return ("PixelGeometry", self.cen_y, self.cen_x)


def _read_poni(path: str) -> dict:
    """The geometry of a PONI file as plain JSON-able values, read with pyFAI."""
    from pyFAI.io.ponifile import PoniFile

    if not os.path.isfile(path):
        raise InputError("no such PONI file", path=path, argument="poni")
    try:
        poni = PoniFile(path).as_dict()
    except Exception as exc:  # noqa: BLE001 - pyFAI raises many types for bad files
        raise InputError(f"pyFAI cannot read it as a PONI file: {exc}", path=path,
                         argument="poni") from None
    missing = [k for k in ("dist", "poni1", "poni2", "rot1", "rot2", "rot3")
               if not isinstance(poni.get(k), (int, float)) or not math.isfinite(poni[k])]
    config = dict(poni.get("detector_config") or {})
    if any(not isinstance(config.get(k), (int, float)) for k in ("pixel1", "pixel2")) and \
            poni.get("detector") in (None, "Detector"):
        missing.append("pixel sizes")
    if missing:
        raise InputError(f"not a pyFAI PONI file (no {', '.join(missing)})", path=path,
                         argument="poni")
    if "orientation" in config:
        config["orientation"] = int(config["orientation"])
    poni["detector_config"] = json.loads(json.dumps(config))
    return {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in poni.items()}


@dataclass(frozen=True, eq=False)
class PoniGeometry(DetectorGeometry):
    """A pyFAI geometry (from a PONI file): per-pixel arrays in pyFAI's units.

    Build it with :func:`load_poni`.  ``config`` holds the PONI parameters (``dist``,
    ``poni1``, ``poni2``, ``rot1``-``rot3`` in metres/radians, ``wavelength``, ``detector``,
    ``detector_config``); ``path`` is where they came from (for messages and attrs only).
    """

    path: str
    config: dict
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    kind = "poni"
    default_unit = "q_nm^-1"
    units = PONI_UNITS

    def __getstate__(self):
        return {"path": self.path, "config": self.config}

    def __setstate__(self, state):
        object.__setattr__(self, "path", state["path"])
        object.__setattr__(self, "config", state["config"])
        object.__setattr__(self, "_cache", {})

    def __dask_tokenize__(self):
        return ("PoniGeometry", self.digest)

    @property
    def digest(self) -> str:
        """sha1 of the geometry parameters (not of the path)."""
        return hashlib.sha1(json.dumps(self.config, sort_keys=True).encode()).hexdigest()

    @property
    def integrator(self):
        """pyFAI's ``AzimuthalIntegrator`` for this geometry (built once per process)."""
        ai = self._cache.get("ai")
        if ai is None:
            import pyFAI

            ai = self._cache["ai"] = pyFAI.load(self.config)
        return ai

    @property
    def wavelength(self) -> float | None:
        """Wavelength in metres, ``None`` when the PONI file has none."""
        wl = self.config.get("wavelength")
        return float(wl) if isinstance(wl, (int, float)) and wl > 0 else None

    def check_shape(self, shape: Sequence[int]) -> tuple[int, int]:
        shape = super().check_shape(shape)
        det = self.integrator.detector
        if det.max_shape is not None and tuple(det.max_shape) != shape:
            raise InputError(f"the detector ({det.name}) is {det.max_shape[0]} x "
                             f"{det.max_shape[1]} pixels, the frames {shape[0]} x {shape[1]}",
                             path=self.path, argument="poni")
        return shape

    def _array(self, key: tuple, shape, box, make, dtype=np.float64) -> np.ndarray:
        """``make(shape)`` for the whole frame, computed once per process, cropped to ``box``."""
        shape = self.check_shape(shape)
        arr = self._cache.get(key + (shape,))
        if arr is None:
            arr = _readonly(np.ascontiguousarray(make(shape), dtype=dtype))
            self._cache[key + (shape,)] = arr
        return arr[normalize_roi(box, shape, argument="box")]

    def radial(self, unit: str | None, shape, box: RoiSlices | None = None) -> np.ndarray:
        """pyFAI's per-pixel value in ``unit`` at each pixel centre, ``(box rows, box cols)``."""
        unit = self.resolve_unit(unit)
        if unit in _NEEDS_WAVELENGTH and self.wavelength is None:
            raise InputError(f"unit {unit} needs a wavelength and the PONI file has none",
                             path=self.path, argument="unit")
        return self._array(("radial", unit), shape, box, lambda s: self.integrator
                           .array_from_unit(s, "center", unit, scale=True))

    def chi(self, shape, box: RoiSlices | None = None) -> np.ndarray:
        """pyFAI's chi at each pixel centre, radians in (-pi, pi] (what integrate1d uses)."""
        return self._array(("chi",), shape, box, lambda s: self.integrator
                           .array_from_unit(s, "center", "chi_deg", scale=False))

    def mask(self, shape, box: RoiSlices | None = None) -> np.ndarray | None:
        """The detector's mask from pyFAI (module gaps...), ``True`` = excluded, or ``None``."""
        mask = self.integrator.detector.mask
        if mask is None or not np.any(mask):
            return None
        return self._array(("mask",), shape, box, lambda s: np.asarray(mask) != 0, bool)

    def solid_angle(self, shape, box: RoiSlices | None = None) -> np.ndarray:
        """pyFAI's relative solid angle of each pixel (cos^3 of the incidence angle; 1 at
        the PONI), the array ``integrate1d(correctSolidAngle=True)`` divides by."""
        return self._array(("solid_angle",), shape, box,
                           lambda s: self.integrator.solidAngleArray(s, order=3))

    def polarization(self, shape, factor: float, box: RoiSlices | None = None) -> np.ndarray:
        """pyFAI's polarization array for ``factor`` (see :func:`parse_polarization`)."""
        factor = parse_polarization(factor)
        if factor is None:
            raise InputError("a polarization factor in [-1, 1] is needed",
                             argument="polarization")
        return self._array(("polarization", factor), shape, box,
                           lambda s: self.integrator.polarization(s, factor=factor))

    def to_attrs(self) -> dict:
        return {"kind": "poni", "path": self.path, "sha1": self.digest, "config": self.config}


def load_poni(path) -> PoniGeometry:
    """Read a pyFAI PONI file (with pyFAI) into a :class:`PoniGeometry`."""
    path = parse_poni(path)
    return PoniGeometry(path, _read_poni(path))


def make_geometry(poni=None, cen_y: float | None = None,
                  cen_x: float | None = None) -> DetectorGeometry:
    """The geometry of a job: from ``poni`` when given, else pixels around ``(cen_y, cen_x)``."""
    if poni is not None:
        return poni if isinstance(poni, PoniGeometry) else load_poni(poni)
    if cen_y is None or cen_x is None:
        raise InputError("without a PONI file (poni), rings and radial bins need a centre "
                         "(cen_y, cen_x) in pixels", argument="poni")
    return PixelGeometry(cen_y, cen_x)


def unit_attrs(unit: str) -> dict:
    """``{'long_name': ..., 'units': ...}`` of a radial unit (for xarray and NeXus)."""
    long_name, units = UNITS[parse_unit(unit)]
    return {"long_name": f"{long_name} ({unit})", "units": units}
