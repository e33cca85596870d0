"""Previews of zarr outputs: read a map or statistics group for :mod:`xrsmap_dask.preview`.

* :func:`read_map_group`: the maps of a map group (ROI sum, rings, the mean of the radial
  bins) and its composite reduced scan line by scan line;
* :func:`read_image_group`: the images of a statistics group (a frame-sized mask cut to the
  images by their ``det_y``/``det_x`` coordinates);
* :func:`preview_zarr`: the PNG of either, colour bars labelled from the store's
  ``long_name``/``units``, map axes in the scan positions when the store has them.

The store keeps structured attrs as JSON strings (:func:`xrsmap_dask.layout.decode_attrs`).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .errors import InputError
from .preview import (MAX_MOSAIC_SIDE, ScanAxes, _mosaic_factor, annulus_label, load_mask,
                      reduce_tiles, render_preview)




def _open(path):
    import zarr

    try:
        return zarr.open_group(store=os.fspath(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types for a non-group
        raise InputError(f"not a zarr group: {exc}", path=os.fspath(path)) from None


def _attrs(group) -> dict:
    """The group's attrs, decoded (the store keeps structured attrs as JSON strings)."""
    from .layout import decode_attrs

    return decode_attrs(dict(group.attrs))


def _dead_bins(group, mask: np.ndarray | None, tile: tuple[int, int]) -> np.ndarray | None:
    """(fy, fx) True where every source pixel of a binned composite pixel is masked."""
    attrs = _attrs(group)
    roi, b = attrs.get("roi"), int(attrs.get("binning") or 1)
    if mask is None or not isinstance(roi, dict):
        return None
    m = mask[slice(*roi["rows"]), slice(*roi["cols"])]
    if m.shape != (tile[0] * b, tile[1] * b):
        raise InputError(f"mask of shape {mask.shape} does not fit the group's ROI {roi} "
                         f"binned {b}", argument="mask")
    dead = m.reshape(tile[0], b, tile[1], b).all(axis=(1, 3))
    return dead if dead.any() else None


def read_map_group(path, max_mosaic_side: int = MAX_MOSAIC_SIDE,
                   mask=None) -> tuple[dict, np.ndarray | None]:
    """Maps of a zarr map group for a preview: ``({name: map}, reduced composite)``.

    The composite is read one scan line at a time and each line reduced at once (memory:
    one line of full tiles), into ``(npt_y, npt_x, ty, tx)``; with ``mask``, binned pixels
    whose every pixel is masked are NaN (drawn as bad, not as ``dummy``).
    """
    group = _open(path)
    maps: dict[str, np.ndarray] = {}
    names = set(group.array_keys())
    if "roi_sum" in names:
        maps["sum"] = np.asarray(group["roi_sum"][...])
    if "annulus_sum" in names:
        ann = np.asarray(group["annulus_sum"][...])
        for k, label in enumerate(_ring_labels(group, ann.shape[0])):
            maps[label] = ann[k]
    if "radial" in names:
        with warnings.catch_warnings():      # points whose every bin is NaN stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            maps["radial, mean of all bins"] = np.nanmean(np.asarray(group["radial"][...]), 0)
    comp = None
    if "composite" in names:
        arr = group["composite"]
        npt_y, npt_x, fy, fx = arr.shape
        dead = _dead_bins(group, load_mask(mask), (fy, fx))
        f = _mosaic_factor(arr.shape, max_mosaic_side)
        lines = []
        for iy in range(npt_y):
            line = np.array(arr[iy:iy + 1], dtype=np.float32)
            if dead is not None:
                line[:, :, dead] = np.nan
            lines.append(reduce_tiles(line, f))
        comp = np.concatenate(lines)
    if not maps and comp is None:
        raise InputError("holds no roi_sum, annulus_sum, radial or composite array (is it a map "
                         "group? for a survey store give the scan's group, e.g. "
                         "survey.zarr/scan1)", path=os.fspath(path))
    return maps, comp


