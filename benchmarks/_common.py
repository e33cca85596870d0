"""Shared benchmark helpers: cached synthetic data, one-case-per-subprocess runs, peak RSS.

Each case runs in its own Python process so its peak RSS (``ru_maxrss``) is its own.  A case
prints one JSON line ``{"seconds": ..., "peak_mb": ..., ...}`` as its last line.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "bench_data"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def drop_page_cache_hint() -> str:
    return "warm page cache (every case reads the data once before timing)"


def run_case(script: str, case: str, args: list[str]) -> dict:
    """Run ``script --case case args`` in a fresh interpreter; return its JSON result."""
    cmd = [sys.executable, script, "--case", case, *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1]
    return json.loads(last)


def emit(result: dict) -> None:
    """Print a case's result as the final JSON line (adds peak RSS)."""
    result = dict(result)
    result.setdefault("peak_mb", round(peak_rss_mb(), 1))
    print(json.dumps(result), flush=True)


def timed(func, repeat: int = 3):
    """Best wall time of ``repeat`` calls and the last return value."""
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - t0)
    return best, value


def table(title: str, rows: list[tuple], header: tuple) -> str:
    """A markdown table (what the README shows)."""
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
