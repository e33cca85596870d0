"""Statistics of integer frames under ``on_error='fill'`` are numpy's for the integer data:
float64, the quantile interpolation in float64, equal to ``np.nanpercentile`` /
``np.nanmedian`` / ... of the float64 stack with the unreadable frames NaN (the float32
blocks of 16-bit data under fill must not leak into the results).

uint16 and uint32 frames as EDF files (fabio) and HDF5 stacks (h5py), wide values (uint32
up to 2**32 - 2, where float32 is 256 apart); one EDF file truncated, one HDF5 chunk
corrupt, so fill is exercised; every face: the CLI (zarr tile by tile and an ``.npy``
image computed in memory), ``store.write_statistics``, ``stats.compute_statistics`` and
the lazy ``stats.median`` / ``percentile`` / ``max`` / ``min`` / ``mean``.
"""
from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest
import zarr

from xrsmap_dask import cli, imageseries, stats, synth
from xrsmap_dask.store import read_attrs, write_statistics

N, SHAPE = 13, (12, 10)
BAD = 4                      # the unreadable frame (truncated EDF file, corrupt HDF5 chunk)
PCTS = (5.0, 95.0)


def stack_of(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(23)
    top = int(np.iinfo(dtype).max) - 1              # the all-ones value is an invalid pixel
    x = rng.integers(0, top, (N,) + SHAPE, endpoint=True, dtype=np.uint64)
    high = rng.random((N,) + SHAPE) < 0.5           # half the values near the top
    x[high] = top - rng.integers(0, 1000, int(high.sum()))
    x[:, 0, 0] = top                                # and one pixel at it in every frame
    x[:, 0, 1] = [0, top] * (N // 2) + [top]        # the widest interpolation
    return x.astype(dtype)


@pytest.fixture(scope="module", params=["uint16", "uint32"])
def data(request, tmp_path_factory):
    dtype = request.param
    d = tmp_path_factory.mktemp(f"fill_{dtype}")
    stack = stack_of(dtype)
    os.mkdir(d / "edf")
    paths = []
    for i, frame in enumerate(stack):
        paths.append(str(d / "edf" / f"f_{i:02d}.edf"))
        synth.write_edf(paths[-1], frame)
    with open(paths[BAD], "r+b") as fh:              # a truncated frame file
        fh.truncate(os.path.getsize(paths[BAD]) - 64)
    h5 = d / "s.h5"
    with h5py.File(h5, "w") as f:
        ds = f.create_dataset("entry/data", data=stack, chunks=(1,) + SHAPE,
                              compression="gzip")
        info = ds.id.get_chunk_info(BAD)
    with open(h5, "r+b") as fh:                      # a corrupt gzip chunk
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xff" * 8)
    x = stack.astype(np.float64)
    x[BAD] = np.nan
    refs = {"median": np.nanmedian(x, axis=0), "max": np.nanmax(x, axis=0),
            "min": np.nanmin(x, axis=0), "mean": np.nanmean(x, axis=0)}
    for q in PCTS:
        refs[stats.stat_label("percentile", q)] = np.nanpercentile(x, q, axis=0)
    return {"dtype": dtype, "edf": str(d / "edf" / "*.edf"), "paths": paths,
            "h5": f"{h5}:/entry/data", "h5_file": str(h5), "refs": refs}


def check(got: dict, refs: dict, where: str) -> None:
    assert got, where
    for label, image in got.items():
        image = np.asarray(image)
        assert image.dtype == np.float64, f"{where} {label}: {image.dtype}"
        np.testing.assert_array_equal(image, refs[label], err_msg=f"{where} {label}")


def series(data, kind: str):
    if kind == "edf":
        return imageseries.from_files(data["paths"], on_error="fill")
    return imageseries.open(data["h5_file"], "hdf5", path="entry", dataname="data",
                            on_error="fill")


@pytest.mark.parametrize("kind", ["edf", "h5"])
def test_cli_stats_under_fill_are_exact_float64(data, tmp_path, kind):
    out = tmp_path / "s.zarr"
    assert cli.main(["stats", data[kind], "--stat", "median", "max", "min", "mean",
                     "--percentile", *map(str, PCTS), "--on-error", "fill", "-o", str(out),
                     "-q"]) == 0
    g = zarr.open_group(str(out), mode="r")
    assert [b[0] for b in read_attrs(str(out))["bad_frames"]] == [BAD]
    check({label: g[label][...] for label in data["refs"]}, data["refs"], f"zarr {kind}")
    for opt, label in ((["--percentile", "5"], "percentile_5"),
                       (["--percentile", "95"], "percentile_95"),
                       (["--stat", "median"], "median")):
        img = tmp_path / f"{label}.npy"              # an image computed in memory
        assert cli.main(["stats", data[kind], *opt, "--on-error", "fill", "-o", str(img),
                         "-q"]) == 0
        check({label: np.load(img)}, data["refs"], f"npy {kind}")


@pytest.mark.parametrize("kind", ["edf", "h5"])
def test_library_statistics_under_fill_are_exact_float64(data, tmp_path, kind):
    names, refs = ["median", "max", "min", "mean"], data["refs"]
    res = write_statistics(series(data, kind), tmp_path / "w.zarr", names, list(PCTS),
                           memory_budget=20_000)
    assert res.nchunks > 1                           # several tiles
    g = zarr.open_group(str(tmp_path / "w.zarr"), mode="r")
    check({label: g[label][...] for label in refs}, refs, f"write_statistics {kind}")
    images = stats.compute_statistics(series(data, kind), names, list(PCTS))
    check({label: images[label] for label in refs}, refs, f"compute_statistics {kind}")
    ims = series(data, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lazy = {"median": stats.median(ims, skipna=True, memory_budget=20_000),
                "max": stats.max(ims, skipna=True), "min": stats.min(ims, skipna=True),
                "mean": stats.mean(ims, skipna=True)}
        for q in PCTS:
            lazy[stats.stat_label("percentile", q)] = stats.percentile(ims, q, skipna=True)
        got = {label: img.compute() for label, img in lazy.items()}
        both = stats.percentile(ims, list(PCTS), skipna=True).compute()
    for label, img in lazy.items():
        assert img.dtype == np.float64, label        # the lazy dtype is the computed one
    check(got, refs, f"lazy {kind}")
    check({stats.stat_label("percentile", q): b for q, b in zip(PCTS, both)}, refs,
          f"percentile list {kind}")
