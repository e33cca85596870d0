"""Composite + sum map: our dask pipeline vs a plain pread loop vs a per-file fabio loop.

The 41 x 41 mesh of 1024 x 1024 uint16 EDF frames (written once with ``xrsmap_dask.synth``
to ``--data``, reused afterwards); ROI the middle 512 x 512 (xrsmap's inclusive
``(256, 256, 767, 767)``), binning 16.  Three cases, each end to end from the file list to
the (mosaic, sum map) pair, each in its own process (peak RSS its own), warm page cache:

* ``ours``: ``Mapper(41, 41).composite_map(files, roi, binning=16)`` (threads scheduler);
* ``plain``: one thread; per file ``io.edf.read_edf_headers`` for the data offset, one
  ``os.pread`` of the ROI rows, numpy reshape-sum binning, placement;
* ``fabio``: one thread; per file ``fabio.open(f).data`` (what xrsmap does), ROI, the same
  binning and placement.

Targets: ours >= 1.2x the plain loop, >= 2.5x the fabio loop.

    python benchmarks/bench_maps.py            # full run (writes ~3.4 GB once)
    python benchmarks/bench_maps.py --small    # smoke run: 11 x 11 mesh of 256^2 frames
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, emit, ensure_mesh, run_case, table, timed  # noqa: E402

BINNING = 16


def _roi(shape):
    """Middle half of the frame, xrsmap style (x0, y0, x1, y1) inclusive, and as slices."""
    ny, nx = shape
    y0, x0 = ny // 4, nx // 4
    y1, x1 = y0 + ny // 2 - 1, x0 + nx // 2 - 1
    return (x0, y0, x1, y1), (slice(y0, y1 + 1), slice(x0, x1 + 1))


def _bin(roi_img, b):
    h, w = roi_img.shape
    return roi_img.reshape(h // b, b, w).sum(axis=1, dtype=np.float32) \
        .reshape(h // b, w // b, b).sum(axis=-1)


def _warm(files):
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass


def _result(secs, comp, sums, **extra):
    emit({"seconds": secs, "comp_sum": float(np.sum(comp, dtype=np.float64)),
          "sum_sum": float(np.sum(sums)), "comp_shape": list(comp.shape), **extra})


def case_ours(scan, repeat):
    from xrsmap_dask.mapper import Mapper

    roi, _ = _roi(scan.frame_shape)
    _warm(scan.files)
    mapper = Mapper(scan.npt_x, scan.npt_y)

    def run():
        return mapper.composite_map(scan.files, roi=roi, binning=BINNING, scheduler="threads")

    secs, (comp, sums) = timed(run, repeat)
    _result(secs, comp, sums, nchunks=mapper.last_maps.plan.nchunks,
            frames_per_chunk=mapper.last_maps.plan.frames_per_chunk)


def _baseline(scan, repeat, read_roi):
    """Single-threaded loop: ``read_roi(path)`` -> ROI image, numpy binning, placement."""
    _, (rows, cols) = _roi(scan.frame_shape)
    _warm(scan.files)
    b = BINNING
    fy, fx = (rows.stop - rows.start) // b, (cols.stop - cols.start) // b

    def run():
        comp = np.zeros((scan.npt_y * fy, scan.npt_x * fx), np.float32)
        sums = np.zeros((scan.npt_y, scan.npt_x))
        for i, f in enumerate(scan.files):
            tile = _bin(read_roi(f, rows, cols), b)
            iy, ix = divmod(i, scan.npt_x)
            comp[iy * fy:(iy + 1) * fy, ix * fx:(ix + 1) * fx] = tile
            sums[iy, ix] = tile.sum(dtype=np.float64)
        return comp, sums

    secs, (comp, sums) = timed(run, repeat)
    _result(secs, comp, sums)


def case_plain(scan, repeat):
    """Per file: header parse for the data offset, one ``os.pread`` of the ROI rows."""
    from xrsmap_dask.io.edf import read_edf_headers

    def read_roi(f, rows, cols):
        info = read_edf_headers(f)[0]
        row_bytes = info.shape[1] * info.dtype.itemsize
        fd = os.open(f, os.O_RDONLY)
        try:
            buf = os.pread(fd, (rows.stop - rows.start) * row_bytes,
                           info.offset + rows.start * row_bytes)
        finally:
            os.close(fd)
        return np.frombuffer(buf, info.dtype).reshape(-1, info.shape[1])[:, cols]

    _baseline(scan, repeat, read_roi)


def case_fabio(scan, repeat):
    """Per file: ``fabio.open(f).data`` (what xrsmap does), then the ROI."""
    import fabio

    _baseline(scan, repeat, lambda f, rows, cols: fabio.open(f).data.astype(np.float32)[rows, cols])


CASES = {"ours": case_ours, "plain": case_plain, "fabio": case_fabio}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None,
                   help="mesh directory (default bench_data/mesh41, or mesh11 with --small)")
    p.add_argument("--small", action="store_true", help="smoke run: 11 x 11 of 256 x 256")
    p.add_argument("--repeat", type=int, default=3, help="best of N timed runs per case")
    p.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    a = p.parse_args()
    npt, shape = (11, (256, 256)) if a.small else (41, (1024, 1024))
    data = a.data or str(DEFAULT_DATA / ("mesh11" if a.small else "mesh41"))
    scan = ensure_mesh(data, npt, npt, shape)
    if a.case:
        CASES[a.case](scan, a.repeat)
        return 0
    roi, _ = _roi(shape)
    print(f"{npt} x {npt} mesh of {shape[0]} x {shape[1]} uint16 EDF frames in {data}; "
          f"ROI {roi} (inclusive), binning {BINNING}; best of {a.repeat}; "
          f"{os.cpu_count()} CPUs", flush=True)
    args = ["--data", data, "--repeat", str(a.repeat)] + (["--small"] if a.small else [])
    res = {}
    for case in ("ours", "plain", "fabio"):
        t0 = time.perf_counter()
        res[case] = run_case(os.path.abspath(__file__), case, args)
        wall = time.perf_counter() - t0
        print(f"  {case}: {res[case]['seconds']:.3f} s (case wall {wall:.1f} s)", flush=True)
    ref = res["plain"]
    for case in ("ours", "fabio"):
        for key in ("comp_sum", "sum_sum"):
            if not np.isclose(res[case][key], ref[key], rtol=1e-5):
                print(f"MISMATCH: {case} {key} {res[case][key]} != plain {ref[key]}")
                return 1
    ours = res["ours"]["seconds"]
    rows = [(name, f"{r['seconds']:.3f}", f"{r['seconds'] / ours:.2f}x", f"{r['peak_mb']:.0f}")
            for name, r in (("xrsmap-dask (ours)", res["ours"]),
                            ("plain pread loop", res["plain"]),
                            ("fabio.open loop", res["fabio"]))]
    print(table(f"composite + sum map, {npt}x{npt} mesh, {shape[0]}^2 frames, binning {BINNING}",
                rows, ("pipeline", "seconds", "ours faster by", "peak RSS MiB")))
    sp, sf = res["plain"]["seconds"] / ours, res["fabio"]["seconds"] / ours
    print(f"speed-up vs plain loop {sp:.2f}x (target >= 1.2), vs fabio loop {sf:.2f}x "
          f"(target >= 2.5); ours used {res['ours']['nchunks']} read tasks of "
          f"{res['ours']['frames_per_chunk']} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
