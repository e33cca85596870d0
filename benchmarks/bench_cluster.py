"""The composite + sum map on a distributed cluster vs the threaded scheduler (same job).

The 41 x 41 mesh of 1024 x 1024 uint16 EDF frames of ``bench_maps.py`` (ROI the middle
512 x 512, binning 16), ``Mapper.composite_map(files, roi, binning, scheduler=ex.scheduler)``
inside ``xrsmap_dask.cluster.execution(spec)``, for three specs:

* ``threads``: dask's threaded scheduler, 2 threads (the reference, 1.00x);
* ``local-2x1``: a ``LocalCluster`` of 2 worker processes of 1 thread;
* ``local-1x2``: a ``LocalCluster`` of 1 worker process of 2 threads.

Steady state: each case runs in its own fresh process, which starts its cluster (timed
apart, not counted), computes once (the first call: workers import their modules) and then
``--rounds`` more times; we compare medians.  For the clusters one extra round is recorded
with distributed's task stream, summarised as busy time per task kind, transfer time and the
share of the workers' thread time left idle (wall x threads - busy): where the time goes.
``--report DIR`` also writes distributed's ``performance_report`` HTML of that round.

Targets (issue 15): local-2x1 >= 0.8x threads, local-1x2 >= 0.9x threads (by the medians).

    python benchmarks/bench_cluster.py            # full run (the mesh of bench_maps.py)
    python benchmarks/bench_cluster.py --small    # smoke run: 11 x 11 of 256 x 256
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_maps import BINNING, _roi as _maps_roi  # noqa: E402  (the same job)

CASES = {"threads": dict(kind="threads", n_workers=2),
         "local-2x1": dict(kind="local", n_workers=2, threads_per_worker=1, dashboard=False),
         "local-1x2": dict(kind="local", n_workers=1, threads_per_worker=2, dashboard=False)}
TARGETS = {"local-2x1": 0.8, "local-1x2": 0.9}


def _roi(shape):
    return _maps_roi(shape)[0]


def task_stream_summary(stream: list[dict], wall: float, threads: int) -> dict:
    """Busy seconds per task prefix, transfer seconds, task count and the idle share of the
    workers' threads over ``wall`` seconds."""
    busy: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    transfer = 0.0
    for t in stream:
        prefix = str(t["key"][0] if isinstance(t["key"], tuple) else t["key"])
        prefix = prefix.rsplit("-", 1)[0] if "-" in prefix else prefix
        for part in t.get("startstops", ()):
            span = part["stop"] - part["start"]
            if part["action"] == "compute":
                busy[prefix] += span
                count[prefix] += 1
            elif part["action"] == "transfer":
                transfer += span
    total = sum(busy.values())
    return {"busy_s": dict(busy), "tasks": dict(count), "transfer_s": transfer,
            "idle_share": max(0.0, 1 - total / max(1e-9, wall * threads))}


def run_child(case: str, scan, rounds: int, report: str | None) -> None:
    t0 = time.perf_counter()
    import numpy as np

    from xrsmap_dask.cluster import ExecutionSpec, execution
    from xrsmap_dask.mapper import Mapper

    t_import = time.perf_counter() - t0
    spec = ExecutionSpec(**CASES[case])
    roi = _roi(scan.frame_shape)
    t0 = time.perf_counter()
    with execution(spec, quiet=True) as ex:
        t_start = time.perf_counter() - t0
        mapper = Mapper(scan.npt_x, scan.npt_y, scheduler=ex.scheduler)

        def run():
            return mapper.composite_map(scan.files, roi=roi, binning=BINNING)

        res, (comp, sums) = C.measure(run, rounds)
        extra = cpu_round(run)
        if ex.client is not None:
            extra.update(profile_round(ex.client, run, report, case))
    C.emit({**res, **extra, **graph_payload(mapper.last_maps), "import_s": t_import,
            "start_s": t_start, "comp_sum": float(np.sum(comp, dtype=np.float64)),
            "sum_sum": float(np.sum(sums))})


def graph_payload(maps) -> dict:
    """What the client sends the scheduler for the maps: tasks, pickled bytes, and the
    out-of-band buffers (each small numpy array in a task becomes one protocol frame)."""
    from distributed.protocol.pickle import dumps

    graph = {}
    for arr in (maps.composite, maps.roi_sum):
        if arr is not None:
            graph.update(dict(arr.__dask_graph__()))
    buffers: list = []
    t0 = time.perf_counter()
    body = dumps(graph, buffer_callback=buffers.append)
    return {"ntasks_graph": len(graph), "graph_bytes": len(body),
            "graph_buffers": len(buffers), "graph_pickle_s": time.perf_counter() - t0}


