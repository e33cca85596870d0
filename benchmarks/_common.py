"""Shared benchmark helpers: the machine header, rounds, cases in fresh processes, peak RSS.

How every benchmark measures (what the README's table rests on):

* each case (ours or a baseline) runs in its own fresh Python process, so its peak RSS
  (``ru_maxrss``) is its own and its first call is a real first call;
* in that process the imports are timed apart (``import_s``), then the case's work runs
  ``1 + rounds`` times: the first call (``first_s``: fresh process, cold code paths, thread
  pools starting) and ``rounds`` warm calls; we print the median and the minimum of the warm
  calls and compare cases **by the median** (ratios ``baseline median / ours median``);
* inputs are read once before timing (warm page cache), and :func:`page_cache_state` reports
  how much of them the kernel holds (``fincore``), so "warm" is a measurement, not a claim;
* the machine header names the CPU, its SIMD features (AVX2 / AVX-512 decide which numpy
  sort kernels run), the load average before the run, and ``OPENBLAS_CORETYPE``/
  ``OPENBLAS_L2_SIZE`` (set on some machines; they slow a current numpy's BLAS, not the
  sorting or copying measured here).

A case prints one JSON line as its last line; :func:`run_case` parses it.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "bench_data"
#: warm rounds per case unless ``--rounds`` says otherwise
ROUNDS = 3


# -- the machine ----------------------------------------------------------------------------
def cpu_info() -> dict:
    """Model name and the SIMD flags that matter here, from /proc/cpuinfo."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vbmi2", "avx512_bitalg")
    return {"model": model, "simd": [f for f in wanted if f in flags]}


def numpy_simd() -> str:
    """numpy's dispatch: which SIMD targets it found on this CPU (e.g. X86_V3 = AVX2)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        return "unknown"
    found = [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
    missing = [t for t in __cpu_dispatch__ if not __cpu_features__.get(t)]
    return f"found {' '.join(found) or '-'}; not found {' '.join(missing) or '-'}"


def machine_header() -> list[str]:
    """Lines describing the machine and the environment of this run."""
    import numpy

    cpu = cpu_info()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    env = ", ".join(f"{k}={os.environ.get(k, '(unset)')}"
                    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"))
    versions = [f"Python {platform.python_version()}", f"numpy {numpy.__version__}"]
    for mod in ("dask", "distributed", "fabio"):
        try:
            m = __import__(mod)
            versions.append(f"{mod} {getattr(m, '__version__', None) or getattr(m, 'version', '?')}")
        except ImportError:
            pass
    return [f"machine: {os.cpu_count()} cores, {cpu['model']}, {mem:.0f} GiB; "
            f"CPU SIMD flags: {' '.join(cpu['simd']) or 'none of avx2/avx512'}",
            f"numpy SIMD dispatch: {numpy_simd()}",
            f"{'; '.join(versions)}", f"environment: {env}",
            f"load average before the run (1, 5, 15 min): {load}"]


def page_cache_state(paths) -> str:
    """How much of ``paths`` is in the page cache (``fincore``), e.g. ``100% of 1600 MiB``."""
    paths = [str(p) for p in paths]
    total = sum(os.path.getsize(p) for p in paths)
    if not shutil.which("fincore") or not paths:
        return f"read once before timing ({total / 2**20:.0f} MiB; fincore not available)"
    resident = 0
    for i in range(0, len(paths), 500):
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES",
                              *paths[i:i + 500]], capture_output=True, text=True)
        resident += sum(int(v) for v in out.stdout.split() if v.isdigit())
    return f"{min(100.0, 100 * resident / max(1, total)):.0f}% of {total / 2**20:.0f} MiB resident"


def warm_page_cache(paths) -> None:
    """Read every file once (the cases then find them in the page cache)."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def ensure_mesh(directory, npt_y: int, npt_x: int, shape, n_background: int = 0):
    """A synthetic scan of real EDF files, written once and reused (described by scan.json)."""
    from xrsmap_dask import synth

    directory = Path(directory)
    if (directory / "scan.json").exists():
        scan = synth.SynthScan.load(directory)
        if (scan.npt_y, scan.npt_x, tuple(scan.frame_shape)) == (npt_y, npt_x, tuple(shape)) \
                and all(os.path.exists(f) for f in scan.files):
            return scan
    print(f"writing {npt_y * npt_x} EDF frames of {shape[0]} x {shape[1]} to {directory} "
          "(once; reused afterwards)", flush=True)
    return synth.make_scan(directory, npt_y, npt_x, tuple(shape), n_background=n_background,
                           progress=True)


def edf_properties(paths) -> str:
    """Shape, dtype and value range of EDF frames (every file read through our parser)."""
    import numpy as np

    from xrsmap_dask.io.edf import read_edf_headers

    lo, hi, info = None, None, None
    for p in paths:
        info = read_edf_headers(str(p))[0]
        data = np.fromfile(p, dtype=info.dtype, count=info.shape[0] * info.shape[1],
                           offset=info.offset)
        lo = data.min() if lo is None else min(lo, data.min())
        hi = data.max() if hi is None else max(hi, data.max())
    return (f"{len(paths)} frames of {info.shape[0]} x {info.shape[1]} {info.dtype.name}, "
            f"values {lo}..{hi}")


# -- measuring inside a case process ----------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(func, rounds: int = ROUNDS) -> tuple[dict, object]:
    """Time ``func()``: the first call, then ``rounds`` warm calls.

    Returns ``({"first_s": ..., "rounds_s": [...]}, last value)``.
    """
    t0 = time.perf_counter()
    value = func()
    first = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        value = func()
        times.append(time.perf_counter() - t0)
    return {"first_s": first, "rounds_s": times}, value


def emit(result: dict) -> None:
    """Print a case's result as the final JSON line (adds peak RSS)."""
    result = dict(result)
    result.setdefault("peak_mb", round(peak_rss_mb(), 1))
    print(json.dumps(result), flush=True)


# -- the orchestrating process --------------------------------------------------------------
def run_case(script: str, case: str, args: list[str], timeout: float | None = None) -> dict:
    """Run ``script --case case args`` in a fresh interpreter; return its JSON result
    (with ``import_s`` measured from the process start when the case reports ``t_start``)."""
    cmd = [sys.executable, script, "--case", case, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        raise SystemExit(f"case {case} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_s(res: dict) -> float:
    """Median of a case's warm rounds (the first call when there are none)."""
    return statistics.median(res["rounds_s"]) if res["rounds_s"] else res["first_s"]


def min_s(res: dict) -> float:
    return min(res["rounds_s"]) if res["rounds_s"] else res["first_s"]


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def timing_cells(res: dict) -> list[str]:
    """``median``, ``min``, ``first call`` cells of a case (seconds)."""
    return [fmt_s(median_s(res)), fmt_s(min_s(res)), fmt_s(res["first_s"])]


def ratio(base: dict, ours: dict) -> str:
    """How many times faster ours is than ``base``, by the medians of the warm rounds."""
    return f"{median_s(base) / median_s(ours):.2f}x"


def table(title: str, rows: list[tuple], header: tuple) -> str:
    """A markdown table (what the README shows)."""
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


TIMING_HEADER = ("median s", "min s", "first call s")


def verdict(name: str, value: float, target: float, higher_better: bool = True) -> str:
    ok = value >= target if higher_better else value <= target
    sign = ">=" if higher_better else "<="
    return f"{name} {value:.2f} (target {sign} {target:g}: {'OK' if ok else 'MISSED'})"
