"""Small validated settings objects shared by every face: statistics requests, the
background, the corrections and where an output goes.

Frozen dataclasses that check themselves once on creation (through the ``parse_*``
functions of :mod:`xrsmap_dask.settings.fields`); nothing here reads a frame.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .fields import (STAT_NAMES, parse_background_method, parse_bool, parse_dtype,
                     parse_dummy, parse_image, parse_norm, parse_percentiles, short)


@dataclass(frozen=True)
class StatRequest:
    """One pixel-wise statistic over all frames: ``name`` and, for a percentile, ``q``."""

    name: str
    q: float | None = None

    @property
    def label(self) -> str:
        """Array name in the output (``median``, ``percentile_99``, ``percentile_99.5``)."""
        from ..stats import stat_label

        return stat_label(self.name, self.q)


def parse_stats(value: Any) -> tuple[StatRequest, ...]:
    """Statistics to compute: a list of ``max``, ``min``, ``mean``, ``median`` and
    ``{percentile: Q}`` / ``{percentile: [Q, ...]}`` (Q in [0, 100]); duplicates dropped."""
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[StatRequest] = []
    for item in items:
        if isinstance(item, StatRequest):
            out.append(item)
        elif isinstance(item, str) and item in STAT_NAMES:
            out.append(StatRequest(item))
        elif isinstance(item, dict) and set(item) == {"percentile"}:
            out.extend(StatRequest("percentile", q)
                       for q in parse_percentiles(item["percentile"], "stats"))
        else:
            raise InputError(f"unknown statistic {short(item)}; allowed: "
                             f"{', '.join(STAT_NAMES)}, {{percentile: Q}}", argument="stats")
    return tuple(dict.fromkeys(out))


def parse_rings(value: Any) -> tuple:
    """Annuli: a list of :class:`~xrsmap_dask.maps.Ring` / :class:`~xrsmap_dask.maps.UnitRing`
    or of mappings ``{cen_y, cen_x, radius | radii, width}`` (``centre: [cen_y, cen_x]``
    also accepted; pixel units, rows from the top).  A mapping without a centre gives
    :class:`~xrsmap_dask.maps.UnitRing` rings: positions in the radial ``unit`` of a PONI
    file, or pixels around the job's centre (``cen_y``, ``cen_x``)."""
    from ..maps import Ring, UnitRing  # the rings' own checks (numbers, radius/width >= 0)

    if value is None:
        return ()
    if isinstance(value, (dict, Ring, UnitRing)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InputError("must be a list of {cen_y, cen_x, radius, width}", argument="rings")
    out = []
    for k, ring in enumerate(value):
        if isinstance(ring, (Ring, UnitRing)):
            out.append(ring)
        elif not isinstance(ring, dict):
            raise InputError(f"ring {k} must be a mapping, got {short(ring)}",
                             argument="rings")
        else:
            out.extend(_ring_items(k, dict(ring)))
    return tuple(out)


def _ring_items(k: int, ring: dict) -> list:
    from ..maps import Ring, UnitRing

    for alias in ("centre", "center"):
        if alias in ring:
            c = ring.pop(alias)
            if not isinstance(c, (list, tuple)) or len(c) != 2:
                raise InputError(f"ring {k}: centre must be [cen_y, cen_x]", argument="rings")
            ring["cen_y"], ring["cen_x"] = c
    radii = ring.pop("radii", None)
    if radii is not None and (not isinstance(radii, (list, tuple)) or not radii):
        raise InputError(f"ring {k}: radii must be a non-empty list", argument="rings")
    unknown = set(ring) - {"cen_y", "cen_x", "radius", "width"}
    if unknown:
        raise InputError(f"ring {k}: unknown keys {sorted(unknown)} (allowed: cen_y, "
                         "cen_x, radius or radii, width, centre)", argument="rings")
    centred = "cen_y" in ring or "cen_x" in ring
    missing = ({"width"} | ({"cen_y", "cen_x"} if centred else set())) - set(ring)
    if radii is None and "radius" not in ring:
        missing.add("radius")
    if missing:
        raise InputError(f"ring {k}: missing {sorted(missing)}", argument="rings")
    try:
        return [Ring(ring["cen_y"], ring["cen_x"], r, ring["width"]) if centred
                else UnitRing(r, ring["width"])
                for r in (radii if radii is not None else [ring["radius"]])]
    except InputError as exc:
        raise InputError(f"ring {k}: {exc}", argument="rings") from None


@dataclass(frozen=True, eq=False)
class BackgroundSpec:
    """The background xrsmap subtracts: the ``method`` image (``mean`` as xrsmap,
    ``median``, or ``percentile`` with ``pct``) of background ``frames`` (absolute paths),
    itself dark/flat corrected; or an ``image`` given directly (path or array, already
    corrected).  Empty (no background) when neither is given."""

    frames: tuple[str, ...] = ()
    method: str = "mean"
    pct: float | None = None
    image: Any = None

    def __post_init__(self):
        method, pct = parse_background_method(self.method, self.pct)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "pct", pct)
        object.__setattr__(self, "frames", tuple(self.frames))
        if self.image is not None and self.frames:
            raise InputError("give background frames or a background image, not both",
                             argument="background")
        if method != "mean" and not self.frames:
            raise InputError(f"the {method} background needs @{{background}} (the "
                             "background frames)", argument="background_method")

    @property
    def is_set(self) -> bool:
        return bool(self.frames) or self.image is not None

    def to_attrs(self) -> dict:
        return {"frames": list(self.frames), "method": self.method, "pct": self.pct,
                "image": None if self.image is None else
                (self.image if isinstance(self.image, str) else "array")}


