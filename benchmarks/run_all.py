"""``make bench``: run every benchmark (full size) and collect their output.

Each ``bench_*.py`` prints, from one run, our figure beside baselines doing the same work,
each case in a fresh process with its first call and the median and minimum of warm rounds,
ratios by the medians, peak memory, the data's properties and the page-cache state (see
``_common.py``).  This runs them one after the other -- on an otherwise idle machine: the
load average before each benchmark is printed -- and writes everything to
``benchmarks/RESULTS.md``; the README's table is copied from there.

    python benchmarks/run_all.py               # full size (writes ~7 GB of data once)
    python benchmarks/run_all.py --small       # smoke run of all of them
    python benchmarks/run_all.py --rounds 5    # more warm rounds per case
"""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common as C  # noqa: E402

BENCHES = ("bench_read.py", "bench_maps.py", "bench_cluster.py", "bench_survey.py",
           "bench_median.py", "bench_radial.py", "bench_hdf5.py", "bench_scale.py")


def main() -> int:
    extra = sys.argv[1:]
    header = C.machine_header()
    parts = [f"# Benchmark results\n\n{datetime.datetime.now():%Y-%m-%d %H:%M}, "
             f"args {' '.join(extra) or '(full size)'}\n\n```\n" + "\n".join(header)
             + "\n```\n"]
    print("\n".join(header), flush=True)
    failed = 0
    for name in BENCHES:
        print(f"== {name} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.join(HERE, name), *extra],
                              capture_output=True, text=True)
        print(proc.stdout, end="")
        if proc.returncode:
            failed += 1
            print(proc.stderr[-5000:], file=sys.stderr)
        parts.append(f"## {name} ({time.perf_counter() - t0:.0f} s wall, exit {proc.returncode})"
                     f"\n\n```\n{proc.stdout.strip()}\n```\n")
    with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
        f.write("\n".join(parts))
    print(f"wrote {os.path.join(HERE, 'RESULTS.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
