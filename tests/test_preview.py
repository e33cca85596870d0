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
