"""Geometry settings of a map job: the detector geometry (rings and radial bins in physical
units) and the positions of the scan points (the outputs' ``y``/``x`` coordinates).

* :class:`GeometrySpec`: ``poni`` (a pyFAI PONI file), ``unit``, the pixel centre
  ``cen_y``/``cen_x`` (without a PONI file), ``radial_bins``, ``radial_range``, ``chi``
  (azimuthal sector, degrees), ``solid_angle`` and ``polarization``;
* :class:`AxesSpec`: ``step`` and ``origin`` (nominal positions) or ``motor_positions``
  (measured, one ``(y, x)`` per frame), in ``position_units``.

Each field is parsed by the function of the module that uses it
(:mod:`xrsmap_dask.geometry`, :mod:`xrsmap_dask.radial`, :mod:`xrsmap_dask.maps.coords`),
imported lazily: those modules import :mod:`.fields` themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .fields import parse_bool, parse_number


def parse_centre_coordinate(value: Any, name: str) -> float | None:
    """A ring/bin centre coordinate in pixels (``cen_y`` row, ``cen_x`` column, rows from the
    top, pixel ``(i, j)`` centred at ``(i, j)``), or ``None``."""
    return None if value is None else parse_number(value, name)


@dataclass(frozen=True)
class GeometrySpec:
    """How rings and radial bins are placed on the detector (see the module docstring).

    Without ``poni``, rings and bins are in pixels around ``(cen_y, cen_x)`` and the
    solid-angle and polarization corrections are not available.
    """

    poni: str | None = None
    unit: str | None = None
    cen_y: float | None = None
    cen_x: float | None = None
    radial_bins: int | None = None
    radial_range: tuple | None = None
    chi: tuple | None = None
    solid_angle: bool = False
    polarization: float | None = None

    def __post_init__(self):
        from .. import geometry as G
        from .. import radial as R

        object.__setattr__(self, "unit", G.parse_unit(self.unit))
        for name in ("cen_y", "cen_x"):
            object.__setattr__(self, name, parse_centre_coordinate(getattr(self, name), name))
        object.__setattr__(self, "radial_bins", R.parse_radial_bins(self.radial_bins))
        object.__setattr__(self, "radial_range", R.parse_radial_range(self.radial_range))
        object.__setattr__(self, "chi", G.parse_chi_sector(self.chi))
        object.__setattr__(self, "solid_angle", parse_bool(self.solid_angle, "solid_angle"))
        object.__setattr__(self, "polarization", G.parse_polarization(self.polarization))
        if self.poni is None:
            if self.unit not in (None, "pixel"):
                raise InputError(f"unit {self.unit} needs a PONI file (@{{poni}}); without one "
                                 "rings and bins are in pixels", argument="unit")
            for name in ("solid_angle", "polarization"):
                if getattr(self, name) not in (False, None):
                    raise InputError("needs a PONI file (@{poni})", argument=name)
            if (self.cen_y is None) != (self.cen_x is None):
                raise InputError("give both @{cen_y} and @{cen_x}", argument="cen_y")
        elif self.cen_y is not None or self.cen_x is not None:
            raise InputError("the PONI file (@{poni}) places rings and bins on the detector; "
                             "give no centre", argument="cen_y")
        if self.radial_range is not None and self.radial_bins is None:
            raise InputError("needs @{radial_bins}", argument="radial_range")

    @property
    def centre(self) -> tuple[float, float] | None:
        return None if self.cen_y is None else (self.cen_y, self.cen_x)

    @property
    def wanted(self) -> bool:
        """Whether rings and bins go through a detector geometry (a PONI file, radial bins
        or a chi sector); otherwise pixel rings are today's annuli."""
        return self.poni is not None or self.radial_bins is not None or self.chi is not None

    def to_attrs(self) -> dict:
        return {k: getattr(self, k) for k in ("poni", "unit", "cen_y", "cen_x", "radial_bins",
                                              "radial_range", "chi", "solid_angle",
                                              "polarization")}


@dataclass(frozen=True, eq=False)
class AxesSpec:
    """Positions of the scan points: a nominal ``step`` ``[dy, dx]`` and ``origin``
    ``[y0, x0]``, or ``motor_positions`` (a ``.npy``/``.csv`` table of one ``(y, x)`` per
    frame, or two HDF5 datasets ``[file.h5:/y, file.h5:/x]``, or a ``(frames, 2)`` array),
    in ``position_units`` (default ``mm``; a CSV header or the datasets' ``units`` attrs
    may name them)."""

    step: tuple | None = None
    origin: tuple | None = None
    position_units: str | None = None
    motor_positions: Any = None

    def __post_init__(self):
        from ..maps.coords import parse_origin, parse_position_units, parse_step

        object.__setattr__(self, "step", parse_step(self.step))
        object.__setattr__(self, "origin", parse_origin(self.origin))
        object.__setattr__(self, "position_units", parse_position_units(self.position_units))
        if self.motor_positions is not None and self.step is not None:
            raise InputError("give motor positions or a nominal @{step}, not both",
                             argument="motor_positions")
        if self.origin is not None and self.step is None:
            raise InputError("needs @{step}", argument="origin")
