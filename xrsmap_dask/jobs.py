"""Survey job specs: many scans in one YAML file, validated before anything runs.

A job spec (YAML, loaded with ``yaml.safe_load`` only; paths relative to the YAML file's
directory, never executed)::

    output: survey.zarr            # one zarr store; scan NAME is written to group NAME
    summary: survey_summary.csv    # optional; a markdown table (.md) is written beside it
    cluster: {scheduler: local, workers: 4}   # optional; command-line options override it
    scans_in_flight: 4             # optional; default: the cluster's worker threads (1 locally)
    defaults:                      # shared by every scan; a scan's own keys override them
      mesh: [4, 5]                 # [npt_y, npt_x]: map rows (slow axis), map columns
      roi: [8, 8, 55, 55]          # xrsmap (x0, y0, x1, y1), bounds inclusive, rows from top
      binning: 4
      corrections: {mask: mask.edf, background: [bkg_*.edf], dummy: 0}
    scans:
      - name: scan1
        inputs: scan1/scan_*.edf   # glob, list of paths, @list.txt, file.h5:/dataset, *.yml
      - name: scan2
        inputs: scan2/scan.h5:/imageseries/images
        mesh: [10, 12]

A scan's keys are the structure keys ``name``, ``inputs``, ``mesh`` (or ``npt_y`` and
``npt_x``), ``output``, ``group`` and the options of the option table
(:mod:`xrsmap_dask.settings.options`, face ``job``; the correction options inside
``corrections:``), each parsed by the same function as on the command line and in
``Mapper``.  Everything is checked into frozen :class:`~xrsmap_dask.settings.ScanJob`
objects before a frame is read; a bad spec fails in seconds with an :class:`InputError`
naming the file, the scan and the key.  :func:`run_survey` then processes the scans (see
:mod:`xrsmap_dask.pipeline`), skipping complete outputs and resuming incomplete ones, and
writes the summary table.
"""
from __future__ import annotations

import csv
import os
import sys
import time
from typing import Sequence

from .errors import InputError
from .jobspec import SurveyJob, _Where, load_job  # noqa: F401 - the job-spec API lives here too
from .pipeline import ScanResult, check_scan_outputs, plan_scan, run_scan
from .settings import ScanJob

# -- running --------------------------------------------------------------------------------
SUMMARY_COLUMNS = ("scan", "status", "frames", "bad_frames", "seconds", "retries", "output",
                   "message")


def scan_output_path(job: ScanJob) -> str:
    """The zarr group directory of a scan: ``<output>/<group>``."""
    return job.output_path


def check_scan(scan: ScanJob, progress=None, overwrite: bool = False):
    """Open a scan's inputs (headers only), plan its maps and check its outputs: every check
    that can run before computing.  Returns the opened series; errors are in job-spec
    words."""
    try:
        ims = plan_scan(scan, progress=progress)[0]
        check_scan_outputs(scan, ims, overwrite)
        return ims
    except InputError as exc:
        raise _Where(None, scan.name).relabel(exc) from None


def _ensure_root(path: str) -> None:
    """Make ``path`` a zarr group (the survey store) unless it already is one."""
    import zarr

    if os.path.exists(os.path.join(path, "zarr.json")):
        return
    if os.path.exists(path) and os.listdir(path):
        raise InputError("exists and is not a zarr store", path=path, argument="output")
    zarr.open_group(store=path, mode="a", zarr_format=3)


def scans_in_flight(executor, requested: int | None, nscans: int) -> int:
    """How many scans run at once: ``requested`` when given; on a distributed cluster, by
    default the cluster's worker threads (so its workers stay busy through each scan's
    tail); one on the local schedulers (today's sequential behaviour unless asked)."""
    if requested is not None:
        from .settings.fields import parse_int

        return min(parse_int(requested, "scans_in_flight"), max(1, nscans))
    if executor.client is None:
        return 1
    try:
        threads = sum(executor.client.nthreads().values())
    except Exception:  # noqa: BLE001 - a scheduler that cannot answer: be sequential
        threads = 1
    return max(1, min(nscans, max(2, threads)))


def run_survey(job: SurveyJob, executor, *, overwrite: bool = False,
               keep_going: bool = True, max_in_flight: int | None = None) -> list[ScanResult]:
    """Process every scan of ``job`` on ``executor`` and write the summary table.

    First every scan is opened (headers only) and its maps planned, so that bad input in
    any scan (missing files, frame count not fitting the mesh, ROI outside the frame, ...)
    is reported in seconds, before hours of computing.  Then the scans run, up to
    :func:`scans_in_flight` at once (each its own graph, so the scheduler holds only the
    graphs of the scans in flight); the summary is rewritten as each scan finishes.  A scan
    that fails, at the check or while running (an unreadable frame with ``on_error:
    raise``), is reported in the summary and, with ``keep_going``, the others still run;
    without it nothing more is started.  Ctrl-C (KeyboardInterrupt) stops after writing the
    summary (scans not finished are ``not run``; a rerun resumes them).
    """
    results: dict[int, ScanResult] = {}
    try:
        opened = _check_all(job, executor, results, overwrite)
        if results and not keep_going:
            return _ordered(job, results)
        for root in sorted({job.scans[i].output for i in opened}):   # checked scans only
            _ensure_root(root)
        n = scans_in_flight(executor, max_in_flight, len(opened))
        if n <= 1:
            _run_sequential(job, executor, opened, results, overwrite, keep_going)
        else:
            _run_pipelined(job, executor, opened, results, overwrite, keep_going, n)
    finally:
        ordered = _ordered(job, results)
        write_summary(ordered, job.summary)
    from .pipeline import export_nexus

    for path in export_nexus(job.scans, ordered):   # outputs ending in .nxs/.h5
        executor._say(f"NeXus: {path}")
    return ordered


