"""ROI reads and header-only opens: ours vs plain single-threaded loops doing the same work.

* ``roi``: the middle 512 x 512 ROI of the 41 x 41 mesh of 1024 x 1024 uint16 EDF frames
  (1681 files), ``ims.to_dask(roi).sum(axis=(1, 2)).compute()`` on the threaded scheduler
  (series opened once, outside the rounds) beside ``roi-plain``: one thread, the same offsets
  (headers parsed once, outside the rounds), per file one ``os.pread`` of the ROI rows +
  a numpy sum.
* ``open``: opening 10,000 EDF files of 256 x 256 (headers only): ``imageseries.from_files``
  beside ``open-plain`` (per file one ``os.pread`` of the first 4 KiB, more if the header is
  longer, a ``key = value ;`` parse, the data offset and a file-size check: what a series
  needs to read frames later) and ``open-fabio`` (``fabio.openheader`` per file).

Each case in its own fresh process (first call + warm rounds, peak RSS; ``_common.py``), on
a warm page cache.  Targets (issue 15): the ROI read >= 1.0x the plain loop by the median.

    python benchmarks/bench_read.py            # full run
    python benchmarks/bench_read.py --small    # smoke run
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def _roi(shape):
    ny, nx = shape
    return slice(ny // 4, ny // 4 + ny // 2), slice(nx // 4, nx // 4 + nx // 2)


# -- ROI reads ------------------------------------------------------------------------------
def case_roi(scan, rounds):
    t0 = time.perf_counter()
    import numpy as np

    from xrsmap_dask import imageseries

    t_import = time.perf_counter() - t0
    rows, cols = _roi(scan.frame_shape)
    t0 = time.perf_counter()
    ims = imageseries.from_files(scan.files)
    t_open = time.perf_counter() - t0
    arr = ims.to_dask((rows, cols))
    res, sums = C.measure(lambda: arr.sum(axis=(1, 2)).compute(scheduler="threads"), rounds)
    C.emit({**res, "import_s": t_import, "open_s": t_open, "ntasks": arr.npartitions,
            "checksum": float(np.sum(sums))})


def case_roi_plain(scan, rounds):
    import numpy as np

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

    res, sums = C.measure(run, rounds)
    C.emit({**res, "checksum": float(np.sum(sums))})


# -- header-only opens ----------------------------------------------------------------------
def many_files(directory, n, shape):
    """n EDF files of ``shape`` uint16 written byte by byte (fast), headers of varying length."""
    import numpy as np

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


_TYPES = {"unsignedshort": "u2", "signedshort": "i2", "unsignedinteger": "u4",
          "signedinteger": "i4", "floatvalue": "f4", "float": "f4", "unsignedbyte": "u1"}


def plain_header(path: str) -> tuple[int, tuple[int, int], str]:
    """(data offset, shape, dtype) of a one-frame EDF file: pread + parse, size checked."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        text = os.pread(fd, 4096, 0)
        while b"}" not in text and len(text) < size:
            text += os.pread(fd, 4096, len(text))
    finally:
        os.close(fd)
    end = text.index(b"}") + 1
    end += 1 if text[end:end + 1] == b"\n" else 0
    head = {}
    for line in text[1:end].decode("ascii").split(";"):
        key, eq, value = line.partition("=")
        if eq:
            head[key.strip().lower()] = value.strip()
    shape = (int(head["dim_2"]), int(head["dim_1"]))
    dtype = _TYPES[head["datatype"].lower()]
    nbytes = shape[0] * shape[1] * int(dtype[1])
    if size < end + nbytes:
        raise ValueError(f"{path}: short file")
    return end, shape, dtype


def case_open(paths, rounds):
    t0 = time.perf_counter()
    from xrsmap_dask import imageseries

    t_import = time.perf_counter() - t0
    res, ims = C.measure(lambda: imageseries.from_files(paths), rounds)
    C.emit({**res, "import_s": t_import, "nframes": len(ims)})


def case_open_plain(paths, rounds):
    res, heads = C.measure(lambda: [plain_header(p) for p in paths], rounds)
    C.emit({**res, "nframes": len(heads)})


def case_open_fabio(paths, rounds):
    import fabio

    res, heads = C.measure(lambda: [fabio.openheader(p).header for p in paths], rounds)
    C.emit({**res, "nframes": len(heads)})


