"""Survey job specs: validation before anything runs, 3 scans to 3 zarr groups, skip and
resume on rerun, summary table, stats, paths relative to the YAML file."""
from __future__ import annotations

import csv
import os
import time

import numpy as np
import pytest
import zarr

from xrsmap_dask import cli
from xrsmap_dask.cluster import ExecutionSpec, execution
from xrsmap_dask.errors import InputError, UnsafeInputError
from xrsmap_dask.inputs import resolve_inputs
from xrsmap_dask.jobs import load_job, run_survey, scan_output_path
from xrsmap_dask.layout import decode_attrs
from xrsmap_dask.synth import make_scan

# the scheduler's HTTP server moves off 8787 when an earlier cluster holds it: harmless
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use")

NPT_Y, NPT_X = 4, 5
ROI = (8, 8, 55, 55)           # xrsmap (x0, y0, x1, y1), inclusive: 48 x 48
BIN = 4
RING = dict(cen_y=30.08, cen_x=33.92, radius=11.52, width=3.0)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("survey")
    out = {}
    for k, name in enumerate("abc"):
        out[name] = make_scan(root / "data" / name, npt_y=NPT_Y, npt_x=NPT_X,
                              frame_shape=(64, 64), seed=k)
    return root, out


def frames_of(scan) -> np.ndarray:
    import fabio

    return np.stack([fabio.open(p).data for p in scan.files]).astype(np.float64)


