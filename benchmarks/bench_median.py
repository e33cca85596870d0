"""Exact pixel-wise median of a stack of EDF frames: ours vs numpy (two forms) vs dask.

    python benchmarks/bench_median.py [--data DIR] [--small] [--rounds N] [--budget MiB]

Two data sets, each 200 frames of 2048 x 2048 uint16 EDF files written once under
``--data`` (default ``bench_data/``) and reused: ``synth`` (:func:`xrsmap_dask.synth.make_scan`:
a flat background, rings and a spot with Poisson noise; values in a narrow band) and
``wide`` (uniform over the whole uint16 range, 0..65535).  ``--small``: 50 frames of
512 x 512.  The data's shape, dtype and value range and the page-cache state are printed.

Cases, each in its own fresh process (peak RSS its own; first call and warm rounds, see
``_common.py``):

* ``ours``: ``xrsmap_dask.stats.median(files, memory_budget=512 MiB)`` on the threaded
  scheduler, from the file list (every header parsed and every pixel read, in each round);
* ``numpy``: ``np.median(stack, axis=0)`` on the stack already in memory (loading it is
  reported apart, not counted);
* ``numpy-blocked``: single-threaded numpy in its cache-friendly form: the in-memory stack
  cut into pixel-major bands (``BLOCK_PIXELS`` pixels x all frames, a C-contiguous copy of
  the transpose), ``np.median(band, axis=1)`` on each;
* ``dask``: ``dask.array.median`` of ``ims.to_dask()`` (frame chunks of ~32 MiB) on the
  threaded scheduler, reads included.

Results are checked: ours and numpy-blocked equal ``np.median`` exactly, dask's close.
Targets (issue 15): ours >= 3x numpy, >= 2x numpy-blocked, >= 1.5x dask by the medians of
the rounds, on both data sets; peak RSS <= 1 GiB.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

#: pixels per band of the blocked numpy baseline (x 200 frames x 2 bytes = 1.6 MB)
BLOCK_PIXELS = 4096
KINDS = ("synth", "wide")


# -- data ---------------------------------------------------------------------------------
def data_dir(root: str, kind: str, nframes: int, shape) -> str:
    tag = "" if kind == "synth" else "wide_"
    return os.path.join(root, f"median_{tag}{nframes}x{shape[0]}x{shape[1]}")


def ensure_data(directory: str, kind: str, nframes: int, shape) -> list[str]:
    """The EDF files of one data set (written unless already there)."""
    files = sorted(glob.glob(os.path.join(directory, "scan_*.edf")))
    info = os.path.join(directory, "scan.json")
    if os.path.exists(info):
        with open(info) as f:
            d = json.load(f)
        if len(files) == d["npt_y"] * d["npt_x"] == nframes and tuple(d["frame_shape"]) == shape:
            return files
        raise SystemExit(f"{directory} holds another data set; pass another --data")
    from xrsmap_dask import synth

    print(f"writing {nframes} {kind} frames of {shape[0]} x {shape[1]} uint16 EDF to "
          f"{directory} (once) ...", flush=True)
    npt_x = 20 if nframes % 20 == 0 else nframes
    if kind == "synth":
        synth.make_scan(directory, npt_y=nframes // npt_x, npt_x=npt_x, frame_shape=shape,
                        mask=False, progress=True)
    else:
        import numpy as np

        os.makedirs(directory, exist_ok=True)
        rng = np.random.default_rng(15)
        for i in range(nframes):
            frame = rng.integers(0, 65536, shape, dtype=np.uint16)
            frame[0, 0], frame[-1, -1] = 0, 65535  # the whole range, for sure
            synth.write_edf(os.path.join(directory, f"scan_{i:05d}.edf"), frame)
        with open(info, "w") as f:
            json.dump({"npt_y": nframes // npt_x, "npt_x": npt_x, "frame_shape": list(shape),
                       "kind": kind}, f)
    return sorted(glob.glob(os.path.join(directory, "scan_*.edf")))


# -- cases (each in its own process) ---------------------------------------------------------
def _load_stack(files):
    from xrsmap_dask import imageseries

    ims = imageseries.from_files(files)
    return ims.read_block(0, len(ims))


def blocked_median(stack):
    """Single-threaded numpy, cache-blocked: pixel-major bands, ``np.median(axis=1)``."""
    import numpy as np

    n = stack.shape[0]
    flat = stack.reshape(n, -1)
    out = np.empty(flat.shape[1])
    for j0 in range(0, flat.shape[1], BLOCK_PIXELS):
        band = np.ascontiguousarray(flat[:, j0:j0 + BLOCK_PIXELS].T)
        out[j0:j0 + BLOCK_PIXELS] = np.median(band, axis=1)
    return out.reshape(stack.shape[1:])


def run_child(case: str, files: list[str], budget: int, rounds: int, out: str) -> None:
    t0 = time.perf_counter()
    import dask.array as da
    import numpy as np

    from xrsmap_dask import imageseries, stats

    extra = {"import_s": time.perf_counter() - t0}
    if case == "ours":
        res, value = C.measure(
            lambda: stats.median(files, memory_budget=budget).compute(scheduler="threads"),
            rounds)
    elif case in ("numpy", "numpy-blocked"):
        t0 = time.perf_counter()
        stack = _load_stack(files)
        extra["load_s"] = time.perf_counter() - t0
        func = (lambda: np.median(stack, axis=0)) if case == "numpy" else \
            (lambda: blocked_median(stack))
        res, value = C.measure(func, rounds)
    elif case == "dask":
        def run():
            ims = imageseries.from_files(files)
            return da.median(ims.to_dask(), axis=0).compute(scheduler="threads")

        res, value = C.measure(run, rounds)
    else:
        raise SystemExit(f"unknown case {case}")
    np.save(out, value)
    C.emit({**res, **extra})


CASES = ("ours", "numpy", "numpy-blocked", "dask")


def run_kind(me: str, kind: str, files: list[str], args: list[str]) -> tuple[list, dict]:
    """Run every case on one data set; table rows and the ratios of ours."""
    import numpy as np

    C.warm_page_cache(files)
    print(f"[{kind}] data: {C.edf_properties(files)}; page cache: "
          f"{C.page_cache_state(files)}", flush=True)
    res, arrays = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            out = os.path.join(tmp, f"{case}.npy")
            res[case] = C.run_case(me, case, args + ["--files-of", kind, "--out", out])
            arrays[case] = np.load(out)
            print(f"  [{kind}] {case}: median {C.median_s(res[case]):.2f} s "
                  f"(first {res[case]['first_s']:.2f} s)", flush=True)
    ref = arrays["numpy"]
    checks = {"ours == np.median": np.array_equal(arrays["ours"], ref),
              "blocked == np.median": np.array_equal(arrays["numpy-blocked"], ref),
              "dask close": np.allclose(arrays["dask"], ref)}
    labels = {"ours": "ours: stats.median (from files)",
              "numpy": "np.median(stack, axis=0) (in memory)",
              "numpy-blocked": "numpy blocked pixel-major, 1 thread (in memory)",
              "dask": "dask.array.median (from files)"}
    rows = []
    for case in CASES:
        r = res[case]
        rows.append((kind, labels[case], *C.timing_cells(r),
                     "" if case == "ours" else C.ratio(r, res["ours"]), f"{r['peak_mb']:.0f}"))
    ratios = {case: C.median_s(res[case]) / C.median_s(res["ours"]) for case in CASES[1:]}
    ratios["peak_gib"] = res["ours"]["peak_mb"] / 1024
    ratios["checks"] = checks
    ratios["load_s"] = res["numpy"]["load_s"]
    return rows, ratios


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(C.DEFAULT_DATA))
    p.add_argument("--small", action="store_true", help="smoke run: 50 frames of 512 x 512")
    p.add_argument("--rounds", type=int, default=C.ROUNDS, help="warm rounds per case")
    p.add_argument("--budget", type=float, default=512, help="memory_budget of ours, MiB")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--files-of", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    nframes, shape = (50, (512, 512)) if a.small else (200, (2048, 2048))
    budget = int(a.budget * 2**20)
    dirs = {k: data_dir(a.data, k, nframes, shape) for k in KINDS}
    if a.case:
        files = sorted(glob.glob(os.path.join(dirs[a.files_of], "scan_*.edf")))
        run_child(a.case, files, budget, a.rounds, a.out)
        return 0
    print("\n".join(C.machine_header()))
    print(f"median over {nframes} frames of {shape[0]} x {shape[1]} uint16; ours with "
          f"memory_budget {a.budget:.0f} MiB; first call + {a.rounds} warm rounds per case, "
          "each case in a fresh process; ratios by the medians", flush=True)
    me = os.path.abspath(__file__)
    args = ["--data", a.data, "--rounds", str(a.rounds), "--budget", str(a.budget)] + \
        (["--small"] if a.small else [])
    rows, summary = [], {}
    for kind in a.kinds:
        files = ensure_data(dirs[kind], kind, nframes, shape)
        kind_rows, summary[kind] = run_kind(me, kind, files, args)
        rows += kind_rows
    print(C.table(f"exact median, {nframes} frames of {shape[0]}x{shape[1]} uint16 EDF",
                  rows, ("data", "case", *C.TIMING_HEADER, "ours faster by (median)",
                         "peak RSS MiB")))
    ok = True
    for kind, s in summary.items():
        print(f"[{kind}] " + "; ".join(f"{k}: {v}" for k, v in s["checks"].items())
              + f"; numpy's stack load (not counted) {s['load_s']:.2f} s")
        print(f"[{kind}] targets: " + "; ".join([
            C.verdict("vs numpy", s["numpy"], 3), C.verdict("vs numpy-blocked",
                                                            s["numpy-blocked"], 2),
            C.verdict("vs dask", s["dask"], 1.5),
            C.verdict("peak RSS GiB", s["peak_gib"], 1, higher_better=False)]))
        ok &= all(s["checks"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