def cpu_round(run) -> dict:
    """CPU seconds one more round costs this process (client, and the scheduler of a
    cluster we start, which runs in it) and its children (the workers): a view of the
    overhead that the machine's load distorts less than wall time."""
    import psutil

    me = psutil.Process()

    def cpu():
        own = sum(me.cpu_times()[:2])
        kids = 0.0
        for child in me.children(recursive=True):
            try:
                kids += sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return own, kids

    own0, kids0 = cpu()
    t0 = time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    own1, kids1 = cpu()
    return {"cpu_wall_s": wall, "cpu_client_s": own1 - own0, "cpu_workers_s": kids1 - kids0}


def profile_round(client, run, report: str | None, case: str) -> dict:
    """One more round under distributed's task stream (and performance report)."""
    import contextlib

    from distributed import get_task_stream, performance_report

    threads = sum(client.nthreads().values())
    ctx = performance_report(filename=os.path.join(report, f"{case}.html")) if report \
        else contextlib.nullcontext()
    with ctx, get_task_stream(client) as ts:
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
    return {"profile": task_stream_summary(ts.data, wall, threads), "profile_wall_s": wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--small", action="store_true", help="smoke run: 11 x 11 of 256 x 256")
    p.add_argument("--rounds", type=int, default=C.ROUNDS, help="warm rounds per case")
    p.add_argument("--report", help="directory for distributed's performance reports")
    p.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    a = p.parse_args()
    npt, shape = (11, (256, 256)) if a.small else (41, (1024, 1024))
    data = a.data or str(C.DEFAULT_DATA / ("mesh11" if a.small else "mesh41"))
    if a.case:
        run_child(a.case, C.ensure_mesh(data, npt, npt, shape), a.rounds, a.report)
        return 0
    print("\n".join(C.machine_header()), flush=True)
    scan = C.ensure_mesh(data, npt, npt, shape)
    C.warm_page_cache(scan.files)
    print(f"data: {C.edf_properties(scan.files)} ({npt} x {npt} mesh); page cache: "
          f"{C.page_cache_state(scan.files)}")
    print(f"job: Mapper.composite_map, ROI {_roi(shape)} (inclusive), binning {BINNING}; "
          f"cluster start excluded; first call + {a.rounds} warm rounds per case, each case "
          "in a fresh process; ratios by the medians", flush=True)
    if a.report:
        os.makedirs(a.report, exist_ok=True)
    args = ["--data", data, "--rounds", str(a.rounds)] + (["--small"] if a.small else []) + \
        (["--report", a.report] if a.report else [])
    res = {case: C.run_case(os.path.abspath(__file__), case, args) for case in CASES}
    ref = res["threads"]
    for case, r in res.items():
        if abs(r["comp_sum"] - ref["comp_sum"]) > 1e-6 * abs(ref["comp_sum"]) or \
                abs(r["sum_sum"] - ref["sum_sum"]) > 1e-9 * abs(ref["sum_sum"]):
            print(f"MISMATCH: {case} maps differ from the threaded run")
            return 1
    rows = []
    for case, r in res.items():
        speed = C.median_s(ref) / C.median_s(r)
        rows.append((case, *C.timing_cells(r), f"{speed:.2f}x",
                     f"{r['start_s']:.1f}" if case != "threads" else "-", f"{r['peak_mb']:.0f}"))
    print(C.table(f"composite + sum map on a cluster, {npt}x{npt} mesh of {shape[0]}^2 frames",
                  rows, ("scheduler", *C.TIMING_HEADER, "speed vs threads (median)",
                         "cluster start s", "client peak RSS MiB")))
    for case, r in res.items():
        print(f"[{case}] CPU of one round ({r['cpu_wall_s']:.2f} s wall): this process "
              f"(client{' + scheduler' if case != 'threads' else ''}) {r['cpu_client_s']:.2f} s, "
              f"worker processes {r['cpu_workers_s']:.2f} s; graph {r['ntasks_graph']} tasks, "
              f"{r['graph_bytes'] / 1024:.0f} KiB pickled + {r['graph_buffers']} out-of-band "
              f"buffers ({1e3 * r['graph_pickle_s']:.0f} ms)")
        prof = r.get("profile")
        if prof:
            busy = ", ".join(f"{k} {v:.2f} s / {prof['tasks'][k]}"
                             for k, v in sorted(prof["busy_s"].items(), key=lambda kv: -kv[1]))
            print(f"[{case}] profiled round {r['profile_wall_s']:.2f} s: busy (s / tasks): "
                  f"{busy}; transfers {prof['transfer_s']:.2f} s; idle share of worker "
                  f"threads {100 * prof['idle_share']:.0f}%")
    print("targets: " + "; ".join(
        C.verdict(f"{case} vs threads", C.median_s(ref) / C.median_s(res[case]), target)
        for case, target in TARGETS.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