def reference(scan, mask=None):
    """numpy reference: composite (npt_y, npt_x, 12, 12), roi_sum, annulus_sum (1, ...)."""
    x0, y0, x1, y1 = ROI
    f = frames_of(scan)
    if mask is not None:
        f[:, mask != 0] = 0
    roi = f[:, y0:y1 + 1, x0:x1 + 1]
    n, h, w = roi.shape
    comp = roi.reshape(n, h // BIN, BIN, w // BIN, BIN).sum(axis=(2, 4))
    yy, xx = np.indices(f.shape[1:])
    d = np.hypot(yy - RING["cen_y"], xx - RING["cen_x"])
    ring = (d >= RING["radius"] - RING["width"] / 2) & (d <= RING["radius"] + RING["width"] / 2)
    ann = f[:, ring].sum(axis=1)
    return (comp.reshape(NPT_Y, NPT_X, h // BIN, w // BIN), roi.sum(axis=(1, 2)).reshape(
        NPT_Y, NPT_X), ann.reshape(1, NPT_Y, NPT_X), f)


def write_spec(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


SPEC = """\
output: ../out/survey.zarr
summary: ../out/summary.csv
defaults:
  mesh: [4, 5]
  roi: [8, 8, 55, 55]
  binning: 4
  rings:
    - {cen_y: 30.08, cen_x: 33.92, radius: 11.52, width: 3}
  frames_per_chunk: 5
scans:
  - name: a
    inputs: ../data/a/scan_*.edf
    corrections: {mask: ../data/a/mask.edf}
    stats: [max, {percentile: 90}]
  - name: b
    inputs: ../data/b/scan_*.edf
  - name: c
    inputs: ../data/c/scan_*.edf
"""


def test_three_scans_written_then_skipped(scans, tmp_path, monkeypatch):
    root, synth = scans
    spec = write_spec(root / "jobs" / "survey.yaml", SPEC)
    monkeypatch.chdir(tmp_path)  # paths resolve relative to the YAML file, not the cwd
    job = load_job(spec)
    assert [s.name for s in job.scans] == ["a", "b", "c"]
    with execution(ExecutionSpec(), quiet=True) as ex:
        results = run_survey(job, ex)
    assert [r.status for r in results] == ["done"] * 3
    store = zarr.open_group(str(root / "out" / "survey.zarr"), mode="r")
    assert sorted(name for name, _ in store.groups()) == ["a", "b", "c"]
    import fabio

    mask = fabio.open(synth["a"].mask_file).data
    for name in "abc":
        g = store[name]
        assert decode_attrs(g.attrs)["complete"] is True
        comp, roi_sum, ann, frames = reference(synth[name], mask if name == "a" else None)
        np.testing.assert_allclose(g["composite"][...], comp, rtol=1e-6)
        np.testing.assert_array_equal(g["roi_sum"][...], roi_sum)
        np.testing.assert_array_equal(g["annulus_sum"][...], ann)
        if name == "a":        # the whole frame, the scan's mask NaN
            raw = frames_of(synth["a"])
            raw[:, mask != 0] = np.nan
            np.testing.assert_array_equal(g["stats/max"][...], raw.max(axis=0))
            np.testing.assert_allclose(g["stats/percentile_90"][...],
                                       np.percentile(raw, 90, axis=0), rtol=1e-6)
    with open(root / "out" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["scan"], r["status"], r["frames"], r["bad_frames"]) for r in rows] == \
        [(n, "done", "20", "0") for n in "abc"]
    assert rows[0]["output"] == os.path.join(str(root / "out" / "survey.zarr"), "a")
    assert "| a | done | 20 | 0 |" in (root / "out" / "summary.md").read_text()

    # rerun through the CLI: all three skipped, exit code 0
    code = cli.main(["run", spec, "-q"])
    assert code == 0
    with open(root / "out" / "summary.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["skipped"] * 3


def test_incomplete_output_is_resumed(scans, tmp_path):
    root, synth = scans
    spec = write_spec(tmp_path / "job.yaml", SPEC.replace("../out/", "out/")
                      .replace("../data/", str(root / "data") + "/"))
    job = load_job(spec)
    with execution(ExecutionSpec(), quiet=True) as ex:
        run_survey(job, ex)
        # wreck scan b: two map chunks marked not done and their data overwritten
        path = scan_output_path(job.scans[1])
        g = zarr.open_group(path, mode="r+")
        assert g["chunk_done"].shape[0] == NPT_Y  # frames_per_chunk 5 = one scan line
        g["chunk_done"][1:3] = 0
        g["roi_sum"][1:3] = -1.0
        g.attrs["complete"] = False
        results = run_survey(job, ex)
    assert [r.status for r in results] == ["skipped", "resumed", "skipped"]
    g = zarr.open_group(path, mode="r")
    assert decode_attrs(g.attrs)["complete"] is True
    np.testing.assert_array_equal(g["roi_sum"][...], reference(synth["b"])[1])


def test_failed_scan_reported_and_others_run(scans, tmp_path):
    root, _ = scans
    text = SPEC.replace("../out/", "out/").replace("../data/", str(root / "data") + "/")
    text = text.replace("  - name: b\n", "  - name: b\n    mesh: [5, 5]\n")  # 20 frames, 25 points
    spec = write_spec(tmp_path / "job.yaml", text)
    assert cli.main(["run", spec, "-q"]) == 1
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = {r["scan"]: r for r in csv.DictReader(f)}
    assert rows["a"]["status"] == "done" and rows["c"]["status"] == "done"
    assert rows["b"]["status"] == "failed" and "20 frames" in rows["b"]["message"]
    b = tmp_path / "out" / "survey.zarr" / "b"
    assert not (b / "zarr.json").exists() or \
        decode_attrs(zarr.open_group(str(b), mode="r").attrs).get("complete") is not True


BAD_SPECS = [
    ("scans: []\noutput: o.zarr\n", "'scans'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "bining: 2}\n", "scan 'a', key 'bining'"),
    ("output: o.zarr\nscans:\n  - {name: a, mesh: [4, 5]}\n", "scan 'a', key 'inputs'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/none/*.edf', mesh: [4, 5]}\n",
     "scan 'a', key 'inputs'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4]}\n",
     "scan 'a', key 'mesh'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "roi: [8, 8, 55, 55], binning: 5}\n", "scan 'a', key 'binning'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "roi: [9, 8, 5, 55]}\n", "scan 'a', key 'roi'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "stats: [{percentile: 101}]}\n", "scan 'a', key 'stats'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "rings: [{cen_y: 1, cen_x: 2, radius: 3}]}\n", "scan 'a', key 'rings'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "on_error: ignore}\n", "scan 'a', key 'on_error'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "corrections: {mask: nomask.edf}}\n", "scan 'a', key 'corrections.mask'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5]}\n"
     "  - {name: a, inputs: 'DATA/b/scan_*.edf', mesh: [4, 5]}\n", "scan 'a', key 'name'"),
    ("output: o.zarr\nscans:\n  - {name: 'a/../..', inputs: 'DATA/a/scan_*.edf', "
     "mesh: [4, 5]}\n", "key 'name'"),
    ("scans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5]}\n",
     "scan 'a', key 'output'"),
    ("output: o.zarr\ndefaults: {name: x}\nscans:\n  - {name: a, inputs: 'DATA/a/*.edf', "
     "mesh: [4, 5]}\n", "key 'defaults.name'"),
    ("output: o.zarr\nscans: [\n", "invalid YAML"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "corrections: {background_method: median}}\n", "key 'corrections.background_method'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "corrections: {background: 'DATA/a/scan_0000*.edf', background_method: percentile}}\n",
     "key 'corrections.background_pct'"),
    ("output: o.zarr\nscans:\n  - {name: a, inputs: 'DATA/a/scan_*.edf', mesh: [4, 5], "
     "corrections: {background: 'DATA/a/scan_0000*.edf', background_method: percentile, "
     "background_pct: 120}}\n", "key 'corrections.background_pct'"),
]


