"""PNG previews of a scan's maps: sum map, annulus maps and a downsampled composite mosaic.

Everything here is numpy in, PNG out (matplotlib's Agg backend; no display needed).  Maps are
``(npt_y, npt_x)`` arrays, slow axis first; the composite is the 4-D ``(npt_y, npt_x, fy, fx)``
stack (one ``fy x fx`` binned ROI per scan point).  Axes are labelled in scan points: point
``(iy, ix)`` is centred on ``(iy, ix)``, row 0 at the top, and a composite tile covers its
scan point's cell.  NaN (bad frames) shows grey.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np

from .errors import InputError

#: default size of one panel, inches; the PNG is ``ncols * PANEL_INCHES * dpi`` pixels wide
PANEL_INCHES = 4.0
#: largest side of a composite mosaic in the preview (pixels of data, before plotting)
MAX_MOSAIC_SIDE = 1024


def downsample_composite(composite: np.ndarray, max_side: int = MAX_MOSAIC_SIDE) -> np.ndarray:
    """Mosaic ``(npt_y * ty, npt_x * tx)`` of a composite, each tile block-averaged.

    Parameters
    ----------
    composite : ndarray, shape (npt_y, npt_x, fy, fx)
        One tile per scan point.
    max_side : int
        The mosaic's larger side is at most about this many pixels: tiles are reduced by an
        integer factor ``f`` (mean of ``f x f`` blocks, NaN ignored; edge rows/columns that do
        not fill a block are dropped), never below 1 x 1 pixel per scan point.

    Returns
    -------
    ndarray, float32
        The mosaic, tile ``(iy, ix)`` at rows ``iy*ty:(iy+1)*ty`` and columns ``ix*tx:(ix+1)*tx``.
    """
    comp = np.asarray(composite)
    if comp.ndim != 4:
        raise InputError(f"expected a (npt_y, npt_x, fy, fx) composite, got shape {comp.shape}",
                         argument="composite")
    if int(max_side) < 1:
        raise InputError(f"must be >= 1, got {max_side!r}", argument="max_side")
    npt_y, npt_x, fy, fx = comp.shape
    side = max(npt_y * fy, npt_x * fx)
    f = max(1, math.ceil(side / int(max_side)))
    small = reduce_tiles(comp, f)
    ty, tx = small.shape[2:]
    return small.transpose(0, 2, 1, 3).reshape(npt_y * ty, npt_x * tx)


def reduce_tiles(composite: np.ndarray, factor: int) -> np.ndarray:
    """``(npt_y, npt_x, fy // f, fx // f)`` float32: each tile's ``f x f`` block means (NaN
    ignored; edge rows/columns that do not fill a block dropped; ``f`` capped at the tile)."""
    npt_y, npt_x, fy, fx = composite.shape
    f = max(1, min(int(factor), fy, fx))
    ty, tx = fy // f, fx // f
    tiles = np.asarray(composite[:, :, :ty * f, :tx * f], dtype=np.float32)
    if f == 1:
        return tiles
    tiles = tiles.reshape(npt_y, npt_x, ty, f, tx, f)
    with np.errstate(invalid="ignore"), _quiet_nan():
        return np.nanmean(tiles, axis=(3, 5))


class _quiet_nan:
    """Silence numpy's 'mean of empty slice' warning for all-NaN blocks (they stay NaN)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def preview_size(npanels: int, ncols: int | None = None, dpi: int = 100,
                 panel_inches: float = PANEL_INCHES) -> tuple[int, int]:
    """(width, height) in pixels of a preview of ``npanels`` panels."""
    ncols, nrows = _grid(npanels, ncols)
    return (int(round(ncols * panel_inches * dpi)), int(round(nrows * panel_inches * dpi)))


