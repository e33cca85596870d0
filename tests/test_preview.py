"""PNG previews: mosaic downsampling against numpy, image size, NaN, log scale, zarr groups."""
from __future__ import annotations

import numpy as np
import pytest
import zarr
from PIL import Image

from xrsmap_dask.errors import InputError
from xrsmap_dask.preview import (downsample_composite, preview_size, preview_zarr,
                                 read_map_group, reduce_tiles, render_preview)


def numpy_mosaic(comp: np.ndarray, f: int) -> np.ndarray:
    """Reference: block means of f x f inside every tile, tiles laid out row-major."""
    ny, nx, fy, fx = comp.shape
    ty, tx = fy // f, fx // f
    out = np.empty((ny * ty, nx * tx))
    for iy in range(ny):
        for ix in range(nx):
            for a in range(ty):
                for b in range(tx):
                    out[iy * ty + a, ix * tx + b] = np.nanmean(
                        comp[iy, ix, a * f:(a + 1) * f, b * f:(b + 1) * f])
    return out


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
@pytest.mark.parametrize("max_side, f", [(1000, 1), (30, 1), (20, 2), (10, 3), (1, 7)])
def test_downsample_matches_numpy(max_side, f):
    rng = np.random.default_rng(0)
    comp = rng.random((3, 4, 10, 7))
    comp[1, 2, 0, 0] = np.nan
    got = downsample_composite(comp, max_side)
    ref = numpy_mosaic(comp, min(f, 7))
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_reduce_tiles_all_nan_block_stays_nan():
    comp = np.ones((1, 1, 4, 4))
    comp[0, 0, :2, :2] = np.nan
    got = reduce_tiles(comp, 2)
    assert np.isnan(got[0, 0, 0, 0]) and np.all(got[0, 0].ravel()[1:] == 1)


def test_render_size_and_content(tmp_path):
    sum_map = np.arange(20, dtype=float).reshape(4, 5)
    sum_map[1, 1] = np.nan
    comp = np.random.default_rng(1).random((4, 5, 8, 8))
    png = tmp_path / "sub" / "p.png"
    size = render_preview(png, {"sum": sum_map, "ring": sum_map + 1}, comp, log=True, dpi=60)
    assert size == preview_size(3, dpi=60) == (3 * 240, 240)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == size
        grey = np.asarray(im.convert("RGB")).reshape(-1, 3)
    # NaN points are drawn grey (0.6 -> 153)
    assert np.any(np.all(grey == 153, axis=1))
    size = render_preview(tmp_path / "two.png", {"a": sum_map, "b": sum_map, "c": sum_map,
                                                "d": sum_map}, ncols=2, dpi=50)
    assert size == (400, 400)


def test_render_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match="nothing to preview"):
        render_preview(tmp_path / "x.png", {})
    with pytest.raises(InputError, match="2-D"):
        render_preview(tmp_path / "x.png", {"m": np.zeros(3)})
    with pytest.raises(InputError, match="differs"):
        render_preview(tmp_path / "x.png", {"m": np.zeros((2, 3))}, np.zeros((3, 3, 2, 2)))
    with pytest.raises(InputError, match="colour map"):
        render_preview(tmp_path / "x.png", {"m": np.zeros((2, 3))}, cmap="nope")


def test_preview_of_zarr_group(tmp_path):
    path = str(tmp_path / "maps.zarr")
    g = zarr.open_group(path, mode="w", zarr_format=3)
    rng = np.random.default_rng(2)
    comp = rng.random((3, 4, 6, 6)).astype(np.float32)
    g.create_array("composite", shape=comp.shape, dtype="float32", chunks=(1, 4, 6, 6))[...] = comp
    g.create_array("roi_sum", shape=(3, 4), dtype="float64")[...] = comp.sum(axis=(2, 3))
    g.create_array("annulus_sum", shape=(2, 3, 4), dtype="float64")[...] = rng.random((2, 3, 4))
    g.attrs["rings"] = [{"radius": 5, "width": 2}, {"radius": 9, "width": 2}]
    maps, small = read_map_group(path, max_mosaic_side=12)
    assert list(maps) == ["sum", "annulus r=5 w=2", "annulus r=9 w=2"]
    np.testing.assert_allclose(small, reduce_tiles(comp, 2))
    png = tmp_path / "maps.png"
    size = preview_zarr(path, png, dpi=40)
    assert size == preview_size(4, dpi=40)
    with Image.open(png) as im:
        assert im.size == size
    empty = str(tmp_path / "empty.zarr")
    zarr.open_group(empty, mode="w", zarr_format=3)
    with pytest.raises(InputError, match="no roi_sum"):
        preview_zarr(empty, tmp_path / "e.png")


