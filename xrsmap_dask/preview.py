"""PNG previews of a scan's maps (sum map, annulus maps, composite mosaic) a scientist can trust.

Numpy in, PNG out (matplotlib's Agg backend).  Maps are ``(npt_y, npt_x)``, slow axis first;
the composite is ``(npt_y, npt_x, fy, fx)`` (one binned ROI per scan point).  Point
``(iy, ix)`` is centred on ``(iy, ix)``, row 0 at the top; a composite tile covers its cell.

* Colour limits are robust percentiles (:data:`PERCENTILES`, stated under each colour bar)
  taken as data values at those ranks, so a single hot pixel never sets a limit; values
  beyond show in the end colours (arrows on the colour bar).
* NaN (unreadable frames, unscanned points) and masked pixels are :data:`BAD_COLOUR`, counted
  in the panel title; with ``mask`` (nonzero = excluded) masked image pixels and composite
  pixels whose every source pixel is masked are bad too, not their hot value or ``dummy``.
* Composite tiles keep the ROI's aspect; the mosaic is reduced to the panel's pixel size by
  block means inside each tile (:func:`reduce_tiles`): no pixel mixes two scan points.
* Axes and colour bars carry names and units (the store's ``long_name``/``units`` attrs
  when it has them).
* ``log='auto'`` (default) uses a log scale only for positive data spanning
  :data:`LOG_RANGE` (two decades), per panel.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import InputError

#: default size of one panel, inches; the PNG is ``ncols * PANEL_INCHES * dpi`` pixels wide
PANEL_INCHES = 4.0
#: largest side of a composite mosaic (pixels of data) when the panel allows more
MAX_MOSAIC_SIDE = 1024
#: colour limits: these percentiles of the finite values (the value at that rank)
PERCENTILES = (0.5, 99.5)
#: ``log='auto'`` chooses a log scale when the robust max/min of positive data reaches this
LOG_RANGE = 100.0
#: colour of NaN and masked pixels (outside every colour map used here)
BAD_COLOUR = "0.6"
#: long names and units of the maps a job writes, when the store has none
DEFAULT_LABELS = {"sum": ("sum of the corrected ROI pixels", "counts"),
                  "composite": ("corrected ROI, binned", "counts"),
                  "annulus": ("ring sum", "counts")}


@dataclass(frozen=True)
class ScanAxes:
    """Positions of the scan points for the axes of map panels: ``y`` ``(npt_y,)`` and
    ``x`` ``(npt_x,)`` values, their names and units (a store's ``y``/``x`` coordinates)."""

    y: tuple
    x: tuple
    y_name: str = "y"
    x_name: str = "x"
    y_units: str = ""
    x_units: str = ""


def downsample_composite(composite: np.ndarray, max_side: int = MAX_MOSAIC_SIDE) -> np.ndarray:
    """Mosaic ``(npt_y * ty, npt_x * tx)`` of a composite, each tile block-averaged.

    Tiles are reduced by one integer factor ``f`` (mean of ``f x f`` blocks inside a tile,
    NaN ignored, edge rows/columns that do not fill a block dropped) so that the larger side
    is at most about ``max_side``; never below 1 x 1 pixel per scan point.  Tile ``(iy, ix)``
    lands at rows ``iy*ty:(iy+1)*ty``, columns ``ix*tx:(ix+1)*tx``.  float32.
    """
    comp = np.asarray(composite)
    if comp.ndim != 4:
        raise InputError(f"expected a (npt_y, npt_x, fy, fx) composite, got shape {comp.shape}",
                         argument="composite")
    if int(max_side) < 1:
        raise InputError(f"must be >= 1, got {max_side!r}", argument="max_side")
    npt_y, npt_x, fy, fx = comp.shape
    small = reduce_tiles(comp, _mosaic_factor(comp.shape, max_side))
    ty, tx = small.shape[2:]
    return small.transpose(0, 2, 1, 3).reshape(npt_y * ty, npt_x * tx)


def _mosaic_factor(shape, max_side: int) -> int:
    npt_y, npt_x, fy, fx = shape
    return max(1, math.ceil(max(npt_y * fy, npt_x * fx) / int(max_side)))


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
    with warnings.catch_warnings():      # all-NaN blocks stay NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(tiles, axis=(3, 5))


def colour_limits(data: np.ndarray, log: bool | str = "auto",
                  percentiles: tuple[float, float] = PERCENTILES) -> tuple[float, float, bool]:
    """``(vmin, vmax, log)`` for a panel: robust percentiles of the finite values (of the
    positive ones on a log scale), taken as data values at those ranks (numpy's ``lower``
    method for the top, ``higher`` for the bottom) so one extreme value never sets a limit.
    ``log='auto'``: log scale when the data are positive and span :data:`LOG_RANGE`."""
    finite = np.asarray(data, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    lo_pct, hi_pct = percentiles

    def limits(values):
        if not values.size:
            return 0.0, 1.0
        return (float(np.percentile(values, lo_pct, method="higher")),
                float(np.percentile(values, hi_pct, method="lower")))

    vmin, vmax = limits(finite)
    if log == "auto":
        log = vmin > 0 and vmax / vmin >= LOG_RANGE
    elif log not in (True, False):
        raise InputError(f"must be 'auto', True or False, got {log!r}", argument="log")
    if log:
        vmin, vmax = limits(finite[finite > 0]) if (finite > 0).any() else (1.0, 10.0)
    if not vmax > vmin:
        vmax = vmin * 1.0001 if log else vmin + 1.0
    return vmin, vmax, bool(log)


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


def _labels(name: str, labels: Mapping | None) -> tuple[str, str]:
    """(long name, units) of a panel."""
    if labels and name in labels:
        return labels[name]
    for key, value in DEFAULT_LABELS.items():
        if name == key or name.startswith(key + " "):
            return value
    return name, ""


def _panels(maps, composite, max_side) -> tuple[list, tuple[int, int]]:
    panels: list[tuple[str, np.ndarray, tuple | None]] = []
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
        panels.append((str(name), a, None))
    if composite is not None:
        comp = np.asarray(composite)
        if comp.ndim != 4:
            raise InputError(f"expected (npt_y, npt_x, fy, fx), got shape {comp.shape}",
                             argument="composite")
        if shape is not None and comp.shape[:2] != shape:
            raise InputError(f"scan shape {comp.shape[:2]} differs from the maps' {shape}",
                             argument="composite")
        shape = comp.shape[:2]
        mosaic = downsample_composite(comp, max_side)
        panels.append(("composite", mosaic, (comp.shape[2], comp.shape[3])))
    return panels, shape


def build_figure(maps: Mapping[str, np.ndarray] | None = None,
                 composite: np.ndarray | None = None, *, log: bool | str = "auto",
                 cmap: str = "viridis", dpi: int = 100, ncols: int | None = None,
                 title: str | None = None, max_mosaic_side: int = MAX_MOSAIC_SIDE,
                 panel_inches: float = PANEL_INCHES, units: str = "scan",
                 labels: Mapping[str, tuple[str, str]] | None = None,
                 axes: ScanAxes | None = None):
    """The matplotlib ``Figure`` of a preview (see :func:`render_preview`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if units not in ("scan", "pixel"):
        raise InputError(f"must be 'scan' or 'pixel', got {units!r}", argument="units")
    try:
        colormap = matplotlib.colormaps[cmap].with_extremes(bad=BAD_COLOUR)
    except KeyError:
        raise InputError(f"unknown matplotlib colour map {cmap!r}", argument="cmap") from None
    panel_px = int(panel_inches * dpi * 0.8)   # about the pixels a panel's axes get
    panels, shape = _panels(maps, composite, min(int(max_mosaic_side), panel_px))
    ncols_, nrows = _grid(len(panels), ncols)
    width, height = preview_size(len(panels), ncols, dpi, panel_inches)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    for k, (name, data, tile) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols_, k + 1)
        _draw_panel(fig, ax, (name, data, tile), shape, colormap, log, units, labels, axes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _extent(shape, axes):
    """(extent, aspect, x label, y label) of a map panel: point centres on their positions
    (``axes``, when the scan positions are known), else on integers; aspect 1 (equal data
    units), or None when y and x have different units."""
    npt_y, npt_x = shape
    if axes is None:
        return (-0.5, npt_x - 0.5, npt_y - 0.5, -0.5), 1.0, None, None

    def edges(values, n):
        step = (values[-1] - values[0]) / (n - 1) if n > 1 else 1.0
        return values[0] - step / 2, values[-1] + step / 2, abs(step) or 1.0

    x0, x1, _ = edges(np.asarray(axes.x, float), npt_x)
    y0, y1, _ = edges(np.asarray(axes.y, float), npt_y)
    same = axes.y_units == axes.x_units      # equal units: cells in their true proportions
    return (x0, x1, y1, y0), 1.0 if same else None, \
        f"{axes.x_name} [{axes.x_units}]", f"{axes.y_name} [{axes.y_units}]"


def _draw_panel(fig, ax, panel, shape, colormap, log, units, labels, axes=None) -> None:
    from matplotlib.colors import LogNorm, Normalize

    name, data, tile = panel
    vmin, vmax, use_log = colour_limits(data, log)
    norm = LogNorm(vmin, vmax, clip=False) if use_log else Normalize(vmin, vmax)
    extent, aspect, xlabel, ylabel = _extent(shape, axes if units == "scan" else None)
    if tile is not None:   # composite: one mosaic pixel is square, tiles in the ROI's aspect
        aspect = (abs(extent[1] - extent[0]) / data.shape[1]) / \
            (abs(extent[2] - extent[3]) / data.shape[0])
    elif aspect is None:
        aspect = "auto"
    shown = np.ma.masked_invalid(data)
    if use_log:
        shown = np.ma.masked_less_equal(shown, 0)
    im = ax.imshow(shown, cmap=colormap, norm=norm, extent=extent, origin="upper",
                   interpolation="antialiased", aspect=aspect)
    finite = data[np.isfinite(data)]
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max",
              (True, True): "both"}[(bool((finite < vmin).any()), bool((finite > vmax).any()))]
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, extend=extend)
    long_name, unit = _labels(name, labels)
    cbar.set_label(f"{long_name}" + (f" [{unit}]" if unit else "") +
                   f"\nlimits: percentiles {PERCENTILES[0]:g}-{PERCENTILES[1]:g}" +
                   (", log scale" if use_log else ""), fontsize=7)
    cbar.ax.tick_params(labelsize=7)
    bad = int((~np.isfinite(data)).sum())
    ax.set_title(name + (f"\n({bad} NaN/masked pixels in grey)" if bad else ""), fontsize=9)
    if xlabel is None:
        xlabel, ylabel = ("scan point x (column)", "scan point y (row)") if units == "scan" \
            else ("detector column [pixel]", "detector row [pixel]")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if axes is None or units != "scan":
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.yaxis.get_major_locator().set_params(integer=True)


def render_preview(path, maps: Mapping[str, np.ndarray] | None = None,
                   composite: np.ndarray | None = None, *, log: bool | str = "auto",
                   cmap: str = "viridis", dpi: int = 100, ncols: int | None = None,
                   title: str | None = None, max_mosaic_side: int = MAX_MOSAIC_SIDE,
                   panel_inches: float = PANEL_INCHES, units: str = "scan",
                   labels: Mapping[str, tuple[str, str]] | None = None,
                   axes: ScanAxes | None = None) -> tuple[int, int]:
    """Write a PNG with one panel per map (and the composite mosaic last); return its size.

    Parameters
    ----------
    path : str or PathLike
        The PNG to write (parent directories are created).
    maps : mapping of name -> (npt_y, npt_x) array
        E.g. ``{'sum': sum_map, 'annulus r=23': ring0}``; panels in mapping order.  NaN
        values are drawn in :data:`BAD_COLOUR`.
    composite : (npt_y, npt_x, fy, fx) array, optional
        Shown as a mosaic reduced inside each tile to the panel's size (at most
        ``max_mosaic_side`` pixels), tiles in the ROI's aspect.
    log : 'auto', True or False
        Colour scale per panel (see :func:`colour_limits`).
    dpi, ncols, panel_inches :
        The PNG is ``preview_size(npanels, ncols, dpi, panel_inches)`` pixels.
    units : {'scan', 'pixel'}
        Axes in scan points (maps) or in detector pixels (images such as a median frame).
    labels : mapping of name -> (long name, units), optional
        Colour-bar labels (defaults: :data:`DEFAULT_LABELS`, else the name).
    axes : ScanAxes, optional
        Positions of the scan points (maps' ``y``/``x`` coordinates): axes in those units
        instead of point indices.

    Returns
    -------
    (width, height) in pixels.
    """
    fig = build_figure(maps, composite, log=log, cmap=cmap, dpi=dpi, ncols=ncols, title=title,
                       max_mosaic_side=max_mosaic_side, panel_inches=panel_inches,
                       units=units, labels=labels, axes=axes)
    path = check_png_output(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.part-{os.getpid()}"
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)      # a reader never sees half a PNG
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return preview_size(len(maps or {}) + (composite is not None), ncols, dpi, panel_inches)


#: the first bytes of every PNG file
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_output(path, argument: str = "output") -> str:
    """``path`` if a preview may be written there: a new file, or a PNG image (a previous
    preview, replaced); anything else -- a frame, a user's file, a directory -- is refused
    with an :class:`InputError`, never overwritten."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError("is a directory, not a PNG file", path=path, argument=argument)
    if os.path.lexists(path):
        try:
            with open(path, "rb") as f:
                head = f.read(len(PNG_SIGNATURE))
        except OSError as exc:
            raise InputError(f"cannot read the existing file: {exc.strerror}", path=path,
                             argument=argument) from None
        if head != PNG_SIGNATURE:
            raise InputError("exists and is not a PNG image (a preview replaces only an "
                             "earlier PNG); choose another file", path=path,
                             argument=argument)
    return path


def annulus_label(radius: float, width: float) -> str:
    """Panel name of an annulus map (radius and width in pixels)."""
    return f"annulus r={radius:g} w={width:g}"


def load_mask(mask) -> np.ndarray | None:
    """A mask (True = excluded) from an array or an image file; ``None`` passes through."""
    if mask is None:
        return None
    if isinstance(mask, (str, os.PathLike)):
        from .imageseries import read_image

        mask = read_image(mask, argument="mask")
    return np.asarray(mask) != 0


# ---------------------------------------------------------------------------------------
# zarr groups: in preview_groups.py, here for the callers of this module

from .preview_groups import (preview_zarr, read_image_group,  # noqa: E402,F401
                             read_map_group)
