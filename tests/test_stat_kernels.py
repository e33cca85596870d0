"""The numpy median/percentile kernel itself (``_stat_kernels``): the widened sort buffer on
CPUs without a SIMD 16-bit sort, the native one where it exists, both equal to numpy."""
from __future__ import annotations

import numpy as np
import pytest

from xrsmap_dask import _stat_kernels as K

INT_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64")


def _tile(dtype, n, rng, wide: bool):
    """(n, 6, 9) tile: values over the dtype's whole range (``wide``, extremes included) or a
    narrow band of counts with many ties."""
    info = np.iinfo(dtype)
    if wide:
        tile = rng.integers(info.min, info.max, (n, 6, 9), dtype=dtype, endpoint=True)
        tile[0, 0, :] = info.min
        tile[-1, 1, :] = info.max
        return tile
    return (rng.poisson(20, (n, 6, 9)) + max(0, info.min)).astype(dtype)


@pytest.mark.parametrize("native16", [False, True])
def test_sort_dtype_widens_small_integers_only(native16):
    exp_small = {"uint8": "int16", "int8": "int16", "uint16": "uint16", "int16": "int16"} \
        if native16 else {d: "int32" for d in ("uint8", "int8", "uint16", "int16")}
    for dtype, exp in exp_small.items():
        assert K.sort_dtype(dtype, native16) == np.dtype(exp)
    for dtype in ("uint32", "int32", "int64", "uint64", "float16", "float32", "float64", "bool"):
        assert K.sort_dtype(dtype, native16) == np.dtype(dtype)
    # the widened dtype holds every value of the original
    for dtype in exp_small:
        assert np.can_cast(dtype, K.sort_dtype(dtype, native16), casting="safe")


def test_default_follows_this_cpu():
    assert K.sort_dtype("uint16") == K.sort_dtype("uint16", K.native_16bit_sort())
    assert K.NATIVE_16BIT_SORT == K.native_16bit_sort()


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("wide", [False, True])
def test_every_work_dtype_equals_numpy(dtype, wide):
    """The widened buffer and the tile's own dtype give numpy's values and dtype exactly."""
    rng = np.random.default_rng(11)
    works = {np.dtype(dtype), K.sort_dtype(dtype, False), K.sort_dtype(dtype, True)}
    for n in (1, 2, 7, 200, 201):
        tile = _tile(dtype, n, rng, wide)
        before = tile.copy()
        exp_med = np.median(tile, axis=0)
        exp_pct = {m: np.percentile(tile, [0, 2.5, 50, 97.5, 100], axis=0, method=m)
                   for m in ("linear", "nearest", "midpoint", "hazen")}
        exp_one = np.percentile(tile, 12.5, axis=0)
        for work in works:
            got = K.quantile_tile(tile, None, work_dtype=work)
            assert got.dtype == exp_med.dtype and np.array_equal(got, exp_med), (n, work)
            got = K.quantile_tile(tile, 12.5, work_dtype=work)
            assert got.dtype == exp_one.dtype and np.array_equal(got, exp_one), (n, work)
            for method, exp in exp_pct.items():
                got = K.quantile_tile(tile, [0, 2.5, 50, 97.5, 100], method=method,
                                      work_dtype=work)
                assert np.array_equal(got.astype(exp.dtype), exp), (n, work, method)
        np.testing.assert_array_equal(tile, before)  # the tile is not modified


def test_pixel_blocks_cover_large_tiles():
    """A tile wider than one pixel-major buffer: every pixel block is reduced."""
    rng = np.random.default_rng(3)
    tile = rng.integers(0, 65536, (64, 40, 300), dtype=np.uint16)
    assert tile.shape[1] * tile.shape[2] > K._pixel_block(64, 4)
    np.testing.assert_array_equal(K.quantile_tile(tile), np.median(tile, axis=0))
    np.testing.assert_array_equal(K.quantile_tile(tile, [10, 90]),
                                  np.percentile(tile, [10, 90], axis=0))


def test_work_dtype_too_narrow_is_refused():
    tile = np.zeros((3, 2, 2), np.int32)
    with pytest.raises(ValueError, match="cannot hold"):
        K.quantile_tile(tile, work_dtype=np.int16)
    with pytest.raises(ValueError, match="cannot hold"):
        K.quantile_tile(tile.astype(np.uint16), work_dtype=np.int16)
