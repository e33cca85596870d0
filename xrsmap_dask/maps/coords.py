"""Coordinates of a map output: where the scan points are (``y``, ``x``).

A map ``(npt_y, npt_x)`` gets the 1-D coordinates ``y`` ``(npt_y,)`` and ``x``
``(npt_x,)`` (so ``xarray.open_zarr(out).roi_sum.sel(y=..., x=...)`` and labelled plots
work), from, in this order of preference:

* measured motor positions, one ``(y, x)`` per frame (a table file or HDF5 datasets, read
  by :func:`xrsmap_dask.job_geometry.read_motor_positions`): ``y[i]`` is the mean measured y of
  the frames of map row ``i``, ``x[j]`` the mean measured x of map column ``j`` (rows or
  columns without any frame are filled on the straight line through the others); the
  measured positions themselves are kept as the 2-D coordinates ``y_position`` and
  ``x_position`` ``(y, x)`` (NaN at points without a frame);
* a nominal ``step`` ``(dy, dx)`` and ``origin`` ``(y0, x0)``: ``y[i] = y0 + i * dy``,
  ``x[j] = x0 + j * dx``;
* nothing: the scan point indices ``0 .. npt - 1`` (units ``1``).

Positions carry ``units`` (``mm`` unless told; a table may name its own).  Rows of the map
are counted from the top (row 0 is the first scan line).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..layout import ArraySpec
from ..settings.fields import parse_number, short

#: units of positions when none are given
DEFAULT_UNITS = "mm"


def parse_step(value) -> tuple[float, float] | None:
    """Nominal scan step ``[dy, dx]`` (two finite nonzero numbers, in the position units;
    negative when the motor runs backwards), or ``None`` (coordinates are point
    indices)."""
    if value is None:
        return None
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise InputError(f"must be two numbers [dy, dx], got {short(value)}", argument="step")
    dy, dx = (parse_number(v, "step") for v in value)
    if dy == 0 or dx == 0:
        raise InputError(f"must be nonzero, got {short(value)}", argument="step")
    return dy, dx


def parse_origin(value) -> tuple[float, float] | None:
    """Position ``[y0, x0]`` of scan point (0, 0) (default ``[0, 0]``)."""
    if value is None:
        return None
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise InputError(f"must be two numbers [y0, x0], got {short(value)}",
                         argument="origin")
    return tuple(parse_number(v, "origin") for v in value)


#: units a scan's motor positions are given in (lengths, angles, motor steps)
POSITION_UNITS = ("m", "cm", "mm", "um", "µm", "micron", "nm", "deg", "degree", "rad",
                  "mrad", "urad", "µrad", "steps")


def parse_position_units(value) -> str | None:
    """Units the user gives the scan positions in, one of :data:`POSITION_UNITS`;
    ``None``: ``mm``."""
    if value is None:
        return None
    if not isinstance(value, str) or value.strip() not in POSITION_UNITS:
        raise InputError(f"must be one of {', '.join(POSITION_UNITS)}, got {short(value)}",
                         argument="position_units")
    return value.strip()


def _units_string(value) -> str | None:
    """Units of positions as a file states them (a dataset's ``units`` attr, a CSV header):
    any short non-empty string; ``None``: ``mm``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 40:
        raise InputError(f"must be a units string such as mm or um, got {short(value)}",
                         argument="position_units")
    return value.strip()


@dataclass(frozen=True, eq=False)
class ScanAxes:
    """Positions of the scan points (see the module docstring).

    ``positions`` ``(nframes, 2)`` float64 holds the measured ``(y, x)`` of each frame
    (frame order); ``names`` the motors' names (long names of the coordinates).
    """

    step: tuple[float, float] | None = None
    origin: tuple[float, float] | None = None
    units: str | None = None
    positions: np.ndarray | None = field(default=None, repr=False)
    names: tuple[str, str] = ("y", "x")

    def __post_init__(self):
        object.__setattr__(self, "step", parse_step(self.step))
        object.__setattr__(self, "origin", parse_origin(self.origin))
        object.__setattr__(self, "units", _units_string(self.units) or DEFAULT_UNITS)
        if self.positions is not None:
            pos = np.asarray(self.positions, dtype=np.float64)
            if pos.ndim != 2 or pos.shape[1] != 2 or not len(pos):
                raise InputError(f"motor positions must be a (frames, 2) table of (y, x), got "
                                 f"shape {pos.shape}", argument="motor_positions")
            if not np.isfinite(pos).all():
                raise InputError("motor positions hold non-finite values",
                                 argument="motor_positions")
            pos.setflags(write=False)
            object.__setattr__(self, "positions", pos)
            if self.step is not None:
                raise InputError("give motor positions or a nominal @{step}, not both",
                                 argument="motor_positions")

    @property
    def given(self) -> bool:
        """Whether positions are known (step or measured), not only point indices."""
        return self.step is not None or self.positions is not None

    def to_attrs(self) -> dict:
        import hashlib

        out = {"units": self.units if self.given else "1",
               "source": "motor positions" if self.positions is not None else
               "step" if self.step is not None else "scan point index"}
        if self.step is not None:
            out.update(step=list(self.step), origin=list(self.origin or (0.0, 0.0)))
        if self.positions is not None:
            out.update(names=list(self.names), sha1=hashlib.sha1(
                np.ascontiguousarray(self.positions).tobytes()).hexdigest())
        return out

    def arrays(self, point_to_frame: np.ndarray) -> list[ArraySpec]:
        """The coordinate arrays of a map whose point ``(i, j)`` holds frame
        ``point_to_frame[i, j]`` (-1: none)."""
        ny, nx = point_to_frame.shape
        if self.positions is not None:
            return self._measured(point_to_frame)
        out = []
        for k, (dim, n, what) in enumerate((("y", ny, "row"), ("x", nx, "column"))):
            if self.step is None:
                values = np.arange(n, dtype=np.float64)
                attrs = {"long_name": f"scan point {what} index ({dim})", "units": "1"}
            else:
                origin = (self.origin or (0.0, 0.0))[k]
                values = origin + self.step[k] * np.arange(n, dtype=np.float64)
                # nominal positions: 0.6, not 0.6000000000000001 (so .sel(x=0.6) finds it)
                values = np.array([float(f"{v:.12g}") for v in values])
                attrs = {"long_name": f"scan position {dim} (nominal: origin + index x step)",
                         "units": self.units}
            out.append(_fixed(dim, (dim,), values, attrs))
        return out

    def _measured(self, point_to_frame: np.ndarray) -> list[ArraySpec]:
        pos = self.positions
        nframes = int(point_to_frame.max()) + 1
        if len(pos) < nframes:
            raise InputError(f"{len(pos)} motor positions for {nframes} frames",
                             argument="motor_positions")
        have = point_to_frame >= 0
        out = []
        grids = []
        for k in range(2):
            grid = np.full(point_to_frame.shape, np.nan)
            grid[have] = pos[point_to_frame[have], k]
            grids.append(grid)
        for k, (dim, axis, what) in enumerate((("y", 1, "row"), ("x", 0, "column"))):
            with np.errstate(invalid="ignore"):
                counts = have.sum(axis=axis)
                sums = np.where(have, grids[k], 0.0).sum(axis=axis)
                values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            values = _fill_line(values)
            name = self.names[k]
            out.append(_fixed(dim, (dim,), values, {
                "long_name": f"{name} (mean measured position of each map {what})",
                "units": self.units}))
        for k, dim in enumerate(("y", "x")):
            out.append(_fixed(f"{dim}_position", ("y", "x"), grids[k], {
                "long_name": f"{self.names[k]} (measured position of each scan point)",
                "units": self.units}))
        return out


def _fill_line(values: np.ndarray) -> np.ndarray:
    """NaN entries on the least-squares line through the others (one value: constant)."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    idx = np.arange(len(values), dtype=np.float64)
    good = ~bad
    if good.sum() >= 2:
        slope, intercept = np.polyfit(idx[good], values[good], 1)
        values = values.copy()
        values[bad] = intercept + slope * idx[bad]
    elif good.any():
        values = np.where(bad, values[good][0], values)
    else:
        values = idx
    return values


def _fixed(name: str, dims: tuple, values: np.ndarray, attrs: dict) -> ArraySpec:
    values = np.ascontiguousarray(values, dtype=np.float64)
    return ArraySpec(name, dims, values.shape, values.shape, "float64", np.nan, attrs=attrs,
                     values=values)


def parse_motor_positions(value, base_dir: str | None = None):
    """Measured scan positions: a path (``.npy`` ``(frames, 2)`` of ``(y, x)``, or a
    ``.csv``/``.txt`` table of two columns y, x with an optional header line naming them),
    two HDF5 datasets ``[file.h5:/path/y, file.h5:/path/x]`` (e.g. a Bliss scan's
    ``measurement/<motor>``), or a ``(frames, 2)`` array; ``None`` passes.  Paths are
    resolved (relative to ``base_dir``) and must exist; they are read when the job runs."""
    from ..settings.fields import resolve_path

    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and \
            all(isinstance(v, str) for v in value):
        return tuple(resolve_path(v, "motor_positions", base_dir, must_exist=True)
                     for v in value)
    if isinstance(value, str) or hasattr(value, "__fspath__"):
        return resolve_path(value, "motor_positions", base_dir, must_exist=True)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError("must be a table file, two HDF5 datasets [file.h5:/y, file.h5:/x] "
                         f"or a (frames, 2) array of (y, x), got {short(value)}",
                         argument="motor_positions")
    return arr
