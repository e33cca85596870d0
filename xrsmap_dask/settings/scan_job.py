"""The job settings: :class:`ScanJob` (maps, and optionally statistics, of one scan) and
:class:`StatsJob` (pixel-wise statistics of a frame series), with the xrsmap ROI.

The CLI, YAML job specs and ``Mapper`` all build these same objects from the parsed option
values (:func:`scan_job_from_values`, :func:`stats_job_from_values`); each checks its
cross-field rules once, in ``__post_init__``.  Nothing here reads a frame: inputs are
resolved file lists, correction images are paths or arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InputError
from ..invalid import parse_invalid
from ..roi import RoiSlices, check_binning, check_xrsmap_roi, xrsmap_roi_to_slices
from ..scan import ScanGeometry
from .fields import parse_on_error, parse_roi_origin
from .geometry_settings import AxesSpec, GeometrySpec
from .specs import BackgroundSpec, CorrectionSpec, StatRequest


@dataclass(frozen=True)
class XrsmapRoi:
    """xrsmap's ROI: ``(x0, y0, x1, y1)``, bounds **inclusive**, rows counted from the top
    (``origin='upper'``) or the bottom (``'lower'``)."""

    x0: int
    y0: int
    x1: int
    y1: int
    origin: str = "upper"

    def __post_init__(self):
        for name, value in zip(("x0", "y0", "x1", "y1"),
                               check_xrsmap_roi((self.x0, self.y0, self.x1, self.y1))):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "origin", parse_roi_origin(self.origin))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the ROI."""
        return self.y1 - self.y0 + 1, self.x1 - self.x0 + 1

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    def to_slices(self, frame_shape) -> RoiSlices:
        """numpy-style ``(slice(y0, y1 + 1), slice(x0, x1 + 1))`` in a frame of
        ``frame_shape``, rows from the top; an ROI outside the frame is an error."""
        return xrsmap_roi_to_slices(self.as_tuple(), frame_shape, self.origin)

    def check_binning(self, binning: int) -> tuple[int, int]:
        """Binned shape ``(fy, fx)``; an error when ``binning`` does not divide the ROI."""
        return check_binning(self.shape, binning)


@dataclass(frozen=True, eq=False)
class ScanJob:
    """One scan, fully resolved and validated: its maps (and statistics).

    ``inputs`` is a resolved :class:`~xrsmap_dask.inputs.InputSpec` (or, from Python, an
    image series); ``scan`` the map geometry ``(npt_y, npt_x)``; ``roi`` the xrsmap ROI
    (``None`` = whole frame); ``rings`` :class:`~xrsmap_dask.maps.Ring` (pixels around
    their centre) or :class:`~xrsmap_dask.maps.UnitRing` (in the unit of the PONI file;
    without one, around the centre of ``geometry``); ``geometry`` the detector geometry
    and radial bins; ``axes`` the scan coordinates; ``output`` the zarr store and
    ``group`` the group in it (``None`` for in-memory maps); ``nexus`` a NeXus file the
    group is exported to once complete; ``invalid`` the invalid-pixel rule (``'auto'``,
    ``'none'`` or values, :mod:`xrsmap_dask.invalid`).
    """

    name: str
    inputs: Any
    scan: ScanGeometry
    roi: XrsmapRoi | None = None
    binning: int = 1
    rings: tuple = ()
    composite: bool = True
    roi_sum: bool = True
    stats: tuple[StatRequest, ...] = ()
    corrections: CorrectionSpec = field(default_factory=CorrectionSpec)
    on_error: str = "raise"
    frames_per_chunk: int | str = "auto"
    output: str | None = None
    group: str | None = None
    geometry: GeometrySpec = field(default_factory=GeometrySpec)
    axes: AxesSpec = field(default_factory=AxesSpec)
    nexus: str | None = None
    invalid: Any = "auto"

    def __post_init__(self):
        object.__setattr__(self, "on_error", parse_on_error(self.on_error))
        object.__setattr__(self, "invalid", parse_invalid(self.invalid))
        if self.roi is not None and (self.composite or self.roi_sum):
            self.roi.check_binning(self.binning)
        object.__setattr__(self, "rings", _placed_rings(tuple(self.rings), self.geometry))
        if not (self.composite or self.roi_sum or self.rings or self.stats or
                self.geometry.radial_bins):
            raise InputError("nothing to compute: no composite, roi_sum, rings, radial bins "
                             "or stats", argument="composite")

    # compatibility with the flat attributes of earlier versions
    npt_y = property(lambda self: self.scan.npt_y)
    npt_x = property(lambda self: self.scan.npt_x)
    scan_order = property(lambda self: self.scan.kind)
    allow_incomplete = property(lambda self: self.scan.allow_incomplete)

    @property
    def has_maps(self) -> bool:
        return bool(self.composite or self.roi_sum or self.rings or self.geometry.radial_bins)

    @property
    def output_path(self) -> str | None:
        """The zarr group directory ``<output>/<group>``."""
        import os

        if self.output is None:
            return None
        return os.path.join(self.output, *(self.group or self.name).split("/"))

    def roi_slices(self, frame_shape) -> RoiSlices | None:
        """numpy-style slices of :attr:`roi` (``None``: whole frame)."""
        return None if self.roi is None else self.roi.to_slices(frame_shape)