def _ring_labels(group, n: int) -> list[str]:
    """Panel names of the rings: pixel rings from the job's ``rings`` attr, rings in a
    unit from the ``ring`` coordinate and its units."""
    rings = _attrs(group).get("rings") or []
    if len(rings) == n:
        return [annulus_label(r["radius"], r["width"]) for r in rings]
    if "ring" in set(group.array_keys()):
        pos, units = group["ring"][...], group["ring"].attrs.get("units", "")
        width = group["ring_width"][...] if "ring_width" in set(group.array_keys()) else None
        return [f"ring {p:g}" + ("" if width is None else f" w={width[k]:g}") + f" {units}"
                for k, p in enumerate(pos)]
    return [f"annulus {k}" for k in range(n)]


def read_image_group(path, mask=None) -> dict[str, np.ndarray]:
    """The 2-D arrays of a zarr group (e.g. ``xrsmap-dask stats`` output), by name, float64;
    with ``mask`` its masked pixels are NaN."""
    group = _open(path)
    mask = load_mask(mask)
    skip = set(str(group.attrs.get("coordinates", "")).split()) | {"roi_sum"}
    out = {}
    for name, arr in sorted(group.arrays()):
        if arr.ndim != 2 or name in skip or arr.attrs.get("bookkeeping"):
            continue
        img = np.array(arr[...], dtype=np.float64)
        if mask is not None:
            img[_image_mask(group, mask, img.shape)] = np.nan
        out[name] = img
    return out


def _image_mask(group, mask: np.ndarray, shape) -> np.ndarray:
    """The frame ``mask`` cut to images of ``shape`` (a ROI of the frame, placed by the
    group's ``det_y``/``det_x`` coordinates when it has them)."""
    if mask.shape == tuple(shape):
        return mask
    names = set(group.array_keys())
    if {"det_y", "det_x"} <= names:
        y0, x0 = (int(round(float(group[d][0]))) for d in ("det_y", "det_x"))
        cut = mask[y0:y0 + shape[0], x0:x0 + shape[1]]
        if cut.shape == tuple(shape):
            return cut
    raise InputError(f"shape {mask.shape} differs from the images' {tuple(shape)}",
                     argument="mask")


def _group_labels(path) -> dict[str, tuple[str, str]]:
    """(long name, units) per array from the store's attrs, where it has them."""
    group = _open(path)
    units = _attrs(group).get("units")
    out = {}
    for name, arr in group.arrays():
        a = dict(arr.attrs)
        if "long_name" in a or "units" in a or isinstance(units, str):
            out["sum" if name == "roi_sum" else name] = (a.get("long_name", name),
                                                         a.get("units", units or ""))
    if "radial" in out:
        out["radial, mean of all bins"] = ("mean of the radial bins", out["radial"][1])
    return out


def preview_zarr(path, png, *, log: bool | str = "auto", dpi: int = 100,
                 max_mosaic_side: int = MAX_MOSAIC_SIDE, title: str | None = None,
                 cmap: str = "viridis", mask=None) -> tuple[int, int]:
    """Write a PNG preview of a zarr group; return its (width, height).

    A map group (``roi_sum``, ``annulus_sum``, ``composite``) is drawn in scan points; a
    group of 2-D images (``xrsmap-dask stats`` output) in detector pixels.  ``mask`` (an
    array or an image file, nonzero = excluded) marks masked pixels as bad.
    """
    if title is None:
        title = os.path.basename(os.path.normpath(os.fspath(path)))
    labels = _group_labels(path)
    try:
        maps, comp = read_map_group(path, max_mosaic_side, mask=mask)
    except InputError as exc:
        if "holds no roi_sum" not in str(exc):
            raise
        images = read_image_group(path, mask=mask)
        if not images:
            raise
        return render_preview(png, images, log=log, dpi=dpi, title=title, cmap=cmap,
                              units="pixel", labels=labels)
    return render_preview(png, maps, comp, log=log, dpi=dpi, title=title, cmap=cmap,
                          max_mosaic_side=max_mosaic_side, labels=labels,
                          axes=scan_axes(path))


def scan_axes(path) -> ScanAxes | None:
    """The map group's scan positions (its ``y``/``x`` coordinates) when they are positions
    (units other than ``1``), else None (axes in point indices)."""
    group = _open(path)
    names = set(group.array_keys())
    if not {"y", "x"} <= names:
        return None
    y, x = group["y"], group["x"]
    units = (str(y.attrs.get("units", "1")), str(x.attrs.get("units", "1")))
    if "1" in units:
        return None
    return ScanAxes(tuple(np.asarray(y[...], float)), tuple(np.asarray(x[...], float)),
                    "y", "x", *units)
