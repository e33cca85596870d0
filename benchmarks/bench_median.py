"""Benchmark: exact pixel-wise median of a stack of EDF frames, ours vs numpy vs dask.

    python benchmarks/bench_median.py [--data DIR] [--small] [--budget MiB]

Full run: 200 frames of 2048 x 2048 uint16 EDF files (written once with
:mod:`xrsmap_dask.synth` into ``--data``/``median_200x2048x2048``, ``--data`` defaulting to
``bench_data`` at the repository root; reused when present).  ``--small``: 50
frames of 512 x 512 (a smoke run); ``--frames``/``--shape`` for other sizes (their own data
directory by default).

Cases, each in its own subprocess so that its peak RSS is its own:

* ``ours``: ``xrsmap_dask.stats.median(files, memory_budget=...)`` computed on the threaded
  scheduler (time includes opening the files = parsing every header, and all reads);
* ``numpy``: ``np.median(stack, axis=0)`` on the stack already in memory (the time is the
  median alone; loading the stack is reported beside it);
* ``dask``: ``dask.array.median`` of the frame-chunked stack (``ims.to_dask()``, 32 MiB
  blocks of whole frames) on the threaded scheduler (includes the reads).

Files are read once before the cases so every case finds them in the page cache.  Peak RSS
is the largest of the child's ``ru_maxrss`` and a 2 ms RSS poll.  Results are checked equal
(ours vs numpy exactly).  Targets: ours >= 3x numpy, >= 1.5x dask, peak RSS <= 1 GB.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "bench_data")
_CHILD = r"""
import gc, glob, json, resource, sys, threading, time
import numpy as np, psutil
case, directory, budget, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
proc = psutil.Process()
peak = [proc.memory_info().rss]
maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
done = threading.Event()

def poll():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.002)

threading.Thread(target=poll, daemon=True).start()
import dask, dask.array as da
from xrsmap_dask import imageseries, stats
files = sorted(glob.glob(directory + "/scan_*.edf"))
# one-time start-up of dask's threaded scheduler, not part of any case's work
da.zeros(4, chunks=2).sum().compute(scheduler="threads")
extra = {}
t0 = time.perf_counter()
if case == "ours":
    res = stats.median(files, memory_budget=budget).compute(scheduler="threads")
    seconds = time.perf_counter() - t0
elif case == "numpy":
    ims = imageseries.from_files(files)
    stack = ims.read_block(0, len(ims))
    extra["load_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = np.median(stack, axis=0)
    seconds = time.perf_counter() - t0
elif case == "dask":
    ims = imageseries.from_files(files)
    res = da.median(ims.to_dask(), axis=0).compute(scheduler="threads")
    seconds = time.perf_counter() - t0
else:
    raise SystemExit(f"unknown case {case}")
done.set()
maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
np.save(out, res)
print(json.dumps(dict(seconds=seconds, peak=max(peak[0], maxrss1 if maxrss1 > maxrss0 else 0),
                      **extra)))
"""


def ensure_data(directory: str, nframes: int, shape: tuple[int, int]) -> list[str]:
    """The EDF files of the benchmark (written with synth unless already there)."""
    directory = os.path.abspath(directory)
    info = os.path.join(directory, "scan.json")
    files = sorted(glob.glob(os.path.join(directory, "scan_*.edf")))
    if os.path.exists(info):
        with open(info) as f:
            d = json.load(f)
        if len(files) == d["npt_y"] * d["npt_x"] == nframes and tuple(d["frame_shape"]) == shape:
            return files
        raise SystemExit(f"{directory} holds another data set ({len(files)} frames of "
                         f"{d['frame_shape']}); pass another --data")
    from xrsmap_dask import synth

    print(f"writing {nframes} frames of {shape[0]} x {shape[1]} uint16 EDF to {directory} ...",
          flush=True)
    npt_x = 20 if nframes % 20 == 0 else nframes
    synth.make_scan(directory, npt_y=nframes // npt_x, npt_x=npt_x, frame_shape=shape,
                    mask=False, progress=True)
    return sorted(glob.glob(os.path.join(directory, "scan_*.edf")))


def warm_page_cache(files: list[str]) -> None:
    for p in files:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def run_case(case: str, directory: str, budget: int, out: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, case, directory, str(budget), out],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="data directory (default: bench_data/ at the repository root); the "
                        "files go to its subdirectory median_<frames>x<rows>x<cols>")
    p.add_argument("--small", action="store_true", help="smoke run: 50 frames of 512 x 512")
    p.add_argument("--budget", type=float, default=512,
                   help="memory_budget of ours, MiB (default 512)")
    p.add_argument("--frames", type=int, help="override the number of frames")
    p.add_argument("--shape", type=int, nargs=2, metavar=("ROWS", "COLS"),
                   help="override the frame shape")
    a = p.parse_args(argv)
    nframes, shape = (50, (512, 512)) if a.small else (200, (2048, 2048))
    nframes = a.frames or nframes
    shape = tuple(a.shape) if a.shape else shape
    # one subdirectory per data set, beside the other benchmarks' meshes
    directory = os.path.join(a.data, f"median_{nframes}x{shape[0]}x{shape[1]}")
    files = ensure_data(directory, nframes, shape)
    warm_page_cache(files)
    budget = int(a.budget * 2**20)
    stack_mb = nframes * shape[0] * shape[1] * 2 / 2**20
    print(f"median of {nframes} frames of {shape[0]} x {shape[1]} uint16 EDF "
          f"({stack_mb:.0f} MiB), {os.cpu_count()} CPUs, budget {a.budget:.0f} MiB")
    import numpy as np

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {}
        for case in ("ours", "numpy", "dask"):
            out = os.path.join(tmp, f"{case}.npy")
            results[case] = run_case(case, os.path.abspath(directory), budget, out)
            arrays[case] = np.load(out)
        equal = np.array_equal(arrays["ours"], arrays["numpy"])
        equal_dask = np.allclose(arrays["ours"], arrays["dask"])
    ours = results["ours"]["seconds"]
    print(f"{'case':42s} {'time (s)':>9s} {'peak RSS (MiB)':>15s} {'ours faster by':>15s}")
    rows = [("ours: stats.median (files, reads incl.)", "ours"),
            ("np.median(stack, axis=0) (in memory)", "numpy"),
            ("dask.array.median (frame chunks)", "dask")]
    for label, case in rows:
        r = results[case]
        ratio = "" if case == "ours" else f"{r['seconds'] / ours:14.2f}x"
        print(f"{label:42s} {r['seconds']:9.2f} {r['peak'] / 2**20:15.0f} {ratio:>15s}")
    print(f"  (numpy: loading the stack took {results['numpy']['load_seconds']:.2f} s more)")
    r_np = results["numpy"]["seconds"] / ours
    r_da = results["dask"]["seconds"] / ours
    peak = results["ours"]["peak"] / 2**30
    print(f"ours equal to np.median: {equal}; close to dask's: {equal_dask}")
    print(f"targets: >= 3x numpy: {r_np:.2f}x {'OK' if r_np >= 3 else 'MISSED'}; "
          f">= 1.5x dask: {r_da:.2f}x {'OK' if r_da >= 1.5 else 'MISSED'}; "
          f"peak RSS <= 1 GiB: {peak:.2f} GiB {'OK' if peak <= 1 else 'MISSED'}")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