CASES = ("roi", "roi-plain", "open", "open-plain", "open-fabio")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(C.DEFAULT_DATA))
    p.add_argument("--small", action="store_true")
    p.add_argument("--rounds", type=int, default=C.ROUNDS, help="warm rounds per case")
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.small:
        mesh_dir, npt, shape = os.path.join(a.data, "mesh11"), 11, (256, 256)
        many_dir, nmany, many_shape = os.path.join(a.data, "many500"), 500, (64, 64)
    else:
        mesh_dir, npt, shape = os.path.join(a.data, "mesh41"), 41, (1024, 1024)
        many_dir, nmany, many_shape = os.path.join(a.data, "many10000"), 10_000, (256, 256)
    if a.case in ("roi", "roi-plain"):
        scan = C.ensure_mesh(mesh_dir, npt, npt, shape)
        {"roi": case_roi, "roi-plain": case_roi_plain}[a.case](scan, a.rounds)
        return 0
    if a.case:
        paths = many_files(many_dir, nmany, many_shape)
        {"open": case_open, "open-plain": case_open_plain,
         "open-fabio": case_open_fabio}[a.case](paths, a.rounds)
        return 0

    print("\n".join(C.machine_header()), flush=True)
    scan = C.ensure_mesh(mesh_dir, npt, npt, shape)
    paths = many_files(many_dir, nmany, many_shape)
    C.warm_page_cache(scan.files)
    C.warm_page_cache(paths)
    print(f"roi data: {C.edf_properties(scan.files)}; page cache: "
          f"{C.page_cache_state(scan.files)}")
    print(f"open data: {nmany} EDF files of {many_shape[0]} x {many_shape[1]} uint16, headers "
          f"512-1536 bytes; page cache: {C.page_cache_state(paths)}")
    print(f"first call + {a.rounds} warm rounds per case, each case in a fresh process; "
          "ratios by the medians", flush=True)
    extra = ["--data", a.data, "--rounds", str(a.rounds)] + (["--small"] if a.small else [])
    me = os.path.abspath(__file__)
    res = {case: C.run_case(me, case, extra) for case in CASES}
    ours, plain = res["roi"], res["roi-plain"]
    if abs(ours["checksum"] - plain["checksum"]) > 1e-6 * max(1.0, abs(plain["checksum"])):
        print(f"MISMATCH: ROI sums {ours['checksum']} != {plain['checksum']}")
        return 1
    nbytes = scan.nframes * (shape[0] // 2) * (shape[1] // 2) * 2
    roi_label = f"ROI read, {scan.nframes} frames {shape[0]}² u16, middle {shape[0] // 2}²"
    open_label = f"open {nmany} EDF files ({many_shape[0]}²), headers only"
    rows = [
        (roi_label, f"ours: to_dask(roi).sum(), threads ({ours['ntasks']} tasks, "
                    f"{nbytes / C.median_s(ours) / 2**20:.0f} MiB/s)",
         *C.timing_cells(ours), "", f"{ours['peak_mb']:.0f}"),
        (roi_label, "plain pread loop, 1 thread", *C.timing_cells(plain),
         C.ratio(plain, ours), f"{plain['peak_mb']:.0f}"),
        (open_label, "ours: imageseries.from_files", *C.timing_cells(res["open"]), "",
         f"{res['open']['peak_mb']:.0f}"),
        (open_label, "plain pread + parse loop", *C.timing_cells(res["open-plain"]),
         C.ratio(res["open-plain"], res["open"]), f"{res['open-plain']['peak_mb']:.0f}"),
        (open_label, "fabio.openheader loop", *C.timing_cells(res["open-fabio"]),
         C.ratio(res["open-fabio"], res["open"]), f"{res['open-fabio']['peak_mb']:.0f}"),
    ]
    print(C.table("bench_read: ROI reads and header-only opens (warm page cache)", rows,
                  ("benchmark", "case", *C.TIMING_HEADER, "ours faster by (median)",
                   "peak RSS MiB")))
    print(f"(ours: imports {ours['import_s']:.2f} s and the mesh's open "
          f"{ours['open_s']:.2f} s, outside the rounds)")
    print("targets: " + C.verdict("ROI read vs plain loop",
                                  C.median_s(plain) / C.median_s(ours), 1.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
