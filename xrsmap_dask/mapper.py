"""xrsmap-compatible :class:`Mapper`: same constructor and methods, computed with dask.

>>> m = Mapper(npt_x=41, npt_y=41, mask='mask.edf', back_files=bkg)      # doctest: +SKIP
>>> comp_map, sum_map = m.composite_map(files, roi=(536, 306, 1783, 1553), binning=16)
>>> ring = m.circle_map(files, cen_x=1024, cen_y=1020, radius=300, width=10)

Conventions (the same numbers as xrsmap, with its bugs fixed):

* maps are ``(npt_y, npt_x)`` for any mesh (xrsmap swaps ``npt_x``/``npt_y`` for
  non-square meshes); frames fill them in raster order (row-major, x fastest) unless
  ``scan=`` says otherwise;
* ``roi`` is xrsmap's ``(x0, y0, x1, y1)`` with **inclusive** bounds, rows counted from the
  top of the array as numpy shows it (``roi_origin='lower'``: from the bottom);
* ``comp_map`` is the 2-D mosaic ``(npt_y * fy, npt_x * fx)`` of the corrected ROI binned
  by summing ``binning x binning`` blocks; ``sum_map`` the float64 sum of the corrected ROI;
* corrections: dark subtracted, flat divided, background subtracted, mask (nonzero =
  excluded: adds nothing to sums, ``dummy`` in the composite), ``norm`` divided.

Every keyword goes through the same parse functions as the command line and job specs
(:mod:`xrsmap_dask.settings`); the maps are built by the same pipeline
(:mod:`xrsmap_dask.pipeline`).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from .errors import InputError
from .inputs import open_series, read_image
from .scan import ScanGeometry, as_scan
from .pipeline import load_corrections
from .settings import (Context, ScanJob, parse_values, relabel,
                       scan_job_from_values)
from .settings.options import MAPPER, read_options
from .settings.scan_job import corrections_from_values

#: Mapper's names for fields that are not its keywords in the option table (the method and
#: percentile of the background arrive through its ``background=`` keyword)
ALIASES = {"inputs": "in_files", "background_method": "background",
           "background_pct": "background", "background_image": "background"}
_PER_CALL = ("scheduler", "output", "overwrite", "frames_per_chunk", "on_error",
             "roi_origin", "norm")


class IncompleteScanWarning(UserWarning):
    """A scan accepted with ``allow_incomplete=True`` left map points without a frame."""


def load_image(value, argument: str) -> np.ndarray | None:
    """A 2-D image from a path or an array; ``None`` passes through (see
    :func:`xrsmap_dask.inputs.read_image`)."""
    try:
        return read_image(value, argument)
    except InputError as exc:
        raise relabel(exc, MAPPER, aliases=ALIASES) from None


def _background_values(background, back_files) -> dict:
    """Option values for xrsmap's ``back_files`` + ``background`` (a method name,
    ``('percentile', q)``, or an image)."""
    raw: dict[str, Any] = {}
    if back_files is not None:
        raw["background"] = list(back_files)
    if background is None:
        return raw
    if isinstance(background, str) and background in ("mean", "median", "percentile"):
        raw["background_method"] = background
    elif isinstance(background, (tuple, list)) and len(background) == 2 and \
            background[0] == "percentile":
        raw["background_method"], raw["background_pct"] = background
    elif not isinstance(background, (str, os.PathLike, np.ndarray)):
        raise InputError("expected an image, a path, 'mean', 'median' or ('percentile', q), "
                         f"got {background!r}", argument="background")
    return raw


class Mapper:
    """Composite and sum-intensity maps of a 2-D scan (xrsmap's API).

    Parameters
    ----------
    npt_x, npt_y : int
        Scan points along x (map columns, fast axis) and y (map rows).
    mask : path or array, optional
        Nonzero = pixel excluded.
    dummy : float
        Composite value of excluded pixels and unreadable frames (default 0).
    back_files : list of paths, optional
        Background frames; their mean (or ``background=`` method), dark/flat corrected, is
        subtracted from every frame.
    dark, flat : path or array, optional
    dtype : str
        Working and composite dtype (float32).
    background : array, path, 'mean', 'median' or ('percentile', q), optional
        An image (already dark/flat corrected) or how to combine ``back_files``.

    Keyword-only extras (also accepted by each method, overriding these): ``scan`` (a
    :class:`~xrsmap_dask.scan.ScanGeometry`, a kind ``'raster'|'snake'|'column'`` or a
    ``(nframes, 2)`` position table), ``allow_incomplete`` (accept fewer frames than
    points), ``scheduler``/``client`` (passed to ``dask.compute``), ``output`` (zarr group
    path: the maps of a call are also written there, resumably; one group per job, so give
    ``composite_map`` and ``circle_map`` different paths, or use :meth:`maps` for both in
    one read pass), ``overwrite``, ``frames_per_chunk``, ``on_error`` ('raise' | 'fill'),
    ``roi_origin`` ('upper' | 'lower'), ``norm`` (one value per frame),
    ``detector_mask`` (False: ignore the input's own pixel mask), ``missing_chunks``
    ('error' | 'fill-value', zarr inputs), ``invalid`` ('auto' | 'none' | values: pixels
    holding a detector's reserved values are excluded in their frames; 'auto' = the
    all-ones value of unsigned data, negative values of signed data; see :attr:`invalid`).

    Detector geometry (keyword-only, see ``docs/geometry.md``): ``poni`` (a pyFAI PONI
    file: rings and radial bins in ``unit`` -- ``q_nm^-1`` by default, ``q_A^-1``,
    ``2th_deg``, ``2th_rad``, ``r_mm``, ``d*2_A^-2`` -- with its tilts and detector mask),
    ``unit``, ``chi`` (azimuthal sector ``(start, stop)`` in degrees), ``solid_angle`` and
    ``polarization`` (corrections of radial-bin means).  Scan coordinates of outputs:
    ``step`` ``(dy, dx)``, ``origin`` ``(y0, x0)``, ``position_units``, or
    ``motor_positions`` (a table file, two HDF5 datasets or a ``(frames, 2)`` array).
    ``output`` ending in ``.nxs``/``.h5`` writes the zarr working group ``<output>.zarr``
    and exports it there.
    """

    def __init__(self, npt_x: int, npt_y: int, mask=None, dummy=0, back_files=None,
                 dark=None, flat=None, dtype: str = "float32", background=None, *,
                 scan=None, scheduler=None, client=None, output=None, overwrite: bool = False,
                 frames_per_chunk: int | str = "auto", on_error: str = "raise",
                 roi_origin: str = "upper", norm=None, allow_incomplete: bool = False,
                 missing_chunks: str = "error", detector_mask: bool = True,
                 invalid="auto", poni=None, unit: str | None = None, chi=None,
                 solid_angle: bool = False, polarization: float | None = None, step=None,
                 origin=None, position_units: str | None = None, motor_positions=None):
        self.npt_x, self.npt_y = npt_x, npt_y
        raw = {"npt_x": npt_x, "npt_y": npt_y, "mask": mask, "dark": dark, "flat": flat,
               "dummy": 0 if dummy is None else dummy, "dtype": dtype,
               "frames_per_chunk": frames_per_chunk, "on_error": on_error,
               "roi_origin": roi_origin, "norm": norm, "allow_incomplete": allow_incomplete,
               "missing_chunks": missing_chunks, "detector_mask": detector_mask,
               "invalid": invalid, "poni": poni, "unit": unit, "chi": chi, "solid_angle": solid_angle,
               "polarization": polarization, "step": step, "origin": origin,
               "position_units": position_units, "motor_positions": motor_positions,
               **_background_values(background, back_files)}
        self._values: dict = {}
        self._values = self._parse(raw)
        self.scan: ScanGeometry = self._scan(scan)
        self.options = dict(scheduler=client if client is not None else scheduler,
                            output=output, overwrite=overwrite,
                            frames_per_chunk=self._values["frames_per_chunk"],
                            on_error=self._values["on_error"],
                            roi_origin=self._values["roi_origin"], norm=self._values["norm"])
        image = background if isinstance(background, (str, os.PathLike, np.ndarray)) and \
            not (isinstance(background, str) and background in ("mean", "median",
                                                                 "percentile")) else None
        self._values["background_image"] = None if image is None else \
            self._call(read_image, image, "background_image")
        self._spec = self._call(corrections_from_values, self._values)
        self._corr = self._call(load_corrections, self._spec,
                                scheduler=self.options["scheduler"])
        self.mask, self.dark, self.flat = self._corr.mask, self._corr.dark, self._corr.flat
        self.background = self._corr.background
        self.dummy, self.dtype = self._corr.dummy, self._corr.dtype
        self.back_files = None if back_files is None else list(back_files)
        #: the lazy maps of the last call (plan, bad frames, unfilled points)
        self.last_maps = None
        #: what the last call wrote (``output=``), a :class:`~xrsmap_dask.store.StoreResult`
        self.last_store = None

    # -- settings --------------------------------------------------------------------------
    def _parse(self, raw: dict, defaults: bool = True) -> dict:
        given = {k: v for k, v in raw.items() if v is not None}
        return self._call(parse_values, given, MAPPER, Context(), defaults=defaults)

    def _call(self, func, *args, **kwargs):
        """Run a settings/pipeline step; its errors in Mapper's words (a background given
        as an image is ``background``, frames are ``back_files``)."""
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            aliases = ALIASES
            if getattr(self, "_values", {}).get("background_image") is not None:
                aliases = {**ALIASES, "background": "background"}
            raise relabel(exc, MAPPER, aliases=aliases) from None

    def _scan(self, scan) -> ScanGeometry:
        v = self._values
        if scan is None and v["allow_incomplete"]:
            scan = {"allow_incomplete": True}
        return self._call(as_scan, scan, npt_y=v["npt_y"], npt_x=v["npt_x"])

    @property
    def bad_frames(self) -> list:
        """``(index, path, reason)`` of the frames of the last call that could not be read
        (``on_error='fill'``: NaN in the sums, ``dummy`` in the composite)."""
        if self.last_store is not None:
            return [tuple(b) for b in self.last_store.bad_frames]
        return [] if self.last_maps is None else list(self.last_maps.bad_frames)

    @property
    def invalid(self) -> dict | None:
        """The invalid-pixel rule and counts of the last call (the ``invalid`` attrs an
        output records: ``rule``, ``excluded_values``, ``excluded_pixel_frames``,
        ``frames_with_excluded``, ``excluded_positions``...); None before any call."""
        return None if self.last_maps is None else self.last_maps.invalid_summary

    def _opts(self, kw: dict) -> dict:
        unknown = set(kw) - set(_PER_CALL) - {"client", "scan"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        opts = dict(self.options)
        if kw.get("client") is not None:
            opts["scheduler"] = kw.pop("client")
        kw.pop("client", None)
        scan = kw.pop("scan", None)
        opts["scan"] = self.scan if scan is None else self._call(
            as_scan, scan, npt_y=self.npt_y, npt_x=self.npt_x)
        parsed = self._parse({k: kw[k] for k in ("frames_per_chunk", "on_error", "roi_origin",
                                                 "norm") if kw.get(k) is not None}, False)
        opts.update({k: v for k, v in kw.items() if v is not None})
        opts.update({k: parsed[k] for k in kw if k in parsed and kw[k] is not None})
        return opts

    # -- maps ------------------------------------------------------------------------------
    def _job(self, ims, opts: dict, **what) -> ScanJob:
        values = dict(self._values, frames_per_chunk=opts["frames_per_chunk"],
                      on_error=opts["on_error"], roi_origin=opts["roi_origin"])
        values.update(self._parse({k: v for k, v in what.items() if v is not None}, False))
        values.update({k: v for k, v in what.items() if k in ("composite", "roi_sum")})
        return self._call(scan_job_from_values, values, name="mapper", inputs=ims,
                          scan=opts["scan"], output=None)

    def _run(self, in_files, opts: dict, **what) -> dict:
        from .pipeline import compute_maps, plan_scan

        ims = self._call(open_series, in_files, on_error=opts["on_error"],
                         options=read_options(self._values))
        job = self._job(ims, opts, **what)
        corr = self._corr if opts["norm"] is None else \
            replace(self._corr, norm=self._call(_norm, opts["norm"]))
        _, maps = self._call(plan_scan, job, ims, corrections=corr)
        self.last_maps = maps
        if maps.unfilled:
            scan = opts["scan"]
            warnings.warn(f"{maps.unfilled} of {scan.npt_y * scan.npt_x} map points have no "
                          f"frame ({len(ims)} frames): they are NaN", IncompleteScanWarning,
                          stacklevel=3)
        if opts["output"] is None:
            return compute_maps(maps, opts["scheduler"])
        import zarr

        from .nexus_export import export
        from .pipeline import input_paths
        from .settings.specs import nexus_output
        from .store import check_output_path, read_attrs, write_maps

        path, nexus = nexus_output(opts["output"])
        for target in (path, nexus) if nexus else (path,):
            self._call(check_output_path, target, input_paths(in_files, ims))
        self.last_store = self._call(write_maps, maps, path, ims,
                                     overwrite=opts["overwrite"], scheduler=opts["scheduler"])
        if nexus is not None and (not self.last_store.skipped or not os.path.exists(nexus)):
            self._call(export, path, nexus, overwrite=True)
        group = zarr.open_group(store=path, mode="r")
        maps.invalid_summary = (read_attrs(path) or {}).get("invalid")
        return {name: group[name][:] for name in maps.arrays()}

    def composite_map(self, in_files, roi=None, binning=None, **kw):
        """Composite mosaic and ROI sum map.

        Parameters
        ----------
        in_files : list of paths, glob, ``file.h5:/dataset`` or ImageSeries
            One frame per scan point, in scan order.
        roi : (x0, y0, x1, y1), optional
            Inclusive bounds, rows from the top (see ``roi_origin``); ``None``: whole frame.
        binning : int, optional
            Sum ``binning x binning`` blocks (must divide the ROI); ``None``: 1.

        Returns
        -------
        comp_map : (npt_y * fy, npt_x * fx) array of ``dtype``
        sum_map : (npt_y, npt_x) float64 array
        """
        from .maps import mosaic

        out = self._run(in_files, self._opts(kw), roi=roi, binning=binning, composite=True,
                        roi_sum=True)
        return mosaic(out["composite"]), out["roi_sum"]

    def circle_map(self, in_files, cen_x: float | None = None, cen_y: float | None = None,
                   radius=None, width=None, **kw):
        """Sum over the ring ``radius - width/2 <= d <= radius + width/2`` around
        ``(cen_y, cen_x)`` (pixels, rows from the top) per scan point.

        ``radius`` may be a list (``width`` one or one per radius): the result is then a
        ``(nrings, npt_y, npt_x)`` stack computed in one read pass.  With ``poni`` (a PONI
        file given to the Mapper) give no centre: ``radius`` and ``width`` are in ``unit``
        (e.g. q in 1/nm) and pyFAI's geometry places the ring (tilts included).

        Returns
        -------
        sum_map : (npt_y, npt_x) float64 array
        """
        if radius is None or width is None:
            raise TypeError("circle_map() needs radius and width")
        radii = list(np.atleast_1d(radius))
        rings = {"radii": radii, "width": width} if cen_x is None and cen_y is None else \
            {"cen_y": cen_y, "cen_x": cen_x, "radii": radii, "width": width}
        out = self._run(in_files, self._opts(kw), rings=[rings], composite=False,
                        roi_sum=False)
        ann = out["annulus_sum"]
        return ann[0] if np.ndim(radius) == 0 else ann

    def radial_map(self, in_files, radial_bins: int = 100, radial_range=None,
                   cen_x: float | None = None, cen_y: float | None = None, **kw):
        """Radial-bin maps (a 1-D integration per scan point, pyFAI's ``integrate1d``
        without pixel splitting) in one read pass.

        Parameters
        ----------
        radial_bins : int
            Number of bins over ``radial_range`` (``(lo, hi)`` in ``unit``; default: min..max
            of the unmasked pixels).
        cen_x, cen_y : float, optional
            Centre in pixels, without a PONI file (bins in pixels).

        Returns
        -------
        radial : (nbins,) array
            Bin centres in ``unit``.
        intensity : (nbins, npt_y, npt_x) float64 array
            Mean intensity of each bin (solid angle / polarization weighted when asked).
        """
        out = self._run(in_files, self._opts(kw), radial_bins=radial_bins,
                        radial_range=radial_range, cen_x=cen_x, cen_y=cen_y, composite=False,
                        roi_sum=False)
        return self.last_maps.plan.radial.bins.centres.copy(), out["radial"]

    def maps(self, in_files, roi=None, binning=None, rings: Sequence = (),
             composite: bool = True, roi_sum: bool = True, radial_bins: int | None = None,
             radial_range=None, cen_x: float | None = None, cen_y: float | None = None,
             **kw) -> dict:
        """Composite (4-D), ROI sum, ring sums and radial bins together, from one read pass.

        Returns ``{'composite': (npt_y, npt_x, fy, fx), 'roi_sum': (npt_y, npt_x),
        'annulus_sum': (nrings, npt_y, npt_x), 'radial': (nbins, npt_y, npt_x)}`` (the maps
        asked for), numpy.  ``rings`` without a centre are in ``unit`` of the PONI file (or
        pixels around ``cen_y``, ``cen_x``).
        """
        return self._run(in_files, self._opts(kw), roi=roi, binning=binning,
                         rings=tuple(rings) or None, composite=composite, roi_sum=roi_sum,
                         radial_bins=radial_bins, radial_range=radial_range, cen_x=cen_x,
                         cen_y=cen_y)


def _norm(value):
    from .inputs import read_norm
    from .settings.fields import parse_norm

    return read_norm(parse_norm(value))