@pytest.mark.parametrize("text, where", BAD_SPECS)
def test_bad_spec_fails_fast_naming_scan_and_key(scans, tmp_path, text, where):
    root, _ = scans
    spec = write_spec(tmp_path / "bad.yaml", text.replace("DATA", str(root / "data")))
    t0 = time.perf_counter()
    with pytest.raises(InputError) as err:
        load_job(spec)
    assert time.perf_counter() - t0 < 5
    assert where in str(err.value)
    assert spec in str(err.value)
    assert not (tmp_path / "o.zarr").exists()


def test_unsafe_yaml_refused(tmp_path):
    marker = tmp_path / "pwned"
    spec = write_spec(tmp_path / "evil.yaml",
                      f"output: o.zarr\nscans: !!python/object/apply:os.system "
                      f"['touch {marker}']\n")
    with pytest.raises(UnsafeInputError, match="tag"):
        load_job(spec)
    assert not marker.exists()
    assert cli.main(["run", spec, "-q"]) == 2


def test_defaults_merge_and_cluster_section(scans, tmp_path):
    root, _ = scans
    spec = write_spec(tmp_path / "job.yaml", f"""\
output: out.zarr
cluster: {{scheduler: pathos, workers: 2}}
defaults: {{mesh: [4, 5], binning: 2, roi: [8, 8, 55, 55]}}
scans:
  - {{name: a, inputs: '{root}/data/a/scan_*.edf'}}
  - {{name: b, inputs: '{root}/data/b/scan_*.edf', binning: 4, output: other.zarr}}
""")
    job = load_job(spec)
    assert [s.binning for s in job.scans] == [2, 4]
    assert job.scans[0].output == str(tmp_path / "out.zarr")
    assert job.scans[1].output == str(tmp_path / "other.zarr")
    assert job.summary == str(tmp_path / "job_summary.csv")
    args = cli.build_parser().parse_args(["run", spec])
    ex = cli.execution_spec(args, job.cluster)
    assert (ex.kind, ex.n_workers) == ("pathos", 2)
    args = cli.build_parser().parse_args(["run", spec, "--scheduler", "threads"])
    assert cli.execution_spec(args, job.cluster).kind == "threads"  # the CLI wins


def test_scan_corrections_override_the_defaults_key_by_key(scans, tmp_path):
    """A scan's own ``corrections:`` changes the keys it names and keeps the others."""
    root, synth = scans
    spec = write_spec(tmp_path / "job.yaml", f"""\
output: out.zarr
defaults:
  mesh: [4, 5]
  corrections: {{mask: '{synth["a"].mask_file}', dummy: 5}}
scans:
  - {{name: a, inputs: '{root}/data/a/scan_*.edf'}}
  - {{name: b, inputs: '{root}/data/b/scan_*.edf', corrections: {{dummy: 7}}}}
""")
    a, b = load_job(spec).scans
    assert (a.corrections.dummy, b.corrections.dummy) == (5, 7)
    assert a.corrections.mask is not None and b.corrections.mask == a.corrections.mask


