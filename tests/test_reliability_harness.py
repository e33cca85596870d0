"""The reliability tables' own checks: together they cover every bad input of issue 7 part 1,
and the watch and output checks of ``test_bad_input`` can fail (a good job under the same
watch runs tasks and is marked complete)."""
from __future__ import annotations

import os

import numpy as np
import zarr
from xrsmap_dask.layout import decode_attrs

import _reliability
import test_reliability_edf
import test_reliability_formats
import test_reliability_jobs
import test_reliability_maps
import test_reliability_stats
from _reliability import NX, NY, TaskWatch, cli, key_name, mapper_out, needs_cli

# the harness fixtures these tests take (pytest finds fixtures by name in the module)
env, scan, stack = _reliability.env, _reliability.scan, _reliability.stack

# every table's cases (each test module registers its own)
CASES = [*test_reliability_edf.CASES, *test_reliability_maps.CASES,
         *test_reliability_stats.CASES, *test_reliability_formats.CASES,
         *test_reliability_jobs.CASES]


def test_table_covers_issue_7():
    """Every bad input of issue 7 part 1 has at least one case."""
    ids = [c.id for c in CASES]
    for what in ("missing-file", "empty-file", "truncated", "corrupt-header", "shape-differs",
                 "dtype-differs", "roi-outside", "roi-empty", "binning-0", "binning-not-dividing",
                 "mask-shape", "dark-shape", "flat-shape", "background-shape", "fewer-files",
                 "more-files", "ring-outside", "percentile", "unknown-format", "hdf5-no-dataset",
                 "yaml-invalid", "yaml-python-tag", "npz-pickle"):
        assert any(i.startswith(what) for i in ids), what


def test_checks_can_fail(env, stack):
    """The good job under the same watch: tasks are seen, the output is marked complete."""
    with TaskWatch() as watch:
        comp, total = mapper_out(env).composite_map(env.files, roi=(0, 0, 39, 31), binning=8)
    assert any(key_name(k).startswith(("read-roi", "map-reduce")) for k in watch.keys)
    attrs = decode_attrs(zarr.open_group(store=env.out, mode="r").attrs)
    assert attrs["complete"] is True
    assert not os.path.exists(env.out + ".lock")
    np.testing.assert_array_equal(total, stack.sum(axis=(1, 2)).reshape(NY, NX))


@needs_cli
def test_cli_checks_can_fail(env, stack, capfd):
    out = str(env.tmp / "good.zarr")
    with TaskWatch() as watch:
        code = cli.main(["composite", *env.files, "--npt-y", str(NY), "--npt-x", str(NX),
                         "-o", out, "-q"])
    assert code == 0, capfd.readouterr().err
    assert any(key_name(k).startswith(("read-roi", "map-reduce")) for k in watch.keys)
    group = zarr.open_group(store=out, mode="r")
    assert decode_attrs(group.attrs)["complete"] is True
    np.testing.assert_array_equal(group["roi_sum"][:], stack.sum(axis=(1, 2)).reshape(NY, NX))
    # and a bad input through the CLI exits 2 with one line naming the file
    bad = env.write("scan_empty.edf", b"")
    code = cli.main(["composite", *env.with_bad(bad), "--npt-y", str(NY), "--npt-x", str(NX),
                     "-o", str(env.tmp / "bad.zarr"), "-q"])
    err = capfd.readouterr().err
    assert code == 2 and bad in err and len(err.strip().splitlines()) == 1
