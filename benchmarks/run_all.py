"""``make bench``: run every benchmark (full size) and collect their output.

Each ``bench_*.py`` prints, from one run, our figure beside a baseline measured in the same
run, the ratio and peak memory.  This runs them one after the other (run it on an otherwise
idle machine) and writes the outputs to ``benchmarks/RESULTS.md``; the README's table is
copied from there.  Pass ``--small`` for a quick smoke run of all of them.
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES = ("bench_read.py", "bench_maps.py", "bench_median.py", "bench_radial.py")


def main() -> int:
    extra = sys.argv[1:]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    parts = [f"# Benchmark results\n\n{datetime.datetime.now():%Y-%m-%d %H:%M}, "
             f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
             f"args {' '.join(extra) or '(full size)'}\n"]
    failed = 0
    for name in BENCHES:
        print(f"== {name} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.join(HERE, name), *extra],
                              capture_output=True, text=True)
        print(proc.stdout, end="")
        if proc.returncode:
            failed += 1
            print(proc.stderr, file=sys.stderr)
        parts.append(f"## {name} ({time.perf_counter() - t0:.0f} s wall, exit {proc.returncode})"
                     f"\n\n```\n{proc.stdout.strip()}\n```\n")
    with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
        f.write("\n".join(parts))
    print(f"wrote {os.path.join(HERE, 'RESULTS.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