@dataclass(frozen=True, eq=False)
class CorrectionSpec:
    """Correction inputs, applied in xrsmap's order (dark subtracted, flat divided,
    background subtracted, mask applied, ``norm`` divided).

    ``mask``, ``dark``, ``flat``: a 2-D image as a path (``.npy``, image file,
    ``file.h5:/dataset``) or an array; mask nonzero = pixel excluded.  ``norm``: a file of
    one value per frame or a 1-D array.  ``dummy``: composite value of excluded pixels and
    unreadable frames.  ``dtype``: working and composite float dtype.
    """

    mask: Any = None
    dark: Any = None
    flat: Any = None
    background: BackgroundSpec = field(default_factory=BackgroundSpec)
    norm: Any = None
    dummy: float = 0.0
    dtype: str = "float32"
    detector_mask: bool = True

    def __post_init__(self):
        for name in ("mask", "dark", "flat"):
            object.__setattr__(self, name, parse_image(getattr(self, name), name))
        object.__setattr__(self, "norm", parse_norm(self.norm))
        object.__setattr__(self, "dummy", parse_dummy(self.dummy))
        object.__setattr__(self, "dtype", parse_dtype(self.dtype))
        object.__setattr__(self, "detector_mask", parse_bool(self.detector_mask,
                                                             "detector_mask"))
        if not isinstance(self.background, BackgroundSpec):
            raise InputError("must be a BackgroundSpec", argument="background")

    def to_attrs(self) -> dict:
        def source(v):
            return None if v is None else v if isinstance(v, str) else "array"

        return {"mask": source(self.mask), "dark": source(self.dark),
                "flat": source(self.flat), "background": self.background.to_attrs(),
                "norm": source(self.norm), "dummy": self.dummy, "dtype": self.dtype,
                "detector_mask": self.detector_mask}


#: suffixes of NeXus/HDF5 outputs (``-o maps.nxs``): written from a zarr working group
NEXUS_SUFFIXES = (".nxs", ".nx5", ".h5", ".hdf5")


def nexus_output(path: str) -> tuple[str, str | None]:
    """``(zarr path, NeXus path or None)`` of an output path: ``maps.nxs`` (or ``.nx5``,
    ``.h5``, ``.hdf5``) is written to the zarr working group ``maps.nxs.zarr`` beside it
    (resumable) and exported to ``maps.nxs`` once complete; any other path is the zarr
    group itself."""
    full = os.path.abspath(os.fspath(path)).rstrip(os.sep)
    if full.lower().endswith(NEXUS_SUFFIXES):
        return full + ".zarr", full
    return full, None


@dataclass(frozen=True)
class OutputSpec:
    """Where a job writes: the zarr group ``<store>/<group>`` (``group`` may hold ``/``)."""

    store: str
    group: str

    @property
    def path(self) -> str:
        return os.path.join(self.store, *self.group.split("/"))

    @classmethod
    def from_path(cls, path: str) -> "OutputSpec":
        """The output of a one-scan command: ``-o maps.zarr`` is group ``maps.zarr`` of its
        directory."""
        full = os.path.abspath(os.fspath(path)).rstrip(os.sep)
        return cls(os.path.dirname(full), os.path.basename(full))
