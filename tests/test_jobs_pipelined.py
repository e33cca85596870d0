"""Pipelined surveys: on a distributed cluster several scans are in flight at once, each its
own graph; outputs equal a sequential run's; the summary is written as scans finish."""
from __future__ import annotations

import csv

import numpy as np
import zarr

from xrsmap_dask.cluster import ExecutionSpec, execution
from xrsmap_dask.jobs import load_job, run_survey, scans_in_flight
from xrsmap_dask.layout import decode_attrs
from xrsmap_dask.synth import make_scan

NSCANS = 4


def _spec(tmp_path, root, name: str) -> str:
    scans = "\n".join(f"  - {{name: s{k}, inputs: '{root}/s{k}/scan_*.edf'}}"
                      for k in range(NSCANS))
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"output: {name}.zarr\ndefaults: {{mesh: [4, 5], roi: [8, 8, 39, 39], "
                    f"binning: 4, stats: [median], rings: [{{cen_y: 24, cen_x: 24, "
                    f"radius: 10, width: 3}}]}}\nscans:\n{scans}\n")
    return str(path)


def test_scans_overlap_and_equal_the_sequential_run(tmp_path, local_cluster):
    root = tmp_path / "data"
    for k in range(NSCANS):
        make_scan(root / f"s{k}", 4, 5, (48, 48), seed=k)
    with execution(ExecutionSpec.from_scheduler(local_cluster.scheduler_address),
                   quiet=True) as ex:
        assert scans_in_flight(ex, None, NSCANS) >= 2  # a cluster pipelines by default
        piped = run_survey(load_job(_spec(tmp_path, root, "piped")), ex, max_in_flight=3)
    with execution(quiet=True) as ex:
        assert scans_in_flight(ex, None, NSCANS) == 1  # threads: sequential unless asked
        seq = run_survey(load_job(_spec(tmp_path, root, "seq")), ex)
    assert [r.status for r in piped] == ["done"] * NSCANS
    assert [r.status for r in seq] == ["done"] * NSCANS
    # at least two scans ran at the same time
    spans = sorted((r.started, r.finished) for r in piped)
    assert any(spans[k + 1][0] < spans[k][1] for k in range(len(spans) - 1)), spans
    for k in range(NSCANS):
        a = zarr.open_group(str(tmp_path / "piped.zarr" / f"s{k}"), mode="r")
        b = zarr.open_group(str(tmp_path / "seq.zarr" / f"s{k}"), mode="r")
        for name in ("composite", "roi_sum", "annulus_sum"):
            np.testing.assert_array_equal(a[name][...], b[name][...])
        np.testing.assert_array_equal(a["stats"]["median"][...], b["stats"]["median"][...])
        assert decode_attrs(a.attrs)["complete"] is True
    with open(tmp_path / "piped_summary.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["done"] * NSCANS
    # a rerun finds every scan complete
    with execution(ExecutionSpec.from_scheduler(local_cluster.scheduler_address),
                   quiet=True) as ex:
        again = run_survey(load_job(_spec(tmp_path, root, "piped")), ex)
    assert [r.status for r in again] == ["skipped"] * NSCANS