def test_output_that_is_an_input_file_fails_the_check(scans, tmp_path, capsys):
    """A job spec whose output is one of its input frames: ``run --check`` and ``run``
    refuse it (exit 2, naming the output) and the frame is unchanged."""
    root, synth = scans
    frame = synth["a"].files[1]
    before = open(frame, "rb").read()
    spec = write_spec(tmp_path / "job.yaml", f"""\
output: '{frame}'
defaults: {{mesh: [4, 5]}}
scans:
  - {{name: a, inputs: '{root}/data/a/scan_*.edf'}}
""")
    for extra in (["--check"], []):
        assert cli.main(["run", spec, "-q", *extra]) in (1, 2)
        err = capsys.readouterr().err
        assert "output" in err and "Traceback" not in err and "NotADirectory" not in err, err
    assert open(frame, "rb").read() == before


def test_resolve_inputs_forms(scans, tmp_path):
    root, synth = scans
    files = synth["a"].files
    listfile = tmp_path / "list.txt"
    listfile.write_text("# frames\n" + "\n".join(os.path.relpath(f, tmp_path) for f in files))
    got = resolve_inputs(f"@{listfile}")
    assert got.kind == "files" and list(got.paths) == files
    assert list(resolve_inputs(str(root / "data" / "a" / "scan_*.edf")).paths) == files
    h5 = tmp_path / "s.h5"
    import h5py

    with h5py.File(h5, "w") as f:
        f["/entry/images"] = np.zeros((3, 4, 4), np.uint16)
    spec = resolve_inputs(f"{h5}:/entry/images")
    assert (spec.kind, spec.dataset) == ("hdf5", "/entry/images")
    from xrsmap_dask.inputs import open_inputs

    assert len(open_inputs(spec)) == 3
    with pytest.raises(InputError, match="file not found"):
        resolve_inputs([files[0], str(tmp_path / "missing.edf")])
    with pytest.raises(InputError, match="empty"):
        (tmp_path / "empty.txt").write_text("# nothing\n")
        resolve_inputs(f"@{tmp_path / 'empty.txt'}")


# -- a worker killed during a job -------------------------------------------------------------
class KillFirstTask:
    """Worker plugin: the first task any worker starts kills that worker's process (once,
    guarded by a marker file)."""

    name = "kill-first-task"

    def __init__(self, marker: str):
        self.marker = marker

    def setup(self, worker):
        pass

    def teardown(self, worker):
        pass

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing":
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)


def test_worker_killed_during_job_same_maps_and_retry_reported(scans, tmp_path, local_cluster):
    import sys

    import cloudpickle
    from distributed import Client
    from distributed.diagnostics.plugin import WorkerPlugin

    root, synth = scans
    spec = write_spec(tmp_path / "job.yaml", SPEC.replace("../out/", "out/")
                      .replace("../data/", str(root / "data") + "/"))
    marker = str(tmp_path / "killed")
    plugin_cls = type("KillFirstTaskPlugin", (KillFirstTask, WorkerPlugin), {})
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        with Client(local_cluster.scheduler_address) as client:
            client.register_plugin(plugin_cls(marker))
            code = cli.main(["run", spec, "--scheduler", local_cluster.scheduler_address,
                             "-q"])
            client.unregister_worker_plugin(plugin_cls.name)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert code == 0
    assert os.path.exists(marker)  # a worker did die
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["done"] * 3
    assert sum(int(r["retries"]) for r in rows) >= 1
    store = zarr.open_group(str(tmp_path / "out" / "survey.zarr"), mode="r")
    import fabio

    mask = fabio.open(synth["a"].mask_file).data
    for name in "abc":
        comp, roi_sum, ann, _ = reference(synth[name], mask if name == "a" else None)
        np.testing.assert_array_equal(store[name]["roi_sum"][...], roi_sum)
        np.testing.assert_array_equal(store[name]["annulus_sum"][...], ann)
        np.testing.assert_allclose(store[name]["composite"][...], comp, rtol=1e-6)


