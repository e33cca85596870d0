"""The xrsmap-dask CLI: maps identical on threads, pathos and a hand-started dask scheduler
with two workers; progress bar; PNG preview; stats/convert/info; exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from xrsmap_dask import cli
from xrsmap_dask.layout import decode_attrs
from xrsmap_dask.synth import make_scan

# the scheduler's HTTP server moves off 8787 when an earlier cluster holds it: harmless
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use")

NPT_Y, NPT_X = 4, 5
ROI = ["8", "8", "55", "55"]    # xrsmap (x0, y0, x1, y1), inclusive


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return make_scan(tmp_path_factory.mktemp("scan"), npt_y=NPT_Y, npt_x=NPT_X,
                     frame_shape=(64, 64), hdf5=True)


def frames_of(scan) -> np.ndarray:
    import fabio

    return np.stack([fabio.open(p).data for p in scan.files])


def glob_of(scan) -> str:
    return os.path.join(scan.directory, "scan_*.edf")


def composite_args(scan, out, *extra):
    return ["composite", glob_of(scan), "--npt-y", str(NPT_Y), "--npt-x", str(NPT_X),
            "--roi", *ROI, "--binning", "4", "--frames-per-chunk", "5", "-o", str(out),
            *extra]


def read_maps(path) -> dict:
    g = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(a[...]) for name, a in g.arrays() if name != "chunk_done"}


def reference_maps(scan) -> dict:
    f = frames_of(scan).astype(np.float64)
    roi = f[:, 8:56, 8:56]
    comp = roi.reshape(-1, 12, 4, 12, 4).sum(axis=(2, 4)).reshape(NPT_Y, NPT_X, 12, 12)
    return {"composite": comp, "roi_sum": roi.sum(axis=(1, 2)).reshape(NPT_Y, NPT_X)}


@pytest.fixture(scope="module")
def threaded(scan, tmp_path_factory):
    out = tmp_path_factory.mktemp("threads") / "maps.zarr"
    assert cli.main(composite_args(scan, out, "-q")) == 0
    maps = read_maps(out)
    ref = reference_maps(scan)
    np.testing.assert_allclose(maps["composite"], ref["composite"], rtol=1e-6)
    np.testing.assert_array_equal(maps["roi_sum"], ref["roi_sum"])
    return maps


# -- a hand-started scheduler and two workers ---------------------------------------------
@pytest.fixture(scope="module")
def dask_processes(tmp_path_factory):
    """`dask scheduler` + two `dask worker` subprocesses on 127.0.0.1, random ports."""
    tmp = tmp_path_factory.mktemp("dask")
    sched_file = str(tmp / "scheduler.json")
    dask_exe = os.path.join(os.path.dirname(sys.executable), "dask")
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    logs = []

    def start(args, name):
        log = open(tmp / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([dask_exe, *args], stdout=log, stderr=subprocess.STDOUT,
                                      env=env, cwd=str(tmp)))

    try:
        start(["scheduler", "--scheduler-file", sched_file, "--host", "127.0.0.1",
               "--port", "0", "--no-dashboard"], "scheduler")
        for _ in range(300):
            if os.path.exists(sched_file) and os.path.getsize(sched_file) > 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("dask scheduler did not write its scheduler file")
        for k in range(2):
            start(["worker", "--scheduler-file", sched_file, "--host", "127.0.0.1",
                   "--nthreads", "1", "--no-dashboard", "--no-nanny", "--name", f"w{k}"],
                  f"worker{k}")
        from distributed import Client

        with Client(scheduler_file=sched_file, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield sched_file, address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs[::-1]:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def test_hand_started_scheduler_gives_identical_maps(scan, threaded, dask_processes, tmp_path):
    sched_file, address = dask_processes
    assert address.startswith("tcp://127.0.0.1:")
    out = tmp_path / "by_file.zarr"
    assert cli.main(composite_args(scan, out, "--scheduler", sched_file, "-q")) == 0
    got = read_maps(out)
    assert got.keys() == threaded.keys()
    for name in got:
        np.testing.assert_array_equal(got[name], threaded[name])
    out2 = tmp_path / "by_address.zarr"
    assert cli.main(composite_args(scan, out2, "--scheduler", address, "-q")) == 0
    for name, arr in read_maps(out2).items():
        np.testing.assert_array_equal(arr, threaded[name])


def test_pathos_gives_identical_maps(scan, threaded, tmp_path):
    out = tmp_path / "maps.zarr"
    assert cli.main(composite_args(scan, out, "--scheduler", "pathos", "--workers", "2",
                                   "-q")) == 0
    for name, arr in read_maps(out).items():
        np.testing.assert_array_equal(arr, threaded[name])


# -- progress, preview -------------------------------------------------------------------------
def test_progress_bar_and_png_preview(scan, tmp_path, capsys):
    from PIL import Image

    from xrsmap_dask.preview import preview_size

    out, png = tmp_path / "maps.zarr", tmp_path / "maps.png"
    assert cli.main(composite_args(scan, out, "--preview", str(png), "--log")) == 0
    err = capsys.readouterr().err
    assert "100% Completed" in err and "[####" in err
    assert f"preview: {png}" in err
    with Image.open(png) as im:
        im.load()
        assert im.format == "PNG"
        assert im.size == preview_size(2)  # sum map + composite mosaic
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 5  # not a blank picture
    # quiet: no bar, no messages
    assert cli.main(composite_args(scan, tmp_path / "q.zarr", "-q")) == 0
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_pty(scan, tmp_path):
    """Run as a real command on a pseudo-terminal: the bar is drawn on the terminal."""
    import pty

    exe = os.path.join(os.path.dirname(sys.executable), "xrsmap-dask")
    out = tmp_path / "maps.zarr"
    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.execv(exe, [exe, *composite_args(scan, out)])
        finally:
            os._exit(127)
    chunks = []
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "100% Completed" in text


def test_annulus_and_preview_command(scan, tmp_path):
    from PIL import Image

    from xrsmap_dask.preview import preview_size

    out = tmp_path / "rings.zarr"
    cy, cx = scan.centre
    radii = [f"{r:.3f}" for r in scan.radii[:2]]
    assert cli.main(["annulus", glob_of(scan), "--npt-y", str(NPT_Y), "--npt-x", str(NPT_X),
                     "--cen-y", str(cy), "--cen-x", str(cx), "--radius", *radii,
                     "--width", "3", "-o", str(out), "-q"]) == 0
    ann = read_maps(out)["annulus_sum"]
    f = frames_of(scan).astype(np.float64)
    yy, xx = np.indices(f.shape[1:])
    d = np.hypot(yy - cy, xx - cx)
    for k, r in enumerate(radii):
        ring = (d >= float(r) - 1.5) & (d <= float(r) + 1.5)
        np.testing.assert_array_equal(ann[k], f[:, ring].sum(axis=1).reshape(NPT_Y, NPT_X))
    png = tmp_path / "rings.png"
    assert cli.main(["preview", str(out), "-o", str(png), "--dpi", "50", "-q"]) == 0
    with Image.open(png) as im:
        assert im.size == preview_size(2, dpi=50)


# -- stats, convert, info ------------------------------------------------------------------------
def test_stats_to_image_and_zarr(scan, tmp_path):
    import fabio

    f = frames_of(scan)
    med = tmp_path / "median.edf"
    assert cli.main(["stats", glob_of(scan), "--stat", "median", "-o", str(med), "-q"]) == 0
    np.testing.assert_allclose(fabio.open(str(med)).data, np.median(f, axis=0), rtol=1e-6)
    out = tmp_path / "stats.zarr"
    assert cli.main(["stats", f"{scan.hdf5_file}:/imageseries/images", "--stat", "max", "min",
                     "--percentile", "10", "-o", str(out), "-q"]) == 0
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(g["max"][...], f.max(axis=0))
    np.testing.assert_array_equal(g["min"][...], f.min(axis=0))
    np.testing.assert_allclose(g["percentile_10"][...], np.percentile(f, 10, axis=0),
                               rtol=1e-6)
    assert decode_attrs(g.attrs)["complete"] is True
    # one image file cannot hold two statistics; an existing output needs --overwrite
    assert cli.main(["stats", glob_of(scan), "--stat", "max", "min", "-o",
                     str(tmp_path / "x.npy"), "-q"]) == 2
    assert cli.main(["stats", glob_of(scan), "--stat", "max", "-o", str(med), "-q"]) == 2


def test_convert_and_info(scan, tmp_path, capsys):
    from xrsmap_dask import imageseries

    h5 = tmp_path / "frames.h5"
    listfile = tmp_path / "frames.txt"
    listfile.write_text("\n".join(scan.files))
    assert cli.main(["convert", f"@{listfile}", "-o", str(h5), "--format", "hdf5",
                     "--path", "/imageseries"]) == 0
    assert "100%" in capsys.readouterr().err
    ims = imageseries.open(str(h5), "hdf5", path="/imageseries")
    f = frames_of(scan)
    assert len(ims) == len(f)
    np.testing.assert_array_equal(np.stack([ims[i] for i in range(len(ims))]), f)

    assert cli.main(["info", f"{h5}:/imageseries/images", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["frames"], d["frame_shape"], d["dtype"]) == (NPT_Y * NPT_X, [64, 64], "uint16")

    out = tmp_path / "maps.zarr"
    assert cli.main(composite_args(scan, out, "-q")) == 0
    capsys.readouterr()
    assert cli.main(["info", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["attrs"]["complete"] is True
    assert d["arrays"]["composite"]["shape"] == [NPT_Y, NPT_X, 12, 12]
    assert d["chunks_done"] == f"{NPT_Y}/{NPT_Y}"


# -- exit codes and errors -----------------------------------------------------------------------
def test_exit_codes_and_one_line_errors(scan, tmp_path, capsys):
    assert cli.main(["--help"]) == 0
    assert "examples" in capsys.readouterr().out
    assert cli.main(["composite", "--help"]) == 0
    assert "example:" in capsys.readouterr().out
    assert cli.main([]) == 2                       # no command
    assert cli.main(["composite", glob_of(scan)]) == 2   # missing --npt-y ...
    capsys.readouterr()
    # bad input: one line naming the problem, no traceback
    code = cli.main(composite_args(scan, tmp_path / "o.zarr", "--scheduler", "gpu"))
    err = capsys.readouterr().err
    assert code == 2 and "scheduler" in err and "Traceback" not in err
    assert err.count("\n") == 1
    code = cli.main(["composite", str(tmp_path / "none_*.edf"), "--npt-y", "4", "--npt-x",
                     "5", "-o", str(tmp_path / "o.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and "none_*.edf" in err and "no file matches" in err
    code = cli.main(composite_args(scan, tmp_path / "o.zarr").__add__(["--binning", "5"]))
    err = capsys.readouterr().err
    assert code == 2 and "binning" in err
    assert not (tmp_path / "o.zarr").exists()
    # a second writer of the same output is refused
    from xrsmap_dask.store import OutputLock

    out = tmp_path / "locked.zarr"
    with OutputLock(str(out)):
        code = cli.main(composite_args(scan, out, "-q"))
    assert code == 2 and "another job is writing" in capsys.readouterr().err


def test_console_script_runs_as_subprocess(scan, tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "xrsmap-dask")
    proc = subprocess.run([exe, "info", glob_of(scan)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"frames: {NPT_Y * NPT_X}" in proc.stdout
    proc = subprocess.run([exe, "info", str(tmp_path / "missing.h5:/x")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_on_error_fill_with_truncated_and_missing_files(scan, tmp_path, capsys):
    import shutil

    bad_dir = tmp_path / "frames"
    bad_dir.mkdir()
    names = []
    for p in scan.files:
        dst = bad_dir / os.path.basename(p)
        shutil.copy(p, dst)
        names.append(str(dst))
    os.truncate(names[3], 2000)   # truncated
    os.remove(names[11])          # missing
    listfile = tmp_path / "frames.txt"
    listfile.write_text("\n".join(names))
    out = tmp_path / "maps.zarr"
    args = ["composite", f"@{listfile}", "--npt-y", str(NPT_Y), "--npt-x", str(NPT_X),
            "--roi", *ROI, "--binning", "4", "-o", str(out)]
    assert cli.main(args + ["-q"]) == 2          # default: raise
    assert not (out / "zarr.json").exists() or \
        decode_attrs(zarr.open_group(str(out), mode="r").attrs).get("complete") is not True
    capsys.readouterr()
    assert cli.main(args + ["--on-error", "fill", "--overwrite"]) == 0
    assert "2 bad" in capsys.readouterr().err
    got = read_maps(out)
    ref = reference_maps(scan)
    bad = np.zeros((NPT_Y, NPT_X), bool)
    bad.flat[[3, 11]] = True
    assert np.isnan(got["roi_sum"][bad]).all()
    np.testing.assert_array_equal(got["roi_sum"][~bad], ref["roi_sum"][~bad])
    g = zarr.open_group(str(out), mode="r")
    assert [b[0] for b in decode_attrs(g.attrs)["bad_frames"]] == [3, 11]
    assert decode_attrs(g.attrs)["complete"] is True


# -- deploy/ -----------------------------------------------------------------------------------
DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy")


@pytest.mark.parametrize("script, env", [
    ("slurm_job.sh", {}),
    ("pbs_job.sh", {"JOB": "/data/survey.yaml"}),
])
def test_batch_scripts_call_the_cli_with_valid_options(tmp_path, script, env):
    """Run the batch script with a stand-in `xrsmap-dask` that records its arguments, then
    check the real parser accepts them and they ask for the resources set."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    record = tmp_path / "argv.json"
    fake = venv / "bin" / "xrsmap-dask"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n")
    fake.chmod(0o755)
    run_env = dict(os.environ, VENV=str(venv), PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
                   CORES="16", MEMORY="60GiB", WALLTIME="01:00:00", ACCOUNT="proj42",
                   ADAPT_MAX="4", **env)
    run_env.pop("PBS_O_WORKDIR", None)
    proc = subprocess.run(["bash", os.path.join(DEPLOY, script), "/data/survey.yaml"],
                          env=run_env, capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(record.read_text())
    args = cli.build_parser().parse_args(argv)
    assert args.command == "run" and args.job == "/data/survey.yaml"
    assert (args.scheduler, args.cores, args.memory, args.walltime, args.account,
            args.adaptive_max) == (script.split("_")[0], 16, "60GiB", "01:00:00", "proj42", 4)
    spec = cli.execution_spec(args)
    assert spec.kind in ("slurm", "pbs") and spec.threads_per_worker == 4


def test_deploy_jobqueue_config_builds_clusters(monkeypatch, tmp_path):
    import dask
    import yaml

    from xrsmap_dask.cluster import ExecutionSpec, make_jobqueue_cluster

    import dask_jobqueue  # noqa: F401 - its config defaults must exist before config.set

    monkeypatch.chdir(tmp_path)  # jobqueue creates the log directory
    with open(os.path.join(DEPLOY, "jobqueue.yaml")) as f:
        config = yaml.safe_load(f)
    # dotted keys: merged into jobqueue's defaults as dask merges config files
    flat = {f"jobqueue.{kind}.{key}": value for kind, section in config["jobqueue"].items()
            for key, value in section.items()}
    for kind in ("slurm", "pbs"):
        with dask.config.set(flat):
            cluster = make_jobqueue_cluster(ExecutionSpec(kind=kind, host="127.0.0.1",
                                                          dashboard=False))
            try:
                script = cluster.job_script()
            finally:
                cluster.close()
        assert "--nworkers 8" in script and "--nthreads 4" in script
        assert "02:00:00" in script and "--interface" not in script  # no site interface
        assert "--lifetime" in script and "--memory-limit 13.50GiB" in script  # 90 % of 120
        assert 'source "$HOME/xrsmap-env/bin/activate"' in script
        assert ("--cpus-per-task=32" in script) if kind == "slurm" else ("ncpus=32" in script)


@pytest.mark.parametrize("name", ["slurm_job.sh", "pbs_job.sh", "start_dask_manual.sh"])
def test_deploy_scripts_parse(name):
    proc = subprocess.run(["bash", "-n", os.path.join(DEPLOY, name)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("method, extra, combine", [
    ("median", [], lambda b: np.median(b, axis=0)),
    ("percentile", ["--background-pct", "20"], lambda b: np.percentile(b, 20, axis=0)),
])
def test_background_from_median_or_percentile(tmp_path, method, extra, combine):
    scan = make_scan(tmp_path / "s", npt_y=2, npt_x=3, frame_shape=(32, 32), n_background=5,
                     mask=False)
    out = tmp_path / "bg.zarr"
    code = cli.main(["composite", os.path.join(scan.directory, "scan_*.edf"), "--npt-y", "2",
                     "--npt-x", "3", "--binning", "4", "-o", str(out), "-q", "--background",
                     *scan.background_files, "--background-method", method, *extra])
    assert code == 0
    import fabio

    bkg = np.stack([fabio.open(p).data for p in scan.background_files]).astype(np.float64)
    frames = np.stack([fabio.open(p).data for p in scan.files]).astype(np.float32)
    corrected = frames - combine(bkg).astype(np.float32)
    got = read_maps(out)
    np.testing.assert_allclose(got["roi_sum"].ravel(), corrected.sum(axis=(1, 2)), rtol=1e-5)
    # a percentile without Q, or a method without frames, is refused before anything runs
    assert cli.main(["composite", os.path.join(scan.directory, "scan_*.edf"), "--npt-y", "2",
                     "--npt-x", "3", "-o", str(tmp_path / "no.zarr"), "-q",
                     "--background-method", "median"]) == 2
    assert not (tmp_path / "no.zarr").exists()


def test_hpc_flags_reach_the_execution_spec():
    args = cli.build_parser().parse_args(
        ["run", "job.yaml", "--scheduler", "slurm", "--walltime", "02:00:00", "--lifetime",
         "50m", "--lifetime-stagger", "4m", "--worker-memory-fraction", "0.8", "--tls", "on"])
    spec = cli.execution_spec(args)
    assert (spec.lifetime, spec.lifetime_stagger, spec.worker_memory_fraction, spec.tls) == \
        ("50m", "4m", 0.8, True)
    args = cli.build_parser().parse_args(["run", "job.yaml", "--scheduler", "local",
                                          "--tls", "off"])
    assert cli.execution_spec(args).tls is False
    args = cli.build_parser().parse_args(["run", "job.yaml", "--worker-memory-fraction", "2",
                                          "--scheduler", "slurm"])
    with pytest.raises(Exception) as err:
        cli.execution_spec(args)
    assert "worker_memory_fraction" in str(err.value)


def test_usage_errors_are_one_line(capsys, tmp_path):
    """argparse's own errors: one line naming the command and the problem, exit 2; a
    several-valued option before the inputs gets a hint."""
    for argv, words in ((["composite", "--invalid", "none", "x.edf", "--npt-y", "2",
                          "--npt-x", "3", "-o", str(tmp_path / "a.zarr")],
                         "after the inputs"),
                        (["composite", "x.edf", "--npt-y", "2", "--npt-x", "3", "--step",
                          "0.1", "-o", str(tmp_path / "a.zarr")], "--step"),
                        (["frobnicate"], "invalid choice")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "--help" in err, err
    assert not (tmp_path / "a.zarr").exists()
