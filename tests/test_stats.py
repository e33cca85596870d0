"""Dask-graph stats (xrsmap_dask.stats) against numpy, graph shape, and bounded memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import dask
import dask.array as da
import fabio
import h5py
import numpy as np
import pytest

from xrsmap_dask import imageseries, stats, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.store import read_attrs

DTYPES = ["uint16", "int32", "float32", "float64"]
SHAPE = (26, 19)
N = 17


@pytest.fixture(scope="module", params=DTYPES)
def files(request, tmp_path_factory):
    """EDF files (fabio) and an HDF5 stack (h5py) of the same random frames; the reference
    stack is what fabio reads back."""
    dtype = request.param
    d = tmp_path_factory.mktemp(f"dstats_{dtype}")
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        stack = rng.normal(100.0, 30.0, (N,) + SHAPE).astype(dtype)
    else:
        stack = rng.integers(0, 500, (N,) + SHAPE).astype(dtype)
    paths = []
    for i, frame in enumerate(stack):
        paths.append(str(d / f"f_{i:03d}.edf"))
        synth.write_edf(paths[-1], frame)
    with h5py.File(d / "s.h5", "w") as f:
        f.create_dataset("imageseries/images", data=stack)
    ref = np.stack([fabio.open(p).data for p in paths])
    return ref, paths, str(d / "s.h5")


# a budget that makes several tiles of a few rows each for these small stacks
SMALL_BUDGET = 40_000


@pytest.mark.parametrize("source", ["paths", "hdf5", "numpy"])
def test_median_percentile_equal_numpy(files, source):
    ref, paths, h5 = files
    data = {"paths": paths, "numpy": ref,
            "hdf5": imageseries.open(h5, "hdf5", path="imageseries")}[source]
    med = stats.median(data, memory_budget=SMALL_BUDGET)
    assert med.numblocks[0] > 2  # really tiled
    got = med.compute(scheduler="threads")
    exp = np.median(ref, axis=0)
    assert got.dtype == exp.dtype and np.array_equal(got, exp)
    for q in (0, 25, 50.0, 63.7, 100):
        got = stats.percentile(data, q, memory_budget=SMALL_BUDGET).compute()
        exp = np.percentile(ref, q, axis=0)
        assert got.dtype == exp.dtype and np.array_equal(got, exp), q
    qs = [1, 33.3, 99.9]
    lazy = stats.percentile(data, qs, memory_budget=SMALL_BUDGET)
    assert lazy.shape == (3,) + SHAPE
    got = lazy.compute()
    exp = np.percentile(ref, qs, axis=0)
    assert got.dtype == exp.dtype and np.array_equal(got, exp)


def test_roi_and_methods(files):
    ref, paths, _ = files
    roi = (slice(3, 21), slice(2, 17))
    sub = ref[:, 3:21, 2:17]
    got = stats.median(paths, roi=roi, memory_budget=SMALL_BUDGET).compute()
    assert np.array_equal(got, np.median(sub, axis=0))
    for method in ("nearest", "lower", "higher", "midpoint", "hazen", "weibull"):
        got = stats.percentile(paths, [10, 75.5], method=method, roi=roi,
                               memory_budget=SMALL_BUDGET).compute()
        assert np.array_equal(got, np.percentile(sub, [10, 75.5], axis=0, method=method)), method


def test_max_min_mean(files):
    ref, paths, _ = files
    got = stats.max(paths, memory_budget=SMALL_BUDGET).compute()
    assert got.dtype == ref.dtype and np.array_equal(got, ref.max(axis=0))
    got = stats.min(paths, memory_budget=SMALL_BUDGET).compute()
    assert got.dtype == ref.dtype and np.array_equal(got, ref.min(axis=0))
    got = stats.mean(paths, memory_budget=SMALL_BUDGET, roi=(slice(0, 5), slice(None)))
    exp = ref[:, :5].mean(axis=0)
    assert got.dtype == exp.dtype
    if ref.dtype.kind == "f":  # summation order differs from numpy's: equal to rounding
        np.testing.assert_allclose(got.compute(), exp, rtol=1e-6)
    else:
        assert np.array_equal(got.compute(), exp)


@pytest.mark.parametrize("chunks", [(5, 26, 19), (17, 7, 10), (4, 9, 19)])
def test_dask_array_inputs(chunks):
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 60000, (N,) + SHAPE).astype(np.uint16)
    x = da.from_array(ref, chunks=chunks)
    med = stats.median(x, memory_budget=SMALL_BUDGET)
    assert np.array_equal(med.compute(), np.median(ref, axis=0))
    pct = stats.percentile(x, [5, 95], memory_budget=SMALL_BUDGET, roi=(slice(1, 20), slice(None)))
    assert np.array_equal(pct.compute(), np.percentile(ref[:, 1:20], [5, 95], axis=0))
    # never an all-to-all rechunk of the stack: at most a merge of frame chunks per spatial
    # chunk (no split of the input's spatial chunks)
    layers = list(med.__dask_graph__().layers)
    assert not any(name.startswith("rechunk-split") for name in layers), layers


def test_nan_handling():
    rng = np.random.default_rng(11)
    ref = rng.normal(0, 1, (N,) + SHAPE)
    ref[rng.random(ref.shape) < 0.2] = np.nan
    ref[:, 0, 0] = np.nan  # an all-NaN pixel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exp_med = np.nanmedian(ref, axis=0)
        exp_pct = np.nanpercentile(ref, [10, 50, 90], axis=0)
        got_med = stats.median(ref, skipna=True, memory_budget=SMALL_BUDGET).compute()
        got_pct = stats.percentile(ref, [10, 50, 90], skipna=True,
                                   memory_budget=SMALL_BUDGET).compute()
    assert np.array_equal(got_med, exp_med, equal_nan=True)
    assert np.array_equal(got_pct, exp_pct, equal_nan=True)
    assert np.isnan(got_med[0, 0]) and not np.isnan(got_med).all()
    # without skipna a pixel holding any NaN is NaN, as numpy
    got = stats.median(ref, memory_budget=SMALL_BUDGET).compute()
    assert np.array_equal(got, np.median(ref, axis=0), equal_nan=True)


def test_task_names_and_no_rechunk(files):
    ref, paths, _ = files
    med = stats.median(paths, memory_budget=SMALL_BUDGET)
    pct = stats.percentile(paths, [20, 80], memory_budget=SMALL_BUDGET)
    for lazy, prefix in ((med, "median-tile-"), (pct, "percentile-tile-")):
        graph = dict(lazy.__dask_graph__())
        tiles = [k for k in graph if isinstance(k, tuple)]
        assert len(tiles) == int(np.prod(lazy.numblocks)) > 2
        assert all(k[0].startswith(prefix) for k in tiles)
        # only the tile tasks and the series itself: no read-then-rechunk layers
        assert all(isinstance(k, tuple) or k.startswith("imageseries-") for k in graph)


def test_plan_tiles_respects_budget():
    for nframes, hw, itemsize, budget, threads in [(200, (2048, 2048), 2, 2**30, 8),
                                                   (80, (512, 512), 2, 8 * 2**20, 2),
                                                   (10_000, (100, 3000), 4, 2**27, 4)]:
        rows, cols = stats.plan_tiles(nframes, hw, itemsize, budget, threads)
        assert sum(rows) == hw[0] and sum(cols) == hw[1]
        assert nframes * max(rows) * max(cols) * itemsize <= budget / threads
    with pytest.raises(InputError) as e:
        stats.plan_tiles(10**6, (10, 10), 8, 10**6, 2)
    assert e.value.argument == "memory_budget"


def test_bad_arguments(files):
    _, paths, _ = files
    for q in (101, -0.5, [10, 120], np.nan):
        with pytest.raises(InputError) as e:
            stats.percentile(paths, q)
        assert e.value.argument == "q"
    with pytest.raises(InputError) as e:
        stats.median(paths, method="mean")
    assert e.value.argument == "method"
    with pytest.raises(InputError) as e:
        stats.median(paths, memory_budget=0)
    assert e.value.argument == "memory_budget"
    with pytest.raises(InputError) as e:
        stats.median(da.zeros((4, 4)))
    assert e.value.argument == "data"
    with pytest.raises(InputError):
        stats.median(paths, roi=(slice(0, 100), slice(0, 5)))


def test_background(files):
    ref, paths, _ = files
    assert np.array_equal(stats.background(paths, "median"), np.median(ref, axis=0))
    assert np.array_equal(stats.background(paths, "percentile", pct=5),
                          np.percentile(ref, 5, axis=0))
    got = stats.background(paths)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, ref.mean(axis=0), rtol=1e-6)
    with pytest.raises(InputError) as e:
        stats.background(paths, "percentile")
    assert e.value.argument == "pct"
    with pytest.raises(InputError) as e:
        stats.background(paths, "mode")
    assert e.value.argument == "method"


def test_default_budget_is_a_fraction_of_memory():
    import psutil

    b = stats.default_memory_budget()
    assert 0 < b < psutil.virtual_memory().total


# -- memory: a stack > 4 x budget, peak RSS measured ------------------------------------------
BUDGET = 8 * 2**20


@pytest.fixture(scope="module")
def big_scan(tmp_path_factory):
    """80 frames of 512 x 512 uint16 EDF: 40 MiB, 5 x the 8 MiB budget."""
    s = synth.make_scan(tmp_path_factory.mktemp("big"), npt_y=8, npt_x=10,
                        frame_shape=(512, 512), mask=False, vary_headers=False)
    stack = np.stack([fabio.open(p).data for p in s.files])
    assert stack.nbytes > 4 * BUDGET
    return s, stack


_SCRIPT = textwrap.dedent("""
    import gc, glob, json, resource, sys, threading, time
    import dask, numpy as np, psutil
    from xrsmap_dask import imageseries, stats
    directory, budget, out, what = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dask.config.set(num_workers=2)
    ims = imageseries.from_files(sorted(glob.glob(directory + "/scan_*.edf")))
    proc = psutil.Process()

    def run(roi=None):
        if what == "median":
            lazy = stats.median(ims, memory_budget=budget, roi=roi)
        else:
            lazy = stats.percentile(ims, [10, 50, 90], memory_budget=budget, roi=roi)
        return lazy, lazy.compute(scheduler="threads")

    run((slice(0, 4), slice(0, 64)))  # load every code path first
    gc.collect()
    base = proc.memory_info().rss
    # ru_maxrss is a high-water mark (and survives exec from a bigger parent): it only
    # counts if it grew during the run
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    peak = [base]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    lazy, res = run()
    done.set()
    t.join()
    maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if maxrss1 > maxrss0:
        peak[0] = max(peak[0], maxrss1)
    np.save(out, res)
    print(json.dumps({"base": base, "peak": peak[0], "ntasks":
                      int(np.prod(lazy.numblocks)), "result_bytes": int(res.nbytes)}))