def _failed(scan: ScanJob, exc: Exception, executor) -> ScanResult:
    # to stderr even with -q: a failure is not progress
    print(f"{scan.name}: FAILED: {exc}", file=sys.stderr, flush=True)
    return ScanResult(scan.name, "failed", output=scan_output_path(scan), message=str(exc))


def _check_all(job: SurveyJob, executor, results: dict, overwrite: bool) -> dict:
    """Open every scan (headers) and check it; failures go to ``results``."""
    opened: dict[int, object] = {}  # the series only: maps hold corrections, rebuilt later
    t0 = time.perf_counter()
    for i, scan in enumerate(job.scans):
        try:
            opened[i] = check_scan(scan, executor.counter(f"{scan.name}: reading headers"),
                                   overwrite)
        except InputError as exc:
            results[i] = _failed(scan, exc, executor)
    executor._say(f"checked {len(job.scans)} scans in {time.perf_counter() - t0:.1f} s: "
                  f"{len(opened)} ready, {len(job.scans) - len(opened)} failed")
    return opened


def _run_one(scan: ScanJob, executor, overwrite: bool, ims) -> ScanResult:
    t0 = time.time()
    try:
        result = run_scan(scan, executor, overwrite=overwrite, ims=ims)
    except InputError as exc:
        result = _failed(scan, _Where(None, scan.name).relabel(exc), executor)
    result.started, result.finished = t0, time.time()
    return result


def _run_sequential(job, executor, opened, results, overwrite, keep_going) -> None:
    for i, scan in enumerate(job.scans):
        if i not in opened:
            continue
        results[i] = _run_one(scan, executor, overwrite, opened.pop(i))
        if results[i].status == "failed" and not keep_going:
            break


def _run_pipelined(job, executor, opened, results, overwrite, keep_going, n) -> None:
    """Up to ``n`` scans at once, each in its own thread submitting its own graph; each
    scan reports start and end on one line (no interleaved progress bars)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    from dataclasses import replace

    queue = [i for i in range(len(job.scans)) if i in opened]
    executor._say(f"running {len(queue)} scans, up to {n} at once")
    pending: dict = {}
    pool = ThreadPoolExecutor(n, thread_name_prefix="xrsmap-scan")
    stop = False
    try:
        while queue or pending:
            while queue and len(pending) < n and not stop:
                i = queue.pop(0)
                scan = job.scans[i]
                quiet = replace(executor, quiet=True, faults=[])  # one line per scan, no bars
                executor._say(f"{scan.name}: started ({len(pending) + 1} in flight)")
                pending[pool.submit(_run_one, scan, quiet, overwrite, opened.pop(i))] = i
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                results[i] = r = fut.result()
                executor._say(f"{r.scan}: {r.status} in {r.seconds:.1f} s"
                              + (f" ({r.message})" if r.message else ""))
                stop = stop or (r.status == "failed" and not keep_going)
            write_summary(_ordered(job, results), job.summary)
    except BaseException:
        # interrupted: running scans stop when the caller's cluster closes; keep their
        # chunks (a rerun resumes) and do not wait for them here
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _ordered(job: SurveyJob, results: dict) -> list[ScanResult]:
    """Results in the spec's scan order; scans without one are ``not run``."""
    return [results.get(i) or ScanResult(scan.name, "not run", output=scan_output_path(scan))
            for i, scan in enumerate(job.scans)]


def write_summary(results: Sequence[ScanResult], path: str) -> tuple[str, str]:
    """Write the summary as CSV at ``path`` and as a markdown table beside it (``.md``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        for r in results:
            writer.writerow(r.row())
    md = os.path.splitext(path)[0] + ".md"
    with open(md, "w", encoding="utf-8") as f:
        f.write(format_table(results))
    return path, md


def format_table(results: Sequence[ScanResult]) -> str:
    """The summary as a markdown table."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |",
             "|" + "|".join("---" for _ in SUMMARY_COLUMNS) + "|"]
    for r in results:
        row = r.row()
        lines.append("| " + " | ".join(cell(row[c]) for c in SUMMARY_COLUMNS) + " |")
    return "\n".join(lines) + "\n"
