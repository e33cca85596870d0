"""Geometry of a scan job, resolved when the job runs: the detector geometry of its rings and
radial bins (:func:`radial_spec`: the PONI file read with pyFAI) and the positions of its
scan points (:func:`scan_axes`: measured motor positions read from a table or HDF5).

Part of the pipeline layer (:mod:`xrsmap_dask.pipeline` calls it): it takes the validated
:class:`~xrsmap_dask.settings.ScanJob` and returns the objects of :mod:`xrsmap_dask.maps`.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError
from .settings import ScanJob


def radial_spec(job: ScanJob):
    """The :class:`~xrsmap_dask.maps.RadialSpec` of a job whose rings or bins go through a
    detector geometry (a PONI file, read here with pyFAI; or pixels around the centre),
    else ``None`` (pixel rings are today's annuli)."""
    from .geometry import PixelGeometry, load_poni
    from .maps import RadialSpec

    g = job.geometry
    if not g.wanted or not (job.rings or g.radial_bins):
        return None
    if g.poni is not None:
        geo = load_poni(g.poni)
        positions = [r.position for r in job.rings]
    else:
        geo = PixelGeometry(*(g.centre or (job.rings[0].cen_y, job.rings[0].cen_x)))
        positions = [r.radius for r in job.rings]
    return RadialSpec(geo, g.unit, positions, [r.width for r in job.rings], g.radial_bins,
                      g.radial_range, g.chi, g.solid_angle, g.polarization)


def read_motor_positions(value) -> tuple[np.ndarray, str | None, tuple[str, str]]:
    """``(positions (frames, 2), units or None, (y name, x name))`` from what
    :func:`xrsmap_dask.maps.coords.parse_motor_positions` accepted: a ``(frames, 2)``
    array, a ``.npy`` file, a ``.csv``/``.txt`` table (two columns y, x; an optional header
    line names them) or two HDF5 datasets ``(file.h5:/y, file.h5:/x)`` (their ``units``
    attrs name the units)."""
    if isinstance(value, np.ndarray):
        return value, None, ("y", "x")
    if isinstance(value, tuple):
        import h5py

        cols, units, names = [], set(), []
        for spec in value:
            path, _, dset = spec.rpartition(":")
            try:
                with h5py.File(path, "r") as f:
                    ds = f[dset]
                    cols.append(np.asarray(ds[()], dtype=np.float64).ravel())
                    u = ds.attrs.get("units")
            except (OSError, KeyError, ValueError, TypeError) as exc:
                raise InputError(f"cannot read motor positions: {exc}", path=spec,
                                 argument="motor_positions") from None
            units.add(u.decode() if isinstance(u, bytes) else u)
            names.append(dset.rstrip("/").rsplit("/", 1)[-1])
        if len(cols[0]) != len(cols[1]):
            raise InputError(f"the y and x datasets hold {len(cols[0])} and {len(cols[1])} "
                             "positions", argument="motor_positions")
        units.discard(None)
        return np.stack(cols, axis=1), units.pop() if len(units) == 1 else None, tuple(names)
    return _read_position_table(value)


def _read_position_table(path: str):
    try:
        if path.lower().endswith(".npy"):
            return np.load(path, allow_pickle=False), None, ("y", "x")
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        sep = "," if "," in first else None
        head = [t.strip() for t in first.split(sep)]
        try:
            [float(t) for t in head]
            names, skip = ("y", "x"), 0
        except ValueError:
            names, skip = tuple(head[:2]), 1
        return np.loadtxt(path, delimiter=sep, skiprows=skip, ndmin=2), None, names
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read motor positions: {exc}", path=path,
                         argument="motor_positions") from None


def scan_axes(job: ScanJob):
    """The :class:`~xrsmap_dask.maps.ScanAxes` of a job (motor positions read now)."""
    from .maps import ScanAxes

    a = job.axes
    if a.motor_positions is None:
        return ScanAxes(a.step, a.origin, a.position_units)
    positions, units, names = read_motor_positions(a.motor_positions)
    return ScanAxes(units=a.position_units or units, positions=positions, names=names)