def _grid(npanels: int, ncols: int | None) -> tuple[int, int]:
    if npanels < 1:
        raise InputError("nothing to preview: no maps and no composite", argument="maps")
    ncols = min(npanels, ncols or 3)
    return ncols, -(-npanels // ncols)


def render_preview(path, maps: Mapping[str, np.ndarray] | None = None,
                   composite: np.ndarray | None = None, *, log: bool = False,
                   cmap: str = "viridis", dpi: int = 100, ncols: int | None = None,
                   title: str | None = None, max_mosaic_side: int = MAX_MOSAIC_SIDE,
                   panel_inches: float = PANEL_INCHES, units: str = "scan") -> tuple[int, int]:
    """Write a PNG with one panel per map (and the composite mosaic last); return its size.

    Parameters
    ----------
    path : str or PathLike
        The PNG to write (parent directories are created).
    maps : mapping of name -> (npt_y, npt_x) array
        E.g. ``{'sum': sum_map, 'annulus r=23': ring0}``; panels in mapping order.
    composite : (npt_y, npt_x, fy, fx) array, optional
        Shown as a mosaic downsampled to about ``max_mosaic_side`` pixels.
    log : bool
        Logarithmic colour scale (values <= 0 show as the lowest colour).
    dpi, ncols, panel_inches :
        The PNG is ``preview_size(npanels, ncols, dpi, panel_inches)`` pixels.
    units : {'scan', 'pixel'}
        Axes in scan points (maps) or in detector pixels (images such as a median frame).

    Returns
    -------
    (width, height) in pixels.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    panels: list[tuple[str, np.ndarray, bool]] = []
    shape = None
    for name, arr in (maps or {}).items():
        a = np.asarray(arr, dtype=np.float64)
        if a.ndim != 2:
            raise InputError(f"a map must be 2-D (npt_y, npt_x), got shape {a.shape}",
                             argument=f"maps[{name!r}]")
        if shape is not None and a.shape != shape:
            raise InputError(f"shape {a.shape} differs from the other maps' {shape}",
                             argument=f"maps[{name!r}]")
        shape = a.shape
        panels.append((str(name), a, False))
    if composite is not None:
        comp = np.asarray(composite)
        if comp.ndim != 4:
            raise InputError(f"expected (npt_y, npt_x, fy, fx), got shape {comp.shape}",
                             argument="composite")
        if shape is not None and comp.shape[:2] != shape:
            raise InputError(f"scan shape {comp.shape[:2]} differs from the maps' {shape}",
                             argument="composite")
        shape = comp.shape[:2]
        panels.append(("composite", downsample_composite(comp, max_mosaic_side), True))
    ncols_, nrows = _grid(len(panels), ncols)
    width, height = preview_size(len(panels), ncols, dpi, panel_inches)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    if units not in ("scan", "pixel"):
        raise InputError(f"must be 'scan' or 'pixel', got {units!r}", argument="units")
    npt_y, npt_x = shape
    extent = (-0.5, npt_x - 0.5, npt_y - 0.5, -0.5)  # point/pixel centres on integers
    xlabel, ylabel = ("scan point x (column)", "scan point y (row)") if units == "scan" else \
        ("column (pixel)", "row (pixel)")
    try:
        colormap = matplotlib.colormaps[cmap].with_extremes(bad="0.6")
    except KeyError:
        raise InputError(f"unknown matplotlib colour map {cmap!r}", argument="cmap") from None
    for k, (name, data, is_mosaic) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols_, k + 1)
        finite = data[np.isfinite(data)]
        if log:
            positive = finite[finite > 0]
            vmin = float(positive.min()) if positive.size else 1.0
            vmax = float(positive.max()) if positive.size else 10.0
            norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.0001), clip=True)
        else:
            vmin = float(finite.min()) if finite.size else 0.0
            vmax = float(finite.max()) if finite.size else 1.0
            norm = Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1)
        im = ax.imshow(np.ma.masked_invalid(data), cmap=colormap, norm=norm, extent=extent,
                       origin="upper", interpolation="nearest", aspect="equal")
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.ax.tick_params(labelsize=7)
        ax.set_title(name + (" (log)" if log else ""), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.yaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return width, height


def annulus_label(radius: float, width: float) -> str:
    """Panel name of an annulus map (radius and width in pixels)."""
    return f"annulus r={radius:g} w={width:g}"


def as_named_maps(maps: Mapping[str, np.ndarray] | Sequence[np.ndarray] | None,
                  prefix: str = "map") -> dict[str, np.ndarray]:
    """Mapping of panel names to maps from a mapping or a sequence."""
    if maps is None:
        return {}
    if isinstance(maps, Mapping):
        return dict(maps)
    return {f"{prefix} {k}": m for k, m in enumerate(maps)}


def read_map_group(path, max_mosaic_side: int = MAX_MOSAIC_SIDE) -> tuple[dict, np.ndarray | None]:
    """Maps of a zarr map group for a preview: ``({name: map}, downsampled composite)``.

    The composite is read one scan line at a time and each line downsampled at once, so
    memory stays at one line of full-resolution tiles.  The returned composite is 4-D
    ``(npt_y, npt_x, ty, tx)`` (already reduced; :func:`render_preview` reduces no further).
    """
    import zarr

    path = os.fspath(path)
    try:
        group = zarr.open_group(store=path, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types for a non-group
        raise InputError(f"not a zarr map group: {exc}", path=path) from None
    maps: dict[str, np.ndarray] = {}
    names = set(group.array_keys())
    if "roi_sum" in names:
        maps["sum"] = np.asarray(group["roi_sum"][...])
    if "annulus_sum" in names:
        ann = np.asarray(group["annulus_sum"][...])
        rings = group.attrs.get("rings") or []
        for k in range(ann.shape[0]):
            label = annulus_label(rings[k]["radius"], rings[k]["width"]) \
                if k < len(rings) else f"annulus {k}"
            maps[label] = ann[k]
    comp = None
    if "composite" in names:
        arr = group["composite"]
        npt_y, npt_x, fy, fx = arr.shape
        f = max(1, math.ceil(max(npt_y * fy, npt_x * fx) / int(max_mosaic_side)))
        comp = np.concatenate([reduce_tiles(np.asarray(arr[iy:iy + 1]), f)
                               for iy in range(npt_y)])
    if not maps and comp is None:
        raise InputError("holds no roi_sum, annulus_sum or composite array (is it a map "
                         "group? for a survey store give the scan's group, e.g. "
                         "survey.zarr/scan1)", path=path)
    return maps, comp


def read_image_group(path) -> dict[str, np.ndarray]:
    """The 2-D arrays of a zarr group (e.g. the output of ``xrsmap-dask stats``), by name."""
    import zarr

    try:
        group = zarr.open_group(store=os.fspath(path), mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"not a zarr group: {exc}", path=os.fspath(path)) from None
    return {name: np.asarray(arr[...]) for name, arr in sorted(group.arrays())
            if arr.ndim == 2 and name != "roi_sum"}


def preview_zarr(path, png, *, log: bool = False, dpi: int = 100,
                 max_mosaic_side: int = MAX_MOSAIC_SIDE, title: str | None = None,
                 cmap: str = "viridis") -> tuple[int, int]:
    """Write a PNG preview of a zarr group; return its (width, height).

    A map group (``roi_sum``, ``annulus_sum``, ``composite``) is drawn in scan points; a
    group of 2-D images (``xrsmap-dask stats`` output) in detector pixels.
    """
    if title is None:
        title = os.path.basename(os.path.normpath(os.fspath(path)))
    try:
        maps, comp = read_map_group(path, max_mosaic_side)
    except InputError:
        images = read_image_group(path)
        if not images:
            raise
        return render_preview(png, images, log=log, dpi=dpi, title=title, cmap=cmap,
                              units="pixel")
    return render_preview(png, maps, comp, log=log, dpi=dpi, title=title, cmap=cmap,
                          max_mosaic_side=max_mosaic_side)