@dataclass(frozen=True, eq=False)
class StatsJob:
    """Pixel-wise statistics over all frames of ``inputs`` (optionally in ``roi``);
    ``invalid``: the invalid-pixel rule (excluded pixels are NaN in their frames)."""

    inputs: Any
    stats: tuple[StatRequest, ...]
    roi: XrsmapRoi | None = None
    mask: Any = None
    on_error: str = "raise"
    output: str | None = None
    detector_mask: bool = True
    invalid: Any = "auto"

    def __post_init__(self):
        object.__setattr__(self, "on_error", parse_on_error(self.on_error))
        object.__setattr__(self, "invalid", parse_invalid(self.invalid))
        if not self.stats:
            raise InputError("give at least one statistic", argument="stats")

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.stats]


def _placed_rings(rings: tuple, geometry: GeometrySpec) -> tuple:
    """The rings of a job checked against its geometry: with a PONI file every ring is a
    :class:`~xrsmap_dask.maps.UnitRing` (no centre); without one a ring without a centre
    takes the job's centre (``cen_y``, ``cen_x``)."""
    from ..maps import UnitRing

    out = []
    for k, ring in enumerate(rings):
        if geometry.poni is not None:
            if not isinstance(ring, UnitRing):
                raise InputError(f"ring {k} has a centre: with a PONI file (@{{poni}}) rings "
                                 "are positions and widths in @{unit}, without a centre",
                                 argument="rings")
            out.append(ring)
        elif isinstance(ring, UnitRing):
            if geometry.centre is None:
                raise InputError(f"ring {k} has no centre: give @{{cen_y}} and @{{cen_x}} "
                                 "(pixels) or a PONI file (@{poni})", argument="rings")
            out.append(ring.centred(*geometry.centre))
        else:
            out.append(ring)
    if geometry.poni is None and geometry.wanted and out:
        centres = {(r.cen_y, r.cen_x) for r in out}
        if len(centres) > 1 or (geometry.centre and centres != {geometry.centre}):
            raise InputError("with radial bins or a chi sector (a pixel geometry) every ring "
                             "needs the same centre", argument="rings")
    if geometry.poni is None and geometry.radial_bins and geometry.centre is None and not out:
        raise InputError("radial bins need a PONI file (@{poni}) or a centre (@{cen_y}, "
                         "@{cen_x})", argument="radial_bins")
    return tuple(out)


def geometry_from_values(values: Mapping[str, Any]) -> GeometrySpec:
    """:class:`GeometrySpec` from parsed option values."""
    return GeometrySpec(**{k: values.get(k, d) for k, d in (
        ("poni", None), ("unit", None), ("cen_y", None), ("cen_x", None),
        ("radial_bins", None), ("radial_range", None), ("chi", None), ("solid_angle", False),
        ("polarization", None))})


def axes_from_values(values: Mapping[str, Any]) -> AxesSpec:
    """:class:`AxesSpec` from parsed option values."""
    return AxesSpec(values.get("step"), values.get("origin"), values.get("position_units"),
                    values.get("motor_positions"))


def _roi(values: Mapping[str, Any]) -> XrsmapRoi | None:
    roi = values.get("roi")
    return None if roi is None else XrsmapRoi(*roi, origin=values.get("roi_origin", "upper"))


def corrections_from_values(values: Mapping[str, Any]) -> CorrectionSpec:
    """:class:`CorrectionSpec` from parsed option values (the ``corrections`` fields)."""
    background = values.get("background")
    if isinstance(background, BackgroundSpec):
        bkg = background
    else:
        bkg = BackgroundSpec(tuple(background or ()), values.get("background_method", "mean"),
                             values.get("background_pct"), values.get("background_image"))
    return CorrectionSpec(mask=values.get("mask"), dark=values.get("dark"),
                          flat=values.get("flat"), background=bkg, norm=values.get("norm"),
                          dummy=values.get("dummy", 0.0),
                          dtype=values.get("dtype", "float32"),
                          detector_mask=values.get("detector_mask", True))


def scan_job_from_values(values: Mapping[str, Any], *, name: str, inputs: Any,
                         scan: ScanGeometry, output: str | None = None,
                         group: str | None = None, nexus: str | None = None) -> ScanJob:
    """A :class:`ScanJob` from option values parsed by
    :func:`~xrsmap_dask.settings.options.parse_values`."""
    return ScanJob(name=name, inputs=inputs, scan=scan, roi=_roi(values),
                   binning=values.get("binning", 1), rings=tuple(values.get("rings") or ()),
                   composite=values.get("composite", True), roi_sum=values.get("roi_sum", True),
                   stats=tuple(values.get("stats") or ()),
                   corrections=corrections_from_values(values),
                   on_error=values.get("on_error", "raise"),
                   frames_per_chunk=values.get("frames_per_chunk", "auto"),
                   output=output, group=group, geometry=geometry_from_values(values),
                   axes=axes_from_values(values), nexus=nexus,
                   invalid=values.get("invalid", "auto"))


def stats_job_from_values(values: Mapping[str, Any], *, inputs: Any,
                          output: str | None = None) -> StatsJob:
    """A :class:`StatsJob` from parsed option values."""
    return StatsJob(inputs=inputs, stats=tuple(values.get("stats") or ()), roi=_roi(values),
                    mask=values.get("mask"), on_error=values.get("on_error", "raise"),
                    output=output, detector_mask=values.get("detector_mask", True),
                    invalid=values.get("invalid", "auto"))


def scan_geometry(values: Mapping[str, Any]) -> ScanGeometry:
    """The scan geometry from parsed values ``npt_y``, ``npt_x``, ``scan_order``,
    ``allow_incomplete``."""
    return ScanGeometry(values["npt_y"], values["npt_x"],
                        kind=values.get("scan_order", "raster"),
                        allow_incomplete=values.get("allow_incomplete", False))
