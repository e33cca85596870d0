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
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np

from .errors import InputError
from .maps import (Corrections, MapSpec, Ring, background_image, build_maps, mosaic,
                   rings as make_rings)
from .stats import BACKGROUND_METHODS
from .roi import xrsmap_roi_to_slices
from .scan import ScanGeometry, as_scan



class IncompleteScanWarning(UserWarning):
    """A scan accepted with ``allow_incomplete=True`` left map points without a frame."""


def load_image(value, argument: str) -> np.ndarray | None:
    """A 2-D image from a path or an array; ``None`` passes through.

    Files go through :func:`xrsmap_dask.imageseries.read_image` (EDF header-checked: a
    truncated file is an error, never zero-padded).
    """
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        from .imageseries import read_image

        data = read_image(value, argument)
    else:
        data = np.asarray(value)
    if data.ndim != 2:
        raise InputError(f"must be a 2-D image, got shape {data.shape}", argument=argument)
    return data


def _series(in_files, on_error: str):
    from .imageseries import ImageSeries, as_imageseries, from_files

    if isinstance(in_files, ImageSeries):
        return in_files
    if isinstance(in_files, (list, tuple)):
        if not in_files:
            raise InputError("no input files", argument="in_files")
        return from_files(list(in_files), on_error=on_error)
    if isinstance(in_files, (str, os.PathLike)) and any(c in os.fspath(in_files) for c in "*?["):
        return from_files(in_files, on_error=on_error)
    return as_imageseries(in_files)


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
    ``(nframes, 2)`` position table), ``scheduler``/``client`` (passed to
    ``dask.compute``), ``output`` (zarr group path: the maps of a call are also written
    there, resumably; one group per job, so give ``composite_map`` and ``circle_map``
    different paths, or use :meth:`maps` for both in one read pass), ``overwrite``,
    ``frames_per_chunk``, ``on_error`` ('raise' | 'fill'), ``roi_origin``
    ('upper' | 'lower'), ``norm`` (one value per frame).
    """

    def __init__(self, npt_x: int, npt_y: int, mask=None, dummy=0, back_files=None,
                 dark=None, flat=None, dtype: str = "float32", background=None, *,
                 scan=None, scheduler=None, client=None, output=None, overwrite: bool = False,
                 frames_per_chunk: int | str = "auto", on_error: str = "raise",
                 roi_origin: str = "upper", norm=None):
        self.npt_x = npt_x
        self.npt_y = npt_y
        self.scan: ScanGeometry = as_scan(scan, npt_y=npt_y, npt_x=npt_x)
        self.dummy = 0.0 if dummy is None else dummy
        self.dtype = dtype
        self.mask = load_image(mask, "mask")
        self.dark = load_image(dark, "dark")
        self.flat = load_image(flat, "flat")
        self.back_files = None if back_files is None else list(back_files)
        self.options = dict(scheduler=client if client is not None else scheduler,
                            output=output, overwrite=overwrite,
                            frames_per_chunk=frames_per_chunk, on_error=on_error,
                            roi_origin=roi_origin, norm=norm)
        self.background = self._background(background)
        # validate the settings once (shapes of mask/dark/flat/background agree, dtype ok)
        self._corrections(None)
        #: the lazy maps of the last call (plan, bad frames, unfilled points)
        self.last_maps = None
        #: what the last call wrote (``output=``), a :class:`~xrsmap_dask.store.StoreResult`
        self.last_store = None

    @property
    def bad_frames(self) -> list:
        """``(index, path, reason)`` of the frames of the last call that could not be read
        (``on_error='fill'``: NaN in the sums, ``dummy`` in the composite)."""
        if self.last_store is not None:
            return [tuple(b) for b in self.last_store.bad_frames]
        return [] if self.last_maps is None else list(self.last_maps.bad_frames)

    # -- settings --------------------------------------------------------------------------
    def _background(self, background) -> np.ndarray | None:
        method, pct = None, None
        if background is None:
            if self.back_files is None:
                return None
            method = "mean"
        elif isinstance(background, str) and background in BACKGROUND_METHODS:
            method = background
        elif isinstance(background, (tuple, list)) and len(background) == 2 and \
                background[0] == "percentile":
            method, pct = "percentile", background[1]
        elif isinstance(background, (str, os.PathLike, np.ndarray)):
            return np.asarray(load_image(background, "background"))
        else:
            raise InputError("expected an image, a path, 'mean', 'median' or "
                             f"('percentile', q), got {background!r}", argument="background")
        if method == "percentile":
            try:
                pct = float(pct)
            except (TypeError, ValueError):
                pct = np.nan
            if not 0 <= pct <= 100:
                raise InputError(f"percentile must be in [0, 100], got {background[1]!r}",
                                 argument="background")
        if not self.back_files:
            raise InputError(f"background={method!r} needs back_files", argument="back_files")
        from .imageseries import from_files

        return background_image(from_files(self.back_files), method, pct, dark=self.dark,
                                flat=self.flat, scheduler=self.options["scheduler"])

    def _corrections(self, norm) -> Corrections:
        return Corrections(dark=self.dark, flat=self.flat, background=self.background,
                           mask=self.mask, norm=norm, dummy=self.dummy, dtype=self.dtype)

    def _opts(self, kw: dict) -> dict:
        unknown = set(kw) - set(self.options) - {"client", "scan"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        opts = dict(self.options)
        if kw.get("client") is not None:
            opts["scheduler"] = kw.pop("client")
        kw.pop("client", None)
        scan = kw.pop("scan", None)
        opts["scan"] = self.scan if scan is None else as_scan(scan, npt_y=self.npt_y,
                                                                npt_x=self.npt_x)
        opts.update({k: v for k, v in kw.items() if v is not None})
        return opts

    # -- maps ------------------------------------------------------------------------------
    def _run(self, in_files, spec_kwargs: dict, opts: dict) -> dict:
        ims = _series(in_files, opts["on_error"])
        spec = MapSpec(**spec_kwargs)
        maps = build_maps(ims, spec, opts["scan"], self._corrections(opts["norm"]),
                          opts["frames_per_chunk"])
        self.last_maps = maps
        if maps.unfilled:
            warnings.warn(f"{maps.unfilled} of {opts['scan'].npt_y * opts['scan'].npt_x} map "
                          f"points have no frame ({len(ims)} frames): they are NaN",
                          IncompleteScanWarning, stacklevel=3)
        arrays = maps.arrays()
        if opts["output"] is not None:
            import zarr

            from .store import write_maps

            self.last_store = write_maps(maps, opts["output"], ims, overwrite=opts["overwrite"],
                                         scheduler=opts["scheduler"])
            group = zarr.open_group(store=os.fspath(opts["output"]), mode="r")
            return {name: group[name][:] for name in arrays}
        kwargs = {} if opts["scheduler"] is None else {"scheduler": opts["scheduler"]}
        return maps.compute(**kwargs)   # the unit tasks alone: one task per unit

    def composite_map(self, in_files, roi=None, binning=None, **kw):
        """Composite mosaic and ROI sum map.

        Parameters
        ----------
        in_files : list of paths or ImageSeries
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
        opts = self._opts(kw)
        ims = _series(in_files, opts["on_error"])
        rois = xrsmap_roi_to_slices(roi, ims.shape, origin=opts["roi_origin"])
        out = self._run(ims, dict(roi=rois, binning=1 if binning is None else binning,
                                  composite=True, roi_sum=True), opts)
        return mosaic(out["composite"]), out["roi_sum"]

    def circle_map(self, in_files, cen_x: float, cen_y: float, radius, width, **kw):
        """Sum over the ring ``radius - width/2 <= d <= radius + width/2`` around
        ``(cen_y, cen_x)`` (pixels, rows from the top) per scan point.

        ``radius`` may be a list (``width`` one or one per radius): the result is then a
        ``(nrings, npt_y, npt_x)`` stack computed in one read pass.

        Returns
        -------
        sum_map : (npt_y, npt_x) float64 array
        """
        opts = self._opts(kw)
        rs = make_rings(cen_y, cen_x, radius, width)
        out = self._run(in_files, dict(rings=rs, composite=False, roi_sum=False), opts)
        ann = out["annulus_sum"]
        return ann[0] if np.ndim(radius) == 0 else ann

    def maps(self, in_files, roi=None, binning=None, rings: Sequence[Ring] = (),
             composite: bool = True, roi_sum: bool = True, **kw) -> dict:
        """Composite (4-D), ROI sum and ring sums together, from one read pass.

        Returns ``{'composite': (npt_y, npt_x, fy, fx), 'roi_sum': (npt_y, npt_x),
        'annulus_sum': (nrings, npt_y, npt_x)}`` (the maps asked for), numpy.
        """
        opts = self._opts(kw)
        ims = _series(in_files, opts["on_error"])
        rois = xrsmap_roi_to_slices(roi, ims.shape, origin=opts["roi_origin"]) \
            if (composite or roi_sum) else None
        return self._run(ims, dict(roi=rois, binning=1 if binning is None else binning,
                                   rings=tuple(rings), composite=composite, roi_sum=roi_sum),
                         opts)