def test_preview_of_stats_group_in_pixels(tmp_path):
    path = str(tmp_path / "stats.zarr")
    g = zarr.open_group(path, mode="w", zarr_format=3)
    img = np.random.default_rng(3).random((16, 20))
    g.create_array("median", shape=img.shape, dtype="float64")[...] = img
    g.create_array("max", shape=img.shape, dtype="float64")[...] = img * 2
    png = tmp_path / "stats.png"
    assert preview_zarr(path, png, dpi=30) == preview_size(2, dpi=30)
    with Image.open(png) as im:
        assert im.size == preview_size(2, dpi=30)
    with pytest.raises(InputError, match="units"):
        render_preview(tmp_path / "x.png", {"m": img}, units="mm")


# -- previews a scientist trusts -------------------------------------------------------------
BAD_RGB = (153, 153, 153)     # preview.BAD_COLOUR "0.6"


def _png_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _pixel_at(fig, ax, x, y):
    """(row, col) in the saved PNG of data point (x, y) of ``ax``."""
    fig.canvas.draw()
    px, py = ax.transData.transform((x, y))
    return int(round(fig.bbox.height - py)), int(round(px))


def test_single_hot_pixel_does_not_set_colour_limits(tmp_path):
    from xrsmap_dask.preview import build_figure, colour_limits

    rng = np.random.default_rng(0)
    m = rng.normal(100, 5, (20, 30))
    m[4, 7] = 1e6
    vmin, vmax, log = colour_limits(m)
    assert not log and vmax < 120 and vmin > 80
    small = np.full((3, 3), 10.0)
    small[1, 1] = 5000.0
    small[0, 0] = -3000.0
    assert colour_limits(small)[:2] == (10.0, 11.0)          # flat data: a unit span
    fig = build_figure({"sum": m}, dpi=60)
    image = fig.axes[0].images[0]
    assert image.norm.vmax < 120
    cbar_label = fig.axes[1].get_ylabel()
    assert "[counts]" in cbar_label and "percentiles 0.5-99.5" in cbar_label
    png = tmp_path / "hot.png"
    fig.savefig(png, dpi=60)
    rgb = _png_rgb(png)
    # the ordinary points show many colours, not one dark colour under a hot-pixel limit
    ax = fig.axes[0]
    colours = {tuple(rgb[_pixel_at(fig, ax, x, y)]) for x in range(0, 30, 3) for y in range(0, 20, 3)}
    assert len(colours) > 20


def test_nan_and_masked_pixels_get_the_bad_colour(tmp_path):
    from xrsmap_dask.preview import build_figure, preview_zarr

    m = np.arange(40, dtype=float).reshape(5, 8)
    m[1:4, 2:5] = np.nan
    fig = build_figure({"sum": m}, dpi=80)
    png = tmp_path / "nan.png"
    fig.savefig(png, dpi=80)
    rgb = _png_rgb(png)
    ax = fig.axes[0]
    assert tuple(rgb[_pixel_at(fig, ax, 3, 2)]) == BAD_RGB
    assert tuple(rgb[_pixel_at(fig, ax, 6, 0)]) != BAD_RGB
    assert "9 NaN/masked" in ax.get_title()
    # a stats group (detector images): masked pixels are bad, not their hot values
    path = str(tmp_path / "stats.zarr")
    g = zarr.open_group(path, mode="w", zarr_format=3)
    img = np.random.default_rng(3).normal(50, 2, (40, 50))
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 30:45] = 1
    img[mask != 0] = 60000
    g.create_array("median", shape=img.shape, dtype="float64")[...] = img
    out = tmp_path / "stats.png"
    preview_zarr(path, out, dpi=80, mask=mask)
    from xrsmap_dask.preview import read_image_group
    images = read_image_group(path, mask=mask)
    fig = build_figure(images, dpi=80, units="pixel", title="stats")
    rgb = _png_rgb(out)
    ax = fig.axes[0]
    assert tuple(rgb[_pixel_at(fig, ax, 37, 15)]) == BAD_RGB
    assert tuple(rgb[_pixel_at(fig, ax, 5, 5)]) != BAD_RGB
    assert fig.axes[0].images[0].norm.vmax < 100           # hot masked values ignored