def test_bad_cluster_section_fails_at_load(tmp_path, scans):
    root, _ = scans
    spec = write_spec(tmp_path / "job.yaml", f"""\
output: out.zarr
cluster: {{scheduler: local, wokers: 2}}
scans:
  - {{name: a, inputs: '{root}/data/a/scan_*.edf', mesh: [4, 5]}}
""")
    with pytest.raises(InputError, match="key 'cluster'.*wokers"):
        load_job(spec)


def test_check_validates_without_writing(scans, tmp_path, capsys):
    root, _ = scans
    spec = write_spec(tmp_path / "job.yaml", SPEC.replace("../out/", "out/")
                      .replace("../data/", str(root / "data") + "/"))
    assert cli.main(["run", spec, "--check"]) == 0
    assert "3 scans valid" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # a scan whose frame count does not fit its mesh is caught by --check (headers only)
    bad = write_spec(tmp_path / "bad.yaml", SPEC.replace("../out/", "out/")
                     .replace("../data/", str(root / "data") + "/")
                     .replace("  - name: c\n", "  - name: c\n    mesh: [3, 5]\n"))
    assert cli.main(["run", bad, "--check"]) == 2
    assert "20 frames" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_last_scan_found_before_computing(scans, tmp_path):
    root, _ = scans
    text = SPEC.replace("../out/", "out/").replace("../data/", str(root / "data") + "/")
    text = text.replace("  - name: c\n", "  - name: c\n    roi: [8, 8, 95, 95]\n")  # outside
    spec = write_spec(tmp_path / "job.yaml", text)
    assert cli.main(["run", spec, "-q", "--stop-on-error"]) == 1
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = {r["scan"]: r for r in csv.DictReader(f)}
    assert (rows["a"]["status"], rows["b"]["status"]) == ("not run", "not run")
    assert rows["c"]["status"] == "failed" and "outside the frame" in rows["c"]["message"]
    assert not (tmp_path / "out" / "survey.zarr" / "a").exists()  # nothing was computed


def test_allow_incomplete_scan(scans, tmp_path):
    root, synth = scans
    text = SPEC.replace("../out/", "out/").replace("../data/", str(root / "data") + "/")
    text = text.replace("  - name: b\n", "  - name: b\n    mesh: [5, 5]\n    allow_incomplete: true\n")
    job = load_job(write_spec(tmp_path / "job.yaml", text))
    assert [s.allow_incomplete for s in job.scans] == [False, True, False]
    with execution(ExecutionSpec(), quiet=True) as ex:
        results = run_survey(job, ex)
    assert [r.status for r in results] == ["done"] * 3
    got = zarr.open_group(scan_output_path(job.scans[1]), mode="r")["roi_sum"][...]
    ref = reference(synth["b"])[1].ravel()               # 20 frames on a 5 x 5 raster
    np.testing.assert_array_equal(got.ravel()[:20], ref)
    assert np.isnan(got.ravel()[20:]).all()


def test_background_median_of_frames(scans, tmp_path):
    """corrections.background_method: median subtracts the exact median of the frames."""
    root, made = scans
    scan = made["a"]
    bkg = scan.files[:5]
    spec = write_spec(tmp_path / "bg.yaml", (
        f"output: {tmp_path / 'o.zarr'}\nscans:\n  - name: a\n    inputs: '{scan.directory}/scan_*.edf'\n"
        f"    mesh: [{scan.npt_y}, {scan.npt_x}]\n    corrections:\n      background: {list(bkg)}\n"
        "      background_method: median\n"))
    job = load_job(spec)
    with execution(ExecutionSpec(kind="threads"), quiet=True) as ex:
        run_survey(job, ex)
    frames = frames_of(scan).astype(np.float64)
    med = np.median(frames[:5], axis=0)
    got = zarr.open_group(str(tmp_path / "o.zarr" / "a"), mode="r")["roi_sum"][...]
    np.testing.assert_allclose(got.ravel(), (frames.astype(np.float32) - med.astype(np.float32))
                               .sum(axis=(1, 2)), rtol=1e-5)


