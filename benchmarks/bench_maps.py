"""Composite + sum map: our dask pipeline vs a plain pread loop vs a per-file fabio loop.

The 41 x 41 mesh of 1024 x 1024 uint16 EDF frames (written once with ``xrsmap_dask.synth``
to ``--data``, reused afterwards); ROI the middle 512 x 512 (xrsmap's inclusive
``(256, 256, 767, 767)``), binning 16.  Three cases, each end to end from the file list to
the (mosaic, sum map) pair, each in its own process (peak RSS its own), warm page cache:

* ``ours``: ``Mapper(41, 41).composite_map(files, roi, binning=16)`` (threads scheduler);
* ``plain``: one thread; per file ``io.edf.read_edf_headers`` for the data offset, one
  ``os.pread`` of the ROI rows, numpy reshape-sum binning, placement;
* ``fabio``: one thread; per file ``fabio.open(f).data`` (what xrsmap does), cropped to the
  ROI *before* any conversion, the same binning and placement.

Each case in its own fresh process: the first call, then warm rounds (``_common.py``); ratios
by the medians.  Targets: ours >= 1.2x the plain loop, >= 2.5x the fabio loop.

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
import _common as C  # noqa: E402

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


def _result(res, comp, sums, **extra):
    C.emit({**res, "comp_sum": float(np.sum(comp, dtype=np.float64)),
            "sum_sum": float(np.sum(sums)), "comp_shape": list(comp.shape), **extra})


def case_ours(scan, rounds):
    t0 = time.perf_counter()
    from xrsmap_dask.mapper import Mapper

    t_import = time.perf_counter() - t0
    roi, _ = _roi(scan.frame_shape)
    mapper = Mapper(scan.npt_x, scan.npt_y)

    def run():
        return mapper.composite_map(scan.files, roi=roi, binning=BINNING, scheduler="threads")

    res, (comp, sums) = C.measure(run, rounds)
    _result(res, comp, sums, import_s=t_import, nchunks=mapper.last_maps.plan.nchunks,
            frames_per_chunk=mapper.last_maps.plan.frames_per_chunk)


def _baseline(scan, rounds, read_roi):
    """Single-threaded loop: ``read_roi(path)`` -> ROI image, numpy binning, placement."""
    _, (rows, cols) = _roi(scan.frame_shape)
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

    res, (comp, sums) = C.measure(run, rounds)
    _result(res, comp, sums)


def case_plain(scan, rounds):
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

    _baseline(scan, rounds, read_roi)


def case_fabio(scan, rounds):
    """Per file: ``fabio.open(f).data`` (what xrsmap does), cropped to the ROI first."""
    import fabio

    _baseline(scan, rounds, lambda f, rows, cols: fabio.open(f).data[rows, cols])


CASES = {"ours": case_ours, "plain": case_plain, "fabio": case_fabio}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None,
                   help="mesh directory (default bench_data/mesh41, or mesh11 with --small)")
    p.add_argument("--small", action="store_true", help="smoke run: 11 x 11 of 256 x 256")
    p.add_argument("--rounds", type=int, default=C.ROUNDS, help="warm rounds per case")
    p.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    a = p.parse_args()
    npt, shape = (11, (256, 256)) if a.small else (41, (1024, 1024))
    data = a.data or str(C.DEFAULT_DATA / ("mesh11" if a.small else "mesh41"))
    if a.case:
        CASES[a.case](C.ensure_mesh(data, npt, npt, shape), a.rounds)
        return 0
    print("\n".join(C.machine_header()), flush=True)
    scan = C.ensure_mesh(data, npt, npt, shape)
    C.warm_page_cache(scan.files)
    roi, _ = _roi(shape)
    print(f"data: {C.edf_properties(scan.files)} ({npt} x {npt} mesh) in {data}; page cache: "
          f"{C.page_cache_state(scan.files)}")
    print(f"ROI {roi} (xrsmap, inclusive), binning {BINNING}; first call + {a.rounds} warm "
          "rounds per case, each case in a fresh process; ratios by the medians", flush=True)
    args = ["--data", data, "--rounds", str(a.rounds)] + (["--small"] if a.small else [])
    res = {case: C.run_case(os.path.abspath(__file__), case, args) for case in CASES}
    ref = res["plain"]
    for case in ("ours", "fabio"):
        for key in ("comp_sum", "sum_sum"):
            if not np.isclose(res[case][key], ref[key], rtol=1e-5):
                print(f"MISMATCH: {case} {key} {res[case][key]} != plain {ref[key]}")
                return 1
    ours = res["ours"]
    rows = [(label, *C.timing_cells(r), "" if r is ours else C.ratio(r, ours),
             f"{r['peak_mb']:.0f}")
            for label, r in ((f"ours: Mapper.composite_map, threads ({ours['nchunks']} map "
                              f"chunks of {ours['frames_per_chunk']} frames)", ours),
                             ("plain pread loop, 1 thread", res["plain"]),
                             ("fabio.open loop (crop first), 1 thread", res["fabio"]))]
    print(C.table(f"composite + sum map, {npt}x{npt} mesh, {shape[0]}^2 frames, binning "
                  f"{BINNING}", rows, ("pipeline", *C.TIMING_HEADER, "ours faster by (median)",
                                       "peak RSS MiB")))
    print(f"(ours: imports {ours['import_s']:.2f} s, outside the rounds)")
    print("targets: " + "; ".join([
        C.verdict("vs plain loop", C.median_s(res["plain"]) / C.median_s(ours), 1.2),
        C.verdict("vs fabio loop", C.median_s(res["fabio"]) / C.median_s(ours), 2.5)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