""")


@pytest.mark.parametrize("what", ["median", "percentile"])
def test_memory_budget_threads(big_scan, tmp_path, what):
    scan, stack = big_scan
    out = tmp_path / "res.npy"
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, scan.directory, str(BUDGET), str(out),
                           what], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    res = np.load(out)
    exp = np.median(stack, axis=0) if what == "median" else \
        np.percentile(stack, [10, 50, 90], axis=0)
    assert np.array_equal(res, exp)
    assert m["ntasks"] > 4
    grown = m["peak"] - m["base"]
    # the working memory stays within the budget; the result itself (its chunks and the
    # assembled array) comes on top; 4 MiB for allocator slack
    allowed = BUDGET + 2 * m["result_bytes"] + 4 * 2**20
    assert grown <= allowed, (grown, allowed)
    assert grown < stack.nbytes


def _start_poll(dask_worker):
    import gc

    import psutil

    gc.collect()
    proc = psutil.Process()
    st = {"base": proc.memory_info().rss, "done": threading.Event()}
    st["peak"] = st["base"]

    def poll():
        while not st["done"].is_set():
            st["peak"] = max(st["peak"], proc.memory_info().rss)
            time.sleep(0.001)

    st["thread"] = threading.Thread(target=poll, daemon=True)
    st["thread"].start()
    dask_worker._xrsmap_memory_probe = st
    return st["base"]


def _stop_poll(dask_worker):
    st = dask_worker._xrsmap_memory_probe
    st["done"].set()
    st["thread"].join()
    return st["peak"] - st["base"]


def test_memory_budget_local_cluster(big_scan, client):
    scan, stack = big_scan
    ims = imageseries.from_files(scan.files)
    # with a client the default budget comes from the workers' memory limit
    limit = min(client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit).values())
    assert stats.default_memory_budget() == int(limit * stats.DEFAULT_BUDGET_FRACTION)
    stats.median(ims, memory_budget=BUDGET, roi=(slice(0, 4), slice(0, 64))).compute()
    client.run(_start_poll)
    lazy = stats.median(ims, memory_budget=BUDGET)
    res = lazy.compute()
    grown = client.run(_stop_poll)
    assert np.array_equal(res, np.median(stack, axis=0))
    assert lazy.numblocks[0] > 4
    for worker, g in grown.items():
        # per worker (1 thread): the budget plus the result chunks it holds, 4 MiB slack
        assert g <= BUDGET + res.nbytes + 4 * 2**20, (worker, g)
    pct = stats.percentile(ims, [5, 95], memory_budget=BUDGET).compute()
    assert np.array_equal(pct, np.percentile(stack, [5, 95], axis=0))


def test_dask_config_threads_used_for_planning(files):
    ref, paths, _ = files
    with dask.config.set(num_workers=1):
        one = stats.median(paths, memory_budget=SMALL_BUDGET).numblocks
    with dask.config.set(num_workers=4):
        four = stats.median(paths, memory_budget=SMALL_BUDGET).numblocks
    assert four[0] * four[1] > one[0] * one[1]


def test_processed_and_omega_series(files):
    from xrsmap_dask.imageseries.omega import OmegaImageSeries, OmegaWedges
    from xrsmap_dask.imageseries.process import ProcessedImageSeries

    ref, paths, _ = files
    w = OmegaWedges(N)
    w.addwedge(0, 17, N)
    ims = imageseries.from_files(paths, meta={"omega": w.omegas})
    fl = [16, 0, 1, 2, 3, 9, 10, 11]
    pims = ProcessedImageSeries(ims, [("flip", "t"), ("rectangle", [[2, 17], [1, 20]])],
                                frame_list=fl)
    exp = np.median(np.swapaxes(ref[fl], 1, 2)[:, 2:17, 1:20], axis=0)
    assert np.array_equal(stats.median(pims, memory_budget=SMALL_BUDGET).compute(), exp)
    oms = OmegaImageSeries(ims)
    assert np.array_equal(stats.percentile(oms, [30, 70], memory_budget=SMALL_BUDGET).compute(),
                          np.percentile(ref, [30, 70], axis=0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_equals_numpy_edge_cases(dtype):
    """The numpy kernel itself: 1..9 frames (odd/even), q at 0/100, NaNs, several methods."""
    from xrsmap_dask._stat_kernels import quantile_tile

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 8, 9):
        tile = rng.normal(50, 20, (n, 5, 7)).astype(dtype)
        if tile.dtype.kind == "f" and n > 2:
            tile[rng.integers(0, n, 12), rng.integers(0, 5, 12), rng.integers(0, 7, 12)] = np.nan
            tile[:, 0, 0] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for skipna in (False, True):
                med = np.nanmedian if skipna else np.median
                pct = np.nanpercentile if skipna else np.percentile
                got = quantile_tile(tile, None, skipna=skipna)
                exp = med(tile, axis=0)
                assert got.dtype == exp.dtype and np.array_equal(got, exp, equal_nan=True)
                for q in (0, 37.5, 50, 100, [0, 12.5, 99.9, 100]):
                    for method in ("linear", "nearest", "median_unbiased"):
                        got = quantile_tile(tile, q, method=method, skipna=skipna)
                        exp = pct(tile, q, axis=0, method=method)
                        assert np.array_equal(got.astype(exp.dtype), exp, equal_nan=True), \
                            (n, skipna, q, method)


# -- statistics outputs (one entry point: store.write_statistics) -------------------------

def test_statistics_output_equals_numpy_from_one_read(files, tmp_path, open_counter):
    import zarr

    from xrsmap_dask.store import verify, write_statistics

    ref, paths, _ = files
    roi = (slice(2, 25), slice(1, 19))
    sub = ref[:, 2:25, 1:19]
    ims = imageseries.from_files(paths)              # headers read here, before counting
    with open_counter(paths) as opens:
        res = write_statistics(ims, tmp_path / "s.zarr", ["median", "max", "min", "mean"],
                               [5, 63.7], roi=roi, memory_budget=SMALL_BUDGET)
    g = zarr.open_group(store=str(tmp_path / "s.zarr"), mode="r")
    ntiles = res.nchunks
    assert ntiles > 2 and read_attrs(tmp_path / "s.zarr")["complete"] is True and verify(tmp_path / "s.zarr").ok
    # every statistic from one read: each file opened once per tile, not once per statistic
    assert set(opens.counts.values()) == {ntiles} and len(opens.counts) == N
    assert read_attrs(tmp_path / "s.zarr")["stats"] == [
        "median", "max", "min", "mean", "percentile_5", "percentile_63.7"]
    exact = {"median": np.median(sub, axis=0), "max": sub.max(axis=0), "min": sub.min(axis=0),
             "percentile_5": np.percentile(sub, 5, axis=0),
             "percentile_63.7": np.percentile(sub, 63.7, axis=0)}
    for label, want in exact.items():
        got = g[label][...]
        assert got.dtype == want.dtype and np.array_equal(got, want), label
    np.testing.assert_allclose(g["mean"][...], sub.mean(axis=0), rtol=1e-6)
    assert g["median"].metadata.dimension_names == ("det_y", "det_x")
    mem = stats.compute_statistics(paths, ["median"], [5, 63.7], roi=roi,
                                   memory_budget=SMALL_BUDGET)
    for label in mem:
        assert np.array_equal(mem[label], g[label][...])


def test_statistics_output_lock_identity_and_overwrite(files, tmp_path):
    from xrsmap_dask.store import OutputLock, OutputLockedError, write_statistics

    ref, paths, _ = files
    out = tmp_path / "s.zarr"
    with OutputLock(str(out)):
        with pytest.raises(OutputLockedError):
            write_statistics(paths, out, ["max"])
    assert write_statistics(paths, out, ["max"]).skipped is False
    assert write_statistics(paths, out, ["max"]).skipped is True
    with pytest.raises(InputError, match="different job"):
        write_statistics(paths, out, ["max", "min"])
    res = write_statistics(paths, out, ["max", "min"], overwrite=True)
    assert not res.skipped
    import zarr

    g = zarr.open_group(store=str(out), mode="r")
    assert np.array_equal(g["min"][...], ref.min(axis=0))


def test_percentile_labels_never_collide(files, tmp_path):
    import zarr

    from xrsmap_dask.store import write_statistics

    ref, paths, _ = files
    qs = [12.3456789, 12.34568, 50, 50.0]
    lazy = stats.lazy_stats(paths, [], qs, memory_budget=SMALL_BUDGET)
    assert list(lazy) == ["percentile_12.3456789", "percentile_12.34568", "percentile_50"]
    write_statistics(paths, tmp_path / "p.zarr", [], qs, memory_budget=SMALL_BUDGET)
    g = zarr.open_group(store=str(tmp_path / "p.zarr"), mode="r")
    for label, q in zip(lazy, qs):
        want = np.percentile(ref, q, axis=0)
        assert np.array_equal(g[label][...], want) and np.array_equal(lazy[label].compute(), want)


def test_statistics_under_fill_skip_and_list_frames_failing_while_read(tmp_path):
    """Frames missing at open, truncated after open (EDF) and a corrupt gzip chunk (HDF5):
    every statistic skips them and every one of them is listed."""
    import zarr

    from xrsmap_dask.store import write_statistics

    rng = np.random.default_rng(5)
    stack = rng.integers(0, 1000, (12, 20, 16)).astype(np.uint16)
    paths = []
    for i, frame in enumerate(stack):
        paths.append(str(tmp_path / f"f_{i:02d}.edf"))
        synth.write_edf(paths[-1], frame)
    h5 = tmp_path / "c.h5"
    with h5py.File(h5, "w") as f:
        ds = f.create_dataset("imageseries/images", data=stack, chunks=(1, 20, 16),
                              compression="gzip")
        info = ds.id.get_chunk_info(7)
    with open(h5, "r+b") as fh:                       # a corrupt gzip chunk: frame 7
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xff" * 8)
    os.remove(paths[2])                               # missing: known at open
    edf = imageseries.from_files(paths, on_error="fill")
    with open(paths[9], "r+b") as fh:                 # damaged after open: found on read
        fh.truncate(os.path.getsize(paths[9]) - 100)
    cases = {"edf": (edf, {2, 9}), "hdf5": (imageseries.open(str(h5), "hdf5",
                                                               path="imageseries",
                                                               on_error="fill"), {7})}
    for name, (ims, bad) in cases.items():
        out = tmp_path / f"{name}.zarr"
        res = write_statistics(ims, out, ["median", "mean", "max", "min"], [10],
                               memory_budget=4000)
        assert res.nchunks > 1
        good = np.array([i not in bad for i in range(12)])
        g = zarr.open_group(store=str(out), mode="r")
        for label, func in (("median", np.median), ("mean", np.mean), ("max", np.max),
                            ("min", np.min),
                            ("percentile_10", lambda a, axis: np.percentile(a, 10, axis=axis))):
            got = g[label][...]
            assert np.isfinite(got).all(), (name, label)
            np.testing.assert_allclose(got, func(stack[good].astype(np.float64), axis=0),
                                       rtol=1e-6, err_msg=f"{name} {label}")
        assert [b[0] for b in read_attrs(out)["bad_frames"]] == sorted(bad), name
        assert [b[0] for b in res.bad_frames] == sorted(bad)


def test_statistics_output_mask_is_nan_in_every_image(files, tmp_path):
    import zarr

    from xrsmap_dask.store import write_statistics

    ref, paths, _ = files
    mask = np.zeros(SHAPE, np.uint8)
    mask[3:5, 2:9] = 1
    write_statistics(paths, tmp_path / "m.zarr", ["max", "median"], [20], mask=mask,
                     memory_budget=SMALL_BUDGET)
    g = zarr.open_group(store=str(tmp_path / "m.zarr"), mode="r")
    keep = mask == 0
    for label, want in (("max", ref.max(axis=0)), ("median", np.median(ref, axis=0)),
                        ("percentile_20", np.percentile(ref, 20, axis=0))):
        got = g[label][...]
        assert got.dtype.kind == "f" and np.isnan(got[~keep]).all(), label
        assert np.array_equal(got[keep], want[keep].astype(got.dtype)), label
    assert read_attrs(tmp_path / "m.zarr")["mask"]["excluded"] == int(mask.sum())
    with pytest.raises(InputError) as err:
        write_statistics(paths, tmp_path / "x.zarr", ["max"], mask=np.zeros((3, 3)))
    assert err.value.argument == "mask"