def test_stats_only_scan_not_skipped_when_inputs_change(scans, tmp_path):
    root, made = scans

    def spec_for(name):
        return write_spec(tmp_path / "st.yaml", (
            f"output: {tmp_path / 'o.zarr'}\nscans:\n  - name: s1\n"
            f"    inputs: '{made[name].directory}/scan_*.edf'\n"
            f"    mesh: [{NPT_Y}, {NPT_X}]\n    composite: false\n    roi_sum: false\n"
            "    stats: [max]\n"))

    def run(name, overwrite=False):
        with execution(ExecutionSpec(kind="threads"), quiet=True) as ex:
            return run_survey(load_job(spec_for(name)), ex, overwrite=overwrite)[0]

    assert run("a").status == "done"
    assert run("a").status == "skipped"
    changed = run("b")              # other inputs: refused, the old statistics kept
    assert changed.status == "failed" and "different job" in changed.message
    stats = zarr.open_group(str(tmp_path / "o.zarr" / "s1" / "stats"), mode="r")
    np.testing.assert_array_equal(stats["max"][...], frames_of(made["a"]).max(axis=0))
    assert run("b", overwrite=True).status == "done"
    stats = zarr.open_group(str(tmp_path / "o.zarr" / "s1" / "stats"), mode="r")
    np.testing.assert_array_equal(stats["max"][...], frames_of(made["b"]).max(axis=0))


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
def test_job_spec_stats_take_the_mask_as_the_cli(scans, tmp_path):
    """A scan's ``corrections: {mask: ...}`` makes its statistics NaN at the masked pixels,
    over the whole frame (not the maps' ROI), equal to ``xrsmap-dask stats --mask``."""
    import fabio

    _, made = scans
    scan = made["b"]
    mask = np.zeros((64, 64), np.uint8)
    mask[3:7, 40:50] = 1            # outside the maps' ROI (rows 8..55) too
    mask[30, 30] = 1
    fabio.edfimage.EdfImage(data=mask).write(str(tmp_path / "mask.edf"))
    spec = write_spec(tmp_path / "m.yaml", (
        f"output: {tmp_path / 'o.zarr'}\nscans:\n  - name: s\n"
        f"    inputs: '{scan.directory}/scan_*.edf'\n    mesh: [{NPT_Y}, {NPT_X}]\n"
        f"    roi: {list(ROI)}\n    binning: {BIN}\n"
        "    corrections: {mask: mask.edf}\n    stats: [median, max, {percentile: 5}]\n"))
    assert cli.main(["run", spec, "-q"]) == 0
    got = zarr.open_group(str(tmp_path / "o.zarr" / "s" / "stats"), mode="r")
    x = frames_of(scan)
    x[:, mask != 0] = np.nan
    refs = {"median": np.nanmedian(x, axis=0), "max": np.nanmax(x, axis=0),
            "percentile_5": np.nanpercentile(x, 5, axis=0)}
    for label, ref in refs.items():
        assert got[label].shape == (64, 64)
        assert np.isnan(got[label][...][mask != 0]).all(), label
        np.testing.assert_array_equal(got[label][...], ref, err_msg=label)
    assert decode_attrs(got.attrs)["mask"]["excluded"] == int(mask.sum())
    cli_out = tmp_path / "cli.zarr"
    assert cli.main(["stats", f"{scan.directory}/scan_*.edf", "--stat", "median", "max",
                     "--percentile", "5", "--mask", str(tmp_path / "mask.edf"),
                     "-o", str(cli_out), "-q"]) == 0
    ref = zarr.open_group(str(cli_out), mode="r")
    for label in refs:
        np.testing.assert_array_equal(got[label][...], ref[label][...], err_msg=label)
        assert got[label].dtype == ref[label].dtype


def test_nested_scan_groups_refused(scans, tmp_path):
    """An output group inside another scan's group is refused before anything runs (an
    overwrite of the outer scan would delete the inner one's finished output)."""
    root, _ = scans
    spec = write_spec(tmp_path / "nested.yaml", f"""\
output: out.zarr
defaults: {{mesh: [4, 5]}}
scans:
  - {{name: a, inputs: '{root}/data/a/scan_*.edf'}}
  - {{name: b, inputs: '{root}/data/b/scan_*.edf', group: a/sub}}
""")
    with pytest.raises(InputError) as err:
        load_job(spec)
    assert "scan 'b', key 'group'" in str(err.value) and "inside the output of scan 'a'" \
        in str(err.value)
    assert not (tmp_path / "out.zarr").exists()
