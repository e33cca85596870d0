"""ROI read rate: our lazy batched reads vs a plain single-threaded loop of positioned reads.

Case A (issue 3): the middle 512 x 512 ROI of 1681 EDF frames of 1024 x 1024 uint16 (the 41 x 41
mesh) through ``from_files(...).to_dask(roi).sum(axis=(1, 2)).compute()`` (threads) beside a
single-threaded loop of ``os.pread`` of the same ROI rows (offsets parsed beforehand) + numpy
sum.  Case B: opening a series of 10,000 EDF files (headers only) beside reading them whole
with fabio.  Every case runs in its own process (peak RSS its own) on a warm page cache.

    python benchmarks/bench_read.py            # full run
    python benchmarks/bench_read.py --small    # smoke run
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, emit, ensure_mesh, run_case, table, timed  # noqa: E402


def _roi(shape):
    ny, nx = shape
    return slice(ny // 4, ny // 4 + ny // 2), slice(nx // 4, nx // 4 + nx // 2)


def case_ours(scan):
    from xrsmap_dask import imageseries

    rows, cols = _roi(scan.frame_shape)
    t0 = time.perf_counter()
    ims = imageseries.from_files(scan.files)
    t_open = time.perf_counter() - t0
    arr = ims.to_dask((rows, cols))

    def run():
        return arr.sum(axis=(1, 2)).compute(scheduler="threads")

    secs, sums = timed(run)
    emit({"seconds": secs, "open_seconds": t_open, "ntasks": arr.npartitions,
          "checksum": float(np.sum(sums))})


def case_plain(scan):
    from xrsmap_dask.io.edf import read_edf_headers

    rows, cols = _roi(scan.frame_shape)
    infos = [read_edf_headers(f)[0] for f in scan.files]

    def run():
        sums = np.empty(len(infos))
        for k, info in enumerate(infos):
            row_bytes = info.shape[1] * info.dtype.itemsize
            fd = os.open(info.path, os.O_RDONLY)
            try:
                buf = os.pread(fd, (rows.stop - rows.start) * row_bytes,
                               info.offset + rows.start * row_bytes)
            finally:
                os.close(fd)
            block = np.frombuffer(buf, info.dtype).reshape(-1, info.shape[1])[:, cols]
            sums[k] = block.sum()
        return sums

    secs, sums = timed(run)
    emit({"seconds": secs, "checksum": float(np.sum(sums))})


def _many_files(directory, n, shape):
    """n EDF files of ``shape`` uint16 written byte by byte (fast), headers of varying length."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"f{k:05d}.edf") for k in range(n)]
    if all(os.path.exists(p) for p in paths[-3:]) and len(os.listdir(directory)) >= n:
        return paths
    data = np.random.default_rng(0).integers(0, 1000, shape).astype("<u2").tobytes()
    for k, path in enumerate(paths):
        head = (f"{{\nHeaderID = EH:000001:000000:000000 ;\nByteOrder = LowByteFirst ;\n"
                f"DataType = UnsignedShort ;\nDim_1 = {shape[1]} ;\nDim_2 = {shape[0]} ;\n"
                f"Size = {shape[0] * shape[1] * 2} ;\ncomment = {'c' * (k % 900)} ;\n")
        pad = 512 - (len(head) + 2) % 512
        with open(path, "wb") as f:
            f.write((head + " " * pad + "}\n").encode())
            f.write(data)
    return paths


def case_open_headers(paths):
    from xrsmap_dask import imageseries

    secs, ims = timed(lambda: imageseries.from_files(paths), repeat=2)
    emit({"seconds": secs, "nframes": len(ims)})


def case_open_whole(paths):
    import fabio

    def run():
        return [fabio.open(p).data for p in paths][-1].shape

    secs, _ = timed(run, repeat=1)
    emit({"seconds": secs})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--small", action="store_true")
    p.add_argument("--case")
    a = p.parse_args()
    if a.small:
        mesh_dir, npt, shape = os.path.join(a.data, "mesh11"), 11, (256, 256)
        many_dir, nmany, many_shape = os.path.join(a.data, "many500"), 500, (64, 64)
    else:
        mesh_dir, npt, shape = os.path.join(a.data, "mesh41"), 41, (1024, 1024)
        many_dir, nmany, many_shape = os.path.join(a.data, "many10000"), 10_000, (256, 256)
    if a.case in ("ours", "plain"):
        scan = ensure_mesh(mesh_dir, npt, npt, shape)
        return {"ours": case_ours, "plain": case_plain}[a.case](scan)
    if a.case in ("open_headers", "open_whole"):
        paths = _many_files(many_dir, nmany, many_shape)
        return {"open_headers": case_open_headers, "open_whole": case_open_whole}[a.case](paths)

    scan = ensure_mesh(mesh_dir, npt, npt, shape)
    _many_files(many_dir, nmany, many_shape)
    extra = ["--data", a.data] + (["--small"] if a.small else [])
    me = os.path.abspath(__file__)
    ours, plain = run_case(me, "ours", extra), run_case(me, "plain", extra)
    assert abs(ours["checksum"] - plain["checksum"]) < 1e-6 * max(1.0, abs(plain["checksum"]))
    hdr, whole = run_case(me, "open_headers", extra), run_case(me, "open_whole", extra)
    nbytes = scan.nframes * (shape[0] // 2) * (shape[1] // 2) * 2
    rows = [
        (f"ROI read, {scan.nframes} frames {shape[0]}² u16, middle {shape[0] // 2}²",
         f"{ours['seconds']:.2f} s ({nbytes / ours['seconds'] / 2**20:.0f} MiB/s, "
         f"{ours['ntasks']} tasks)",
         f"{plain['seconds']:.2f} s (plain pread loop)",
         f"{plain['seconds'] / ours['seconds']:.2f}x", f"{ours['peak_mb']:.0f} / {plain['peak_mb']:.0f}"),
        (f"open {nmany} EDF files ({many_shape[0]}²)", f"{hdr['seconds']:.2f} s (headers only)",
         f"{whole['seconds']:.2f} s (fabio, whole files)",
         f"{whole['seconds'] / hdr['seconds']:.1f}x", f"{hdr['peak_mb']:.0f} / {whole['peak_mb']:.0f}"),
    ]
    print(table("bench_read: lazy ROI reads (threads, 2 cores, warm cache)", rows,
                ("case", "xrsmap-dask", "baseline", "speed-up", "peak RSS MiB (ours / base)")))
    print(f"(open of the 41x41 mesh, headers only: {ours['open_seconds']:.2f} s)")


if __name__ == "__main__":
    main()
