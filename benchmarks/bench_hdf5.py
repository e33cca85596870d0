"""Compressed HDF5: ROI sum + composite map, ours vs h5py (one thread) vs h5py on dask threads.

2000 frames of 1024 x 1024 uint32, one frame per chunk, written once (``xrsmap_dask.synth``
detector-like frames: sparse Poisson counts and a moving spot) twice: bitshuffle + LZ4 (HDF5
filter 32008, as Eiger writes it) and gzip (deflate level 4).  Map 40 x 50, ROI the middle
512 x 512 (xrsmap's inclusive ``(256, 256, 767, 767)``), binning 16.  Per file, each case in
its own process (peak RSS its own), warm page cache, several rounds:

* ``ours``: ``Mapper(50, 40).composite_map(NexusImageSeries(path), roi, binning=16)`` on the
  threads scheduler: raw chunks read with ``os.pread`` and decoded outside HDF5's lock;
* ``loop``: one thread, ``ds[i, rows, cols]`` per frame (HDF5 decodes), numpy sum, binning
  and placement;
* ``h5dask``: the same Mapper call with ``direct_chunks=False`` (h5py hyperslabs in dask
  threads: HDF5's global lock serialises the decompression).

Targets on 2 cores: ours >= 1.8x the loop for bitshuffle-LZ4, >= 1.6x for gzip.

    python benchmarks/bench_hdf5.py                  # full size (writes ~2 x 1.5 GB once)
    python benchmarks/bench_hdf5.py --small          # smoke run: 200 frames of 256 x 256
    python benchmarks/bench_hdf5.py --frames 400 --size 512   # medium
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, emit, run_case, table  # noqa: E402

BINNING = 16
COMPRESSIONS = ("bslz4", "gzip")


def _grid(nframes: int) -> tuple[int, int]:
    """(npt_y, npt_x): the most square grid with npt_y * npt_x == nframes."""
    npt_y = int(np.sqrt(nframes))
    while nframes % npt_y:
        npt_y -= 1
    return npt_y, nframes // npt_y


def _roi(size: int):
    y0 = size // 4
    y1 = y0 + size // 2 - 1
    return (y0, y0, y1, y1), (slice(y0, y1 + 1), slice(y0, y1 + 1))


def data_file(directory: str, compression: str, nframes: int, size: int) -> str:
    return os.path.join(directory, "hdf5", f"frames_{nframes}x{size}_{compression}.h5")


def write_file(path: str, compression: str, nframes: int, size: int) -> None:
    """The benchmark file: ``/entry/data/data``, chunks of one frame (written to a temporary
    name, then renamed, so an interrupted write is never reused)."""
    import h5py

    from xrsmap_dask import synth

    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f"writing {nframes} frames {size}² uint32 ({compression}) to {path} (once)",
          flush=True)
    tmp = path + ".part"
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("/entry/data/data", shape=(nframes, size, size), dtype="uint32",
                              chunks=(1, size, size), **synth.hdf5_compression(compression))
        step = 16
        for start in range(0, nframes, step):
            n = min(step, nframes - start)
            ds[start:start + n] = synth.detector_frames(n, (size, size), "uint32", seed=start)
    os.replace(tmp, path)


def _warm(path: str) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def _rounds(func, rounds: int):
    times, value = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        value = func()
        times.append(time.perf_counter() - t0)
    return times, value


def _emit(times, comp, sums, **extra):
    emit({"min": min(times), "median": statistics.median(times),
          "comp_sum": float(np.sum(comp, dtype=np.float64)), "sum_sum": float(np.sum(sums)),
          **extra})


def case_mapper(path: str, size: int, rounds: int, direct: bool):
    from xrsmap_dask.imageseries.nexus import NexusImageSeries
    from xrsmap_dask.mapper import Mapper

    _warm(path)
    roi, _ = _roi(size)

    def run():
        ims = NexusImageSeries(path, direct_chunks=direct)
        npt_y, npt_x = _grid(len(ims))
        return Mapper(npt_x, npt_y).composite_map(ims, roi=roi, binning=BINNING)

    times, (comp, sums) = _rounds(run, rounds)
    _emit(times, comp, sums)


def case_loop(path: str, size: int, rounds: int):
    import h5py

    import xrsmap_dask.io.hdf5  # noqa: F401  (registers the HDF5 filters)

    _warm(path)
    _, (rows, cols) = _roi(size)
    b = BINNING

    def run():
        with h5py.File(path, "r") as f:
            ds = f["/entry/data/data"]
            npt_y, npt_x = _grid(ds.shape[0])
            fy, fx = (rows.stop - rows.start) // b, (cols.stop - cols.start) // b
            comp = np.zeros((npt_y * fy, npt_x * fx), np.float32)
            sums = np.zeros((npt_y, npt_x))
            for i in range(ds.shape[0]):
                roi = ds[i, rows, cols]
                iy, ix = divmod(i, npt_x)
                sums[iy, ix] = roi.sum(dtype=np.float64)
                tile = roi.reshape(fy, b, fx, b).sum(axis=(1, 3), dtype=np.float64)
                comp[iy * fy:(iy + 1) * fy, ix * fx:(ix + 1) * fx] = tile
        return comp, sums

    times, (comp, sums) = _rounds(run, rounds)
    _emit(times, comp, sums)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--small", action="store_true")
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--case")
    p.add_argument("--file")
    p.add_argument("--compression", choices=COMPRESSIONS)
    a = p.parse_args()
    nframes = a.frames or (200 if a.small else 2000)
    size = a.size or (256 if a.small else 1024)
    if a.case:
        if a.case == "write":  # in its own process: the parent's peak RSS stays small
            return write_file(a.file, a.compression, nframes, size)
        if a.case == "loop":
            return case_loop(a.file, size, a.rounds)
        return case_mapper(a.file, size, a.rounds, direct=a.case == "ours")
    me = os.path.abspath(__file__)
    extra = ["--size", str(size), "--rounds", str(a.rounds)]
    rows = []
    for compression in COMPRESSIONS:
        path = data_file(a.data, compression, nframes, size)
        if not os.path.exists(path):
            subprocess.run([sys.executable, me, "--case", "write", "--file", path,
                            "--compression", compression, "--frames", str(nframes),
                            "--size", str(size)], check=True)
        res = {c: run_case(me, c, extra + ["--file", path]) for c in ("ours", "loop", "h5dask")}
        for c in ("ours", "h5dask"):  # same numbers as the plain loop
            assert abs(res[c]["sum_sum"] - res["loop"]["sum_sum"]) <= 1e-9 * res["loop"]["sum_sum"]
            assert abs(res[c]["comp_sum"] - res["loop"]["comp_sum"]) \
                <= 1e-6 * res["loop"]["comp_sum"]
        mib = os.path.getsize(path) / 2**20
        base = res["loop"]["median"]
        for c, label in (("ours", "xrsmap-dask (raw chunks, threads)"),
                         ("h5dask", "h5py hyperslabs, dask threads"),
                         ("loop", "h5py loop, one thread")):
            r = res[c]
            rows.append((f"{compression} ({mib:.0f} MiB on disk)", label,
                         f"{r['median']:.2f} / {r['min']:.2f}", f"{base / r['median']:.2f}x",
                         f"{r['peak_mb']:.0f}"))
    print(table(f"bench_hdf5: ROI sum + composite, {nframes} frames {size}² uint32, one frame "
                f"per chunk, ROI {size // 2}², binning {BINNING} ({os.cpu_count()} cores, warm "
                f"cache, {a.rounds} rounds)", rows,
                ("file", "reader", "seconds median / min", "vs h5py loop", "peak RSS MiB")))
    print("values: sparse Poisson counts (mean 0.7) plus a moving spot up to ~400 counts, "
          "uint32; identical sums and composites in all three cases (checked)")


if __name__ == "__main__":
    main()