def test_masked_composite_pixels_are_bad_not_dummy(tmp_path):
    """A binned pixel whose every source pixel is masked holds ``dummy`` (0) in the store;
    given the mask, the preview draws it as bad."""
    from xrsmap_dask.preview import read_map_group

    path = str(tmp_path / "maps.zarr")
    g = zarr.open_group(path, mode="w", zarr_format=3)
    comp = np.full((2, 3, 4, 4), 7.0, np.float32)
    comp[:, :, 1, 2] = 0.0
    g.create_array("composite", shape=comp.shape, dtype="float32")[...] = comp
    g.attrs.update({"roi": {"rows": [8, 16], "cols": [4, 12]}, "binning": 2})
    mask = np.zeros((20, 20), bool)
    mask[10:12, 8:10] = True              # exactly binned pixel (1, 2) of the ROI
    _, small = read_map_group(path, mask=mask)
    assert np.isnan(small[:, :, 1, 2]).all() and (small[:, :, 0, 0] == 7).all()
    _, plain = read_map_group(path)
    assert (plain[:, :, 1, 2] == 0).all()
    with pytest.raises(InputError, match="does not fit"):
        read_map_group(path, mask=np.zeros((10, 10)))


def test_tile_aspect_follows_the_roi_shape():
    from xrsmap_dask.preview import build_figure

    for tile in ((4, 16), (16, 4), (8, 8)):
        comp = np.random.default_rng(1).random((3, 4) + tile)
        fig = build_figure(composite=comp, dpi=80)
        fig.canvas.draw()
        box = fig.axes[0].get_window_extent()
        want = (4 * tile[1]) / (3 * tile[0])             # mosaic width / height in pixels
        assert box.width / box.height == pytest.approx(want, rel=0.03)


def test_mosaic_reduced_inside_tiles_to_the_panel_size():
    from xrsmap_dask.preview import build_figure

    comp = np.ones((2, 2, 512, 512), np.float32)
    comp[0, 1] = 100.0
    comp[1, 0, :, :256] = np.nan
    fig = build_figure(composite=comp, dpi=50)
    shown = fig.axes[0].images[0].get_array()
    assert max(shown.shape) <= 4 * 50                    # about the panel's pixels
    values = set(np.unique(shown.compressed()).tolist())
    assert values == {1.0, 100.0}                        # no block mixes two scan points
    ty = shown.shape[0] // 2
    f = 512 // ty                                        # the reduction factor
    assert shown.mask.sum() == ty * (256 // f)           # all-NaN blocks stay bad


def test_log_scale_only_where_the_range_calls_for_it():
    from xrsmap_dask.preview import build_figure, colour_limits

    narrow = 1000 + np.random.default_rng(2).random((10, 10)) * 20     # 2 % range
    wide = np.logspace(0, 4, 100).reshape(10, 10)
    assert colour_limits(narrow)[2] is False and colour_limits(wide)[2] is True
    assert colour_limits(wide - 5)[2] is False                          # not positive
    assert colour_limits(narrow, log=True)[2] is True                   # asked for
    fig = build_figure({"narrow": narrow, "wide": wide}, dpi=40)
    assert "log scale" not in fig.axes[1].get_ylabel()
    assert "log scale" in fig.axes[3].get_ylabel()
    with pytest.raises(InputError, match="'auto', True or False"):
        colour_limits(narrow, log="yes")


def test_map_axes_in_scan_positions(small_scan, tmp_path):
    """A map group with scan positions (--step) is previewed with axes in those units; a
    stats group's mask is cut to its ROI by det_y/det_x."""
    from xrsmap_dask import cli
    from xrsmap_dask.preview import build_figure
    from xrsmap_dask.preview_groups import read_image_group, read_map_group, scan_axes

    out = tmp_path / "m.zarr"
    assert cli.main(["composite", *small_scan.files, "--npt-y", "4", "--npt-x", "6",
                     "--step", "0.5", "0.25", "--position-units", "um", "-o", str(out),
                     "-q", "--preview", str(tmp_path / "m.png"), "--log", "off"]) == 0
    axes = scan_axes(out)
    assert axes.x == (0.0, 0.25, 0.5, 0.75, 1.0, 1.25) and axes.y_units == "um"
    maps, comp = read_map_group(out)
    fig = build_figure(maps, comp, axes=axes)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x [um]" and ax.get_ylabel() == "y [um]"
    left, right = ax.get_xlim()
    assert left == pytest.approx(-0.125) and right == pytest.approx(1.375)
    stats = tmp_path / "s.zarr"
    assert cli.main(["stats", *small_scan.files, "--stat", "max", "--roi", "4", "8", "27",
                     "39", "-o", str(stats), "-q"]) == 0
    mask = np.zeros(small_scan.frame_shape, bool)
    mask[10, 5] = True                       # frame pixel (10, 5) = image pixel (2, 1)
    img = read_image_group(stats, mask=mask)["max"]
    assert np.isnan(img[2, 1]) and np.isfinite(img).sum() == img.size - 1
