"""A survey of many small scans on a cluster: scans pipelined vs one at a time.

20 scans of 5 x 8 frames of 64 x 64 uint16 EDF (``synth``, written once), each read through
a series whose reads sleep 25 ms per frame (``_slow_series.py``: a parallel file system's
latency) with 20 frames per task, so one scan has fewer tasks than the cluster has workers.
One job spec (composite + ROI sum), run by ``jobs.run_survey(job, executor,
max_in_flight=...)`` on a ``LocalCluster`` of 4 single-threaded workers:

* ``sequential``: ``max_in_flight=1`` (one scan at a time: workers idle through each scan's
  tail and between scans);
* ``pipelined``: ``max_in_flight=None`` (the default on a cluster: the worker threads).

One process, one cluster (its start excluded): a first run of each mode, then ``--rounds``
rounds alternating the modes, each run into a fresh output; medians compared.  The outputs
of the two modes are checked equal.  Target (issue 15): pipelined >= 2x sequential.

    python benchmarks/bench_survey.py            # full run
    python benchmarks/bench_survey.py --small    # smoke run: 6 scans
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import _slow_series  # noqa: E402

NPT_Y, NPT_X, SHAPE = 5, 8, (64, 64)
LATENCY_S = 0.025
FRAMES_PER_TASK = 20
WORKERS = 4


def ensure_scans(root: str, nscans: int) -> list[str]:
    """``nscans`` synthetic scans under ``root`` and one ``.slowscan`` file per scan."""
    from xrsmap_dask import synth

    out = []
    for k in range(nscans):
        directory = os.path.join(root, f"s{k:02d}")
        if not os.path.exists(os.path.join(directory, "scan.json")):
            synth.make_scan(directory, NPT_Y, NPT_X, SHAPE, seed=k, mask=False)
        path = os.path.join(root, f"s{k:02d}.slowscan")
        _slow_series.write_slowscan(path, f"s{k:02d}/scan_*.edf", LATENCY_S)
        out.append(path)
    return out


def write_job(path: str, inputs: list[str], output: str) -> str:
    scans = "\n".join(f"  - {{name: s{k:02d}, inputs: '{p}'}}" for k, p in enumerate(inputs))
    with open(path, "w") as f:
        f.write(f"output: {output}\nsummary: {output}.csv\n"
                f"defaults: {{mesh: [{NPT_Y}, {NPT_X}], roi: [16, 16, 47, 47], binning: 4, "
                f"frames_per_chunk: {FRAMES_PER_TASK}}}\nscans:\n{scans}\n")
    return path


def run_mode(ex, inputs, workdir: str, tag: str, max_in_flight) -> tuple[float, str]:
    from xrsmap_dask.jobs import load_job, run_survey

    output = os.path.join(workdir, f"{tag}.zarr")
    job = load_job(write_job(os.path.join(workdir, f"{tag}.yaml"), inputs, output))
    t0 = time.perf_counter()
    results = run_survey(job, ex, max_in_flight=max_in_flight)
    seconds = time.perf_counter() - t0
    bad = [r for r in results if r.status != "done"]
    if bad:
        raise SystemExit(f"{tag}: scans not done: {bad}")
    return seconds, output


def same_outputs(a: str, b: str, nscans: int) -> bool:
    import numpy as np
    import zarr

    for k in range(nscans):
        ga = zarr.open_group(os.path.join(a, f"s{k:02d}"), mode="r")
        gb = zarr.open_group(os.path.join(b, f"s{k:02d}"), mode="r")
        for name in ("composite", "roi_sum"):
            if not np.array_equal(ga[name][...], gb[name][...], equal_nan=True):
                return False
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(C.DEFAULT_DATA))
    p.add_argument("--small", action="store_true", help="smoke run: 6 scans")
    p.add_argument("--rounds", type=int, default=C.ROUNDS, help="rounds per mode")
    a = p.parse_args()
    nscans = 6 if a.small else 20
    print("\n".join(C.machine_header()), flush=True)
    inputs = ensure_scans(os.path.join(a.data, "survey"), nscans)
    _slow_series.register()
    from xrsmap_dask.cluster import ExecutionSpec, execution

    print(f"{nscans} scans of {NPT_Y} x {NPT_X} frames of {SHAPE[0]} x {SHAPE[1]} uint16, "
          f"reads sleeping {LATENCY_S * 1e3:.0f} ms per frame, {FRAMES_PER_TASK} frames per "
          f"task; LocalCluster of {WORKERS} x 1-thread workers (start excluded); first run "
          f"+ {a.rounds} rounds per mode, alternating", flush=True)
    times: dict[str, list[float]] = {"sequential": [], "pipelined": []}
    first: dict[str, float] = {}
    modes = {"sequential": 1, "pipelined": None}
    spec = ExecutionSpec(kind="local", n_workers=WORKERS, threads_per_worker=1,
                         dashboard=False)
    with tempfile.TemporaryDirectory(dir=a.data) as work, execution(spec, quiet=True) as ex:
        outputs = {}
        for r in range(a.rounds + 1):
            for mode, n in modes.items():
                secs, outputs[mode] = run_mode(ex, inputs, work, f"{mode}{r}", n)
                if r == 0:
                    first[mode] = secs
                else:
                    times[mode].append(secs)
        equal = same_outputs(outputs["sequential"], outputs["pipelined"], nscans)
    rows = []
    for mode in modes:
        res = {"first_s": first[mode], "rounds_s": times[mode]}
        rows.append((mode, *C.timing_cells(res),
                     "" if mode == "sequential" else
                     f"{statistics.median(times['sequential']) / C.median_s(res):.2f}x"))
    print(C.table(f"survey of {nscans} scans, {WORKERS} workers, injected read latency", rows,
                  ("mode", *C.TIMING_HEADER, "pipelined faster by (median)")))
    speed = statistics.median(times["sequential"]) / statistics.median(times["pipelined"])
    print(f"outputs equal: {equal}; targets: " + C.verdict("pipelined vs sequential", speed, 2))
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
