"""Scale on paper: the cost model of a survey of 10^6 frames x 8 MB, from inputs measured here.

Measured on this machine (each printed with how):

* ``sched_cpu_per_task``: CPU seconds the client + scheduler process spends per task (a
  LocalCluster of 2 workers runs a graph of ``N_TASKS`` no-op tasks, results left on the
  workers; the scheduler runs in this process, with the graph's packing and submission),
  and ``worker_cpu_per_task`` in the worker processes;
* ``open_s_per_file``: opening EDF files, headers only (``imageseries.from_files`` on the
  mesh's files, page cache warm);
* ``graph_bytes_per_frame``: pickled bytes of the map graph's tasks per frame (what the
  client sends the scheduler: file names and offsets), and ``result_bytes_per_frame``
  (what workers write per frame: the binned composite tile + the ROI sum);
* ``reduce_bytes_per_s_per_core``: read + reduce rate of one thread (threaded scheduler,
  one worker) on the composite + sum job of ``bench_maps.py``, bytes of the read box/s.

The model (printed): tasks = frames / frames per task (a task reads ``TASK_BYTES``); the
scheduler's CPU = tasks x its cost per task; bytes through the scheduler = the graph;
bytes written = results; the read time at an assumed file-system bandwidth; the compute
time on an assumed number of cores; the header reads at an assumed metadata latency of a
parallel file system (this machine's local disk is no measure of that).  The limit is the
largest of these times.  Assumptions are printed beside the measured inputs.

    python benchmarks/bench_scale.py [--small]
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_maps import BINNING, _roi  # noqa: E402  (the same job)

N_TASKS = 4000
SURVEY_FRAMES = 10**6
FRAME_BYTES = 8 * 10**6
TASK_BYTES = 64 * 2**20             # what one read task reads (the upper auto target)
ASSUMED = {"fs_bytes_per_s": 10e9,   # aggregate parallel file-system bandwidth
           "cores": 320,             # e.g. 10 nodes x 32 cores
           "metadata_s_per_file": 0.5e-3,  # open + first read of a file on a parallel FS
           "header_threads": 8}      # header reads in flight in the driver


def _noop(x):
    return x


def scheduler_cost(n_tasks: int) -> dict:
    """CPU per task of this process (client + in-process scheduler) and of the workers."""
    import psutil

    from xrsmap_dask.cluster import ExecutionSpec, execution

    spec = ExecutionSpec(kind="local", n_workers=2, threads_per_worker=1, dashboard=False)
    with execution(spec, quiet=True) as ex:
        me = psutil.Process()
        dsk = {("noop", i): (_noop, i) for i in range(n_tasks)}
        ex.client.get(dsk, [("noop", 0)])  # warm the workers

        def cpu():
            kids = sum(sum(c.cpu_times()[:2]) for c in me.children(recursive=True))
            return sum(me.cpu_times()[:2]), kids

        from distributed import wait

        own0, kids0 = cpu()
        t0 = time.perf_counter()
        futures = ex.client.get(dsk, list(dsk), sync=False)
        wait(futures)  # results stay on the workers, as a survey's maps do
        wall = time.perf_counter() - t0
        own1, kids1 = cpu()
        del futures
    return {"sched_cpu_per_task": (own1 - own0) / n_tasks,
            "worker_cpu_per_task": (kids1 - kids0) / n_tasks, "wall_per_task": wall / n_tasks}


def graph_and_rates(scan) -> dict:
    """Graph bytes and result bytes per frame, open time per file, reduce rate per core."""
    import cloudpickle
    import dask
    import numpy as np

    from xrsmap_dask import imageseries
    from xrsmap_dask.mapper import Mapper

    t0 = time.perf_counter()
    ims = imageseries.from_files(scan.files)
    open_s = (time.perf_counter() - t0) / len(scan.files)
    roi, (rows, cols) = _roi(scan.frame_shape)
    mapper = Mapper(scan.npt_x, scan.npt_y)
    with dask.config.set(scheduler="threads", num_workers=1):
        mapper.composite_map(scan.files, roi=roi, binning=BINNING)  # warm
        t0 = time.perf_counter()
        comp, _ = mapper.composite_map(scan.files, roi=roi, binning=BINNING)
        secs = time.perf_counter() - t0
    maps = mapper.last_maps
    graph = {}
    for arr in (maps.composite, maps.roi_sum):
        graph.update(dict(arr.__dask_graph__()))
    graph_bytes = sum(len(cloudpickle.dumps(task)) for task in graph.values())
    read_bytes = len(ims) * (rows.stop - rows.start) * ims.shape[1] * ims.dtype.itemsize
    fy, fx = (rows.stop - rows.start) // BINNING, (cols.stop - cols.start) // BINNING
    return {"open_s_per_file": open_s, "graph_bytes_per_frame": graph_bytes / len(ims),
            "graph_tasks": len(graph), "frames": len(ims),
            "result_bytes_per_frame": fy * fx * np.dtype(np.float32).itemsize + 8,
            "reduce_bytes_per_s_per_core": read_bytes / secs,
            "composite_dtype_bytes": comp.dtype.itemsize,
            "pickle_protocol": pickle.HIGHEST_PROTOCOL}


def model(m: dict) -> list[tuple[str, str, str]]:
    """Rows (quantity, value, how) of the survey's cost model."""
    frames_per_task = max(1, TASK_BYTES // FRAME_BYTES)
    tasks = -(-SURVEY_FRAMES // frames_per_task)
    total = SURVEY_FRAMES * FRAME_BYTES
    a = ASSUMED
    t_read = total / a["fs_bytes_per_s"]
    t_compute = total / (m["reduce_bytes_per_s_per_core"] * a["cores"])
    t_sched = tasks * m["sched_cpu_per_task"]
    t_headers = SURVEY_FRAMES * (a["metadata_s_per_file"] + m["open_s_per_file"]) \
        / a["header_threads"]
    rows = [
        ("frames x bytes", f"{SURVEY_FRAMES:.0e} x {FRAME_BYTES / 1e6:.0f} MB = "
                           f"{total / 1e12:.0f} TB", "the survey"),
        ("tasks", f"{tasks:,} ({frames_per_task} frames of {FRAME_BYTES / 2**20:.1f} MiB each)",
         f"one task reads {TASK_BYTES / 2**20:.0f} MiB"),
        ("scheduler CPU", f"{t_sched:,.0f} s", "tasks x sched_cpu_per_task (one core)"),
        ("graph through the scheduler", f"{SURVEY_FRAMES * m['graph_bytes_per_frame'] / 1e6:,.0f} MB",
         "frames x graph_bytes_per_frame (per scan, never all at once)"),
        ("results written by workers", f"{SURVEY_FRAMES * m['result_bytes_per_frame'] / 1e9:,.1f} GB",
         "frames x result_bytes_per_frame (to zarr; the client gets summaries)"),
        ("read time", f"{t_read:,.0f} s", f"at {a['fs_bytes_per_s'] / 1e9:.0f} GB/s (assumed)"),
        ("compute time", f"{t_compute:,.0f} s",
         f"{a['cores']} cores (assumed) x reduce_bytes_per_s_per_core"),
        ("header reads (driver)", f"{t_headers:,.0f} s",
         f"{a['metadata_s_per_file'] * 1e3:.1f} ms metadata latency (assumed) + open_s_per_file,"
         f" {a['header_threads']} in flight"),
    ]
    times = {"read": t_read, "compute": t_compute, "scheduler": t_sched, "headers": t_headers}
    limit = max(times, key=times.get)
    rows.append(("limit", f"{limit} ({times[limit]:,.0f} s)", "the largest of the times"))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--small", action="store_true", help="smoke run: the 11 x 11 mesh")
    p.add_argument("--rounds", type=int, default=C.ROUNDS, help=argparse.SUPPRESS)
    a = p.parse_args()
    npt, shape = (11, (256, 256)) if a.small else (41, (1024, 1024))
    data = a.data or str(C.DEFAULT_DATA / ("mesh11" if a.small else "mesh41"))
    print("\n".join(C.machine_header()), flush=True)
    scan = C.ensure_mesh(data, npt, npt, shape)
    C.warm_page_cache(scan.files)
    m = {**scheduler_cost(N_TASKS // (10 if a.small else 1)), **graph_and_rates(scan)}
    inputs = [
        ("sched_cpu_per_task", f"{m['sched_cpu_per_task'] * 1e3:.2f} ms",
         f"client + scheduler CPU, {N_TASKS // (10 if a.small else 1)} no-op tasks, "
         "LocalCluster 2 x 1"),
        ("worker_cpu_per_task", f"{m['worker_cpu_per_task'] * 1e3:.2f} ms", "same run, workers"),
        ("wall_per_task", f"{m['wall_per_task'] * 1e3:.2f} ms", "same run (load-sensitive)"),
        ("open_s_per_file", f"{m['open_s_per_file'] * 1e6:.0f} us",
         f"imageseries.from_files, {m['frames']} EDF files, warm cache"),
        ("graph_bytes_per_frame", f"{m['graph_bytes_per_frame']:.0f} B",
         f"pickled map graph ({m['graph_tasks']} tasks) / frames"),
        ("result_bytes_per_frame", f"{m['result_bytes_per_frame']} B",
         f"composite tile (binning {BINNING}, float32) + ROI sum"),
        ("reduce_bytes_per_s_per_core", f"{m['reduce_bytes_per_s_per_core'] / 2**20:.0f} MiB/s",
         "composite + sum, threads scheduler with 1 thread, page cache warm"),
    ]
    print(C.table("measured inputs", inputs, ("input", "value", "how")))
    print(C.table(f"cost model: survey of {SURVEY_FRAMES:.0e} frames x "
                  f"{FRAME_BYTES / 1e6:.0f} MB", model(m), ("quantity", "value", "from")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
