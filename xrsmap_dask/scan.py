"""Scan geometry: which map point (row, col) each frame of a scan belongs to.

Maps have shape ``(npt_y, npt_x)``: the slow (y) axis first, rows counted from the top.
Frame ``i`` is the ``i``-th frame of the series (file order).  Kinds:

* ``'raster'`` (default, xrsmap's order): row-major, x fastest:
  ``(row, col) = divmod(i, npt_x)``;
* ``'snake'`` (boustrophedon): as raster but every odd row runs right to left:
  ``col = npt_x - 1 - (i % npt_x)`` on rows 1, 3, 5, ...;
* ``'column'`` (column-first): y fastest: ``(col, row) = divmod(i, npt_y)``;
* ``'positions'``: an explicit ``(nframes, 2)`` table of ``(row, col)`` per frame.

A series must hold exactly ``npt_y * npt_x`` frames (or as many as the position table);
``allow_incomplete=True`` accepts fewer (an interrupted scan): the points no frame reaches
are left NaN and :meth:`ScanGeometry.unfilled` says how many.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

KINDS = ("raster", "snake", "column", "positions")


@dataclass(frozen=True)
class ScanGeometry:
    """Shape and point order of a 2-D scan; validated once on creation.

    Parameters
    ----------
    npt_y, npt_x : int
        Number of points along y (map rows, slow axis) and x (map columns).
    kind : {'raster', 'snake', 'column', 'positions'}
        Point order (see the module docstring).  Giving ``positions`` implies
        ``'positions'``.
    positions : array-like of shape (nframes, 2), optional
        ``(row, col)`` of each frame, for scans of any other order.  Points must be inside
        the map and distinct.
    allow_incomplete : bool
        Accept a series with fewer frames than points (unfilled points are NaN).
    """

    npt_y: int
    npt_x: int
    kind: str = "raster"
    positions: tuple | None = field(default=None, compare=True)
    allow_incomplete: bool = False

    def __post_init__(self):
        for name in ("npt_y", "npt_x"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"must be a positive int, got {value!r}", argument=name)
            object.__setattr__(self, name, int(value))
        kind = self.kind
        if self.positions is not None and kind == "raster":
            kind = "positions"
        if kind not in KINDS:
            raise InputError(f"must be one of {KINDS}, got {kind!r}", argument="kind")
        object.__setattr__(self, "kind", kind)
        if kind == "positions":
            if self.positions is None:
                raise InputError("kind='positions' needs a (nframes, 2) position table",
                                 argument="positions")
            try:
                pos = np.asarray(self.positions)
            except (TypeError, ValueError):
                raise InputError("expected a (nframes, 2) table of (row, col)",
                                 argument="positions") from None
            if pos.ndim != 2 or pos.shape[1] != 2 or len(pos) == 0:
                raise InputError(f"expected a (nframes, 2) table of (row, col), got shape "
                                 f"{pos.shape}", argument="positions")
            if pos.dtype.kind not in "iu":
                if pos.dtype.kind != "f" or not np.all(np.mod(pos, 1) == 0):
                    raise InputError("positions must be integer (row, col) indices",
                                     argument="positions")
            pos = pos.astype(np.int64)
            bad = (pos[:, 0] < 0) | (pos[:, 0] >= self.npt_y) | (pos[:, 1] < 0) | \
                (pos[:, 1] >= self.npt_x)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(f"frame {i} is at {tuple(pos[i])}, outside the "
                                 f"{self.npt_y} x {self.npt_x} map (npt_y x npt_x)",
                                 argument="positions")
            flat = pos[:, 0] * self.npt_x + pos[:, 1]
            uniq, counts = np.unique(flat, return_counts=True)
            if (counts > 1).any():
                dup = int(uniq[counts > 1][0])
                raise InputError(f"several frames at point {divmod(dup, self.npt_x)}",
                                 argument="positions")
            object.__setattr__(self, "positions", tuple(map(tuple, pos.tolist())))
        elif self.positions is not None:
            raise InputError(f"positions are only used with kind='positions', not {kind!r}",
                             argument="positions")
        object.__setattr__(self, "allow_incomplete", bool(self.allow_incomplete))

    # ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Map shape ``(npt_y, npt_x)``."""
        return self.npt_y, self.npt_x

    @property
    def npoints(self) -> int:
        """Frames a complete scan holds."""
        return len(self.positions) if self.kind == "positions" else self.npt_y * self.npt_x

    def check_nframes(self, nframes: int) -> int:
        """Check a series length; return the number of map points left unfilled.

        Raises :class:`InputError` when ``nframes`` differs from :attr:`npoints` (fewer
        frames are accepted with ``allow_incomplete=True``).
        """
        nframes = int(nframes)
        want = self.npoints
        if nframes == want:
            return self.npt_y * self.npt_x - want
        if nframes < want and self.allow_incomplete and nframes > 0:
            return self.npt_y * self.npt_x - nframes
        hint = "" if nframes > want else "; pass allow_incomplete=True to accept a partial scan"
        raise InputError(f"{nframes} frames for a {self.npt_y} x {self.npt_x} scan "
                         f"(npt_y x npt_x) of {want} points{hint}", argument="in_files")

    def frame_positions(self, nframes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` int64 arrays: the map point of each of the first ``nframes``."""
        n = self.npoints if nframes is None else int(nframes)
        self.check_nframes(n)
        i = np.arange(n, dtype=np.int64)
        if self.kind == "raster":
            rows, cols = np.divmod(i, self.npt_x)
        elif self.kind == "snake":
            rows, cols = np.divmod(i, self.npt_x)
            odd = rows % 2 == 1
            cols[odd] = self.npt_x - 1 - cols[odd]
        elif self.kind == "column":
            cols, rows = np.divmod(i, self.npt_y)
        else:
            pos = np.asarray(self.positions, dtype=np.int64)[:n]
            rows, cols = pos[:, 0].copy(), pos[:, 1].copy()
        return rows, cols

    def position(self, index: int) -> tuple[int, int]:
        """``(row, col)`` of frame ``index``."""
        rows, cols = self.frame_positions()
        if not 0 <= index < len(rows):
            raise IndexError(f"frame {index} out of range for a scan of {len(rows)} points")
        return int(rows[index]), int(cols[index])

    def point_to_frame(self, nframes: int | None = None) -> np.ndarray:
        """``(npt_y, npt_x)`` int64 array: the frame at each point, ``-1`` where none."""
        rows, cols = self.frame_positions(nframes)
        out = np.full(self.shape, -1, dtype=np.int64)
        out[rows, cols] = np.arange(len(rows))
        return out

    def place(self, values, nframes: int | None = None, fill=np.nan) -> np.ndarray:
        """Scatter per-frame ``values`` (nframes, ...) into a map (npt_y, npt_x, ...)."""
        values = np.asarray(values)
        n = len(values) if nframes is None else int(nframes)
        rows, cols = self.frame_positions(n)
        dtype = np.result_type(values.dtype, np.min_scalar_type(fill))
        out = np.full(self.shape + values.shape[1:], fill, dtype=dtype)
        out[rows, cols] = values[:n]
        return out

    def unfilled(self, nframes: int) -> int:
        """Map points no frame reaches (0 for a complete scan)."""
        return self.check_nframes(nframes)

    def to_attrs(self) -> dict:
        """JSON-able description (for zarr attrs)."""
        d = {"npt_y": self.npt_y, "npt_x": self.npt_x, "kind": self.kind,
             "allow_incomplete": self.allow_incomplete}
        if self.positions is not None:
            d["positions"] = [list(p) for p in self.positions]
        return d


def as_scan(scan, npt_y: int | None = None, npt_x: int | None = None) -> ScanGeometry:
    """A :class:`ScanGeometry` from ``scan`` (geometry, kind name or None) and the mesh size."""
    if isinstance(scan, ScanGeometry):
        if (npt_y is not None and scan.npt_y != npt_y) or \
                (npt_x is not None and scan.npt_x != npt_x):
            raise InputError(f"scan is {scan.npt_y} x {scan.npt_x} but npt_y x npt_x is "
                             f"{npt_y} x {npt_x}", argument="scan")
        return scan
    if npt_y is None or npt_x is None:
        raise InputError("npt_y and npt_x are needed to build a scan geometry", argument="scan")
    if scan is None:
        return ScanGeometry(npt_y, npt_x)
    if isinstance(scan, str):
        return ScanGeometry(npt_y, npt_x, kind=scan)
    if isinstance(scan, dict):
        return ScanGeometry(npt_y=npt_y, npt_x=npt_x, **scan)
    return ScanGeometry(npt_y, npt_x, positions=scan)
