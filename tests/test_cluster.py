"""Execution backends: spec validation, threads/processes/pathos/distributed give identical
maps, dask-jobqueue job scripts, progress output and a worker killed mid-job."""
from __future__ import annotations

import io
import os
import sys

import dask
import dask.array
import numpy as np
import pytest

from xrsmap_dask.cluster import (ExecutionSpec, execution, jobqueue_kwargs,
                                 make_jobqueue_cluster)
from xrsmap_dask.errors import InputError
from xrsmap_dask.imageseries import from_files
from xrsmap_dask.synth import make_scan

# the scheduler's HTTP server moves off 8787 when an earlier cluster holds it: harmless
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use")

ROI = (slice(10, 50), slice(6, 58))  # numpy style, stop exclusive


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return make_scan(tmp_path_factory.mktemp("scan"), npt_y=4, npt_x=5, frame_shape=(64, 64))


def reference_sum_map(scan) -> np.ndarray:
    import fabio

    out = np.empty(scan.nframes)
    for i, path in enumerate(scan.files):
        out[i] = fabio.open(path).data[ROI].astype(np.float64).sum()
    return out.reshape(scan.npt_y, scan.npt_x)


def lazy_sum_map(scan, frames_per_chunk=3):
    stack = from_files(scan.files).to_dask(roi=ROI, frames_per_chunk=frames_per_chunk)
    return stack.astype(np.float64).sum(axis=(1, 2)).reshape(scan.npt_y, scan.npt_x)


# -- spec ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, argument", [
    (dict(kind="gpu"), "scheduler"),
    (dict(kind="local", n_workers=0), "n_workers"),
    (dict(kind="local", threads_per_worker=-1), "threads_per_worker"),
    (dict(kind="slurm", cores=2.5), "cores"),
    (dict(kind="slurm", memory="lots"), "memory"),
    (dict(kind="slurm", walltime="1 hour"), "walltime"),
    (dict(kind="slurm", adaptive_min=3, adaptive_max=1), "adaptive_min"),
    (dict(kind="slurm", adaptive_min=1), "adaptive_max"),
    (dict(kind="address"), "address"),
    (dict(kind="threads", address="tcp://127.0.0.1:1"), "address"),
    (dict(kind="threads", threads_per_worker=2), "threads_per_worker"),
    (dict(kind="local", dashboard=3), "dashboard"),
    (dict(kind="local", cores=4), "cores"),
    (dict(kind="threads", walltime="01:00:00"), "walltime"),
    (dict(kind="address", address="tcp://127.0.0.1:1", n_workers=2), "n_workers"),
])
def test_spec_rejects_bad_options(kwargs, argument):
    with pytest.raises(InputError) as err:
        ExecutionSpec(**kwargs)
    assert err.value.argument == argument
    assert argument in str(err.value)


def test_from_scheduler_parses_kinds_addresses_and_files(tmp_path):
    assert ExecutionSpec.from_scheduler(None).kind == "threads"
    assert ExecutionSpec.from_scheduler("pathos", n_workers=2).n_workers == 2
    spec = ExecutionSpec.from_scheduler("tcp://10.0.0.1:8786", n_workers=None)
    assert (spec.kind, spec.address) == ("address", "tcp://10.0.0.1:8786")
    f = tmp_path / "sched.json"
    assert ExecutionSpec.from_scheduler(str(f)).address == str(f)  # .json: a scheduler file
    with pytest.raises(InputError, match="scheduler"):
        ExecutionSpec.from_scheduler("nonsense")
    with pytest.raises(InputError, match="memory"):
        ExecutionSpec.from_scheduler("slurm", memory="-1GB")


def test_spec_is_frozen():
    spec = ExecutionSpec()
    with pytest.raises(Exception):
        spec.kind = "local"  # type: ignore[misc]
    assert spec.replace(kind="local").kind == "local"


def test_missing_scheduler_file_is_a_clear_error(tmp_path):
    spec = ExecutionSpec(kind="address", address=str(tmp_path / "none.json"))
    with pytest.raises(InputError, match="scheduler file not found"):
        with execution(spec, quiet=True):
            pass


# -- local backends give identical maps -----------------------------------------------------
@pytest.mark.parametrize("kind", ["threads", "processes", "pathos"])
def test_local_backends_identical(scan, kind):
    ref = reference_sum_map(scan)
    with execution(ExecutionSpec(kind=kind, n_workers=2), quiet=True) as ex:
        (got,) = ex.compute(lazy_sum_map(scan))
        # plain .compute() inside the block uses the same scheduler
        again = lazy_sum_map(scan, frames_per_chunk=7).compute()
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(again, ref)


def test_pathos_runs_tasks_in_other_processes(scan):
    def pid_block(block):
        return np.full(block.shape[:1], os.getpid(), dtype=np.int64)

    stack = from_files(scan.files).to_dask(roi=ROI, frames_per_chunk=2)
    pids = stack.map_blocks(pid_block, drop_axis=(1, 2), dtype=np.int64)
    with execution(ExecutionSpec(kind="pathos", n_workers=2), quiet=True) as ex:
        (got,) = ex.compute(pids)
    assert os.getpid() not in set(got.tolist())


def test_progress_bar_written_to_stream(scan):
    buf = io.StringIO()
    with execution(ExecutionSpec(), stream=buf) as ex:
        ex.compute(lazy_sum_map(scan), label="sum map")
    text = buf.getvalue()
    assert "sum map" in text and "100% Completed" in text
    quiet = io.StringIO()
    with execution(ExecutionSpec(), stream=quiet, quiet=True) as ex:
        ex.compute(lazy_sum_map(scan))
    assert quiet.getvalue() == ""


def assert_exited(pids) -> None:
    """The worker processes among ``pids`` exit (multiprocessing's helpers live on)."""
    import psutil

    workers = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if not any(s in " ".join(proc.cmdline()) for s in ("resource_tracker", "forkserver")):
                workers.append(proc)
        except psutil.NoSuchProcess:
            pass
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive


def test_interrupt_releases_pool_and_restores_scheduler(scan):
    import psutil

    me = psutil.Process()
    before_children = {p.pid for p in me.children(recursive=True)}
    before = dask.config.get("scheduler", None)
    with pytest.raises(KeyboardInterrupt):
        with execution(ExecutionSpec(kind="pathos", n_workers=2), quiet=True) as ex:
            ex.compute(lazy_sum_map(scan))
            started = {p.pid for p in me.children(recursive=True)} - before_children
            assert started  # the pool's worker processes
            raise KeyboardInterrupt
    assert dask.config.get("scheduler", None) == before
    assert_exited(started)


def _listening(procs) -> set:
    out = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except Exception:  # noqa: BLE001 - a process that just exited
            continue
        out |= {(p.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == "LISTEN"}
    return out


def test_local_cluster_binds_localhost_and_interrupt_closes_it():
    import psutil

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    listening_before = _listening([me])
    buf = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with execution(ExecutionSpec(kind="local", n_workers=1), stream=buf) as ex:
            cluster = ex.cluster
            assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
            assert ex.dashboard_link.startswith("http://127.0.0.1:")
            started = {p.pid for p in me.children(recursive=True)} - before
            assert started  # the worker process
            new = _listening([me] + [psutil.Process(pid) for pid in started]) - listening_before
            assert new  # scheduler, dashboard, worker
            assert {ip for _, ip, _ in new} == {"127.0.0.1"}
            raise KeyboardInterrupt
    assert "dask dashboard: http://127.0.0.1:" in buf.getvalue()
    assert cluster.status.name == "closed"
    assert_exited(started)


# -- distributed: LocalCluster, faults -----------------------------------------------------
def kill_once(block, marker):
    """Task body that kills its worker process the first time any task runs it."""
    if block.size == 0:
        return block
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return block
    os.close(fd)
    os._exit(1)


def test_address_backend_identical_and_binds_localhost(scan, local_cluster):
    ref = reference_sum_map(scan)
    with execution(ExecutionSpec(kind="address", address=local_cluster.scheduler_address),
                   quiet=True) as ex:
        assert ex.client is not None
        (got,) = ex.compute(lazy_sum_map(scan))
    np.testing.assert_array_equal(got, ref)
    assert local_cluster.scheduler_address.startswith("tcp://127.0.0.1:")


def test_worker_killed_mid_job_gives_identical_map(scan, local_cluster, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        ref = reference_sum_map(scan)
        marker = str(tmp_path / "killed-once")
        stack = from_files(scan.files).to_dask(roi=ROI, frames_per_chunk=2)
        # meta given: dask must not call kill_once here to guess the output type
        stack = stack.map_blocks(kill_once, marker, dtype=stack.dtype,
                                 meta=np.empty((0, 0, 0), stack.dtype))
        lazy = stack.astype(np.float64).sum(axis=(1, 2)).reshape(scan.npt_y, scan.npt_x)
        buf = io.StringIO()
        spec = ExecutionSpec(kind="address", address=local_cluster.scheduler_address)
        with execution(spec, stream=buf) as ex:
            (got,) = ex.compute(lazy)
        assert os.path.exists(marker)  # a worker did die
        np.testing.assert_array_equal(got, ref)
        assert len(ex.faults) >= 1 and ex.retries >= 1
        assert "was lost" in buf.getvalue()
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    # (an in-process LocalCluster's nanny may fail to restart the dead worker; the job does
    # not need it: the other worker took over)


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="needs openssl")
def test_tls_scheduler_uses_dask_config(tmp_path, scan):
    """A tls:// scheduler is reached with the certificates named in dask's config (and
    refused, with a clear error, without them)."""
    import subprocess

    from distributed import LocalCluster
    from distributed.security import Security

    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    key, "-out", cert, "-days", "1", "-subj", "/CN=dask-internal"],
                   check=True, capture_output=True)
    sec = Security(tls_ca_file=cert, tls_scheduler_cert=cert, tls_scheduler_key=key,
                   tls_worker_cert=cert, tls_worker_key=key, tls_client_cert=cert,
                   tls_client_key=key, require_encryption=True)
    x = np.arange(100.0).reshape(10, 10)
    lazy = dask.array.from_array(x, chunks=5).sum(axis=0)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, protocol="tls://", security=sec) as cluster:
        spec = ExecutionSpec(kind="address", address=cluster.scheduler_address)
        assert spec.address.startswith("tls://127.0.0.1:")
        cfg = {"distributed.comm.tls.ca-file": cert, "distributed.comm.tls.client.cert": cert,
               "distributed.comm.tls.client.key": key,
               "distributed.comm.require-encryption": True}
        with dask.config.set(cfg), execution(spec, quiet=True) as ex:
            (got,) = ex.compute(lazy)
        np.testing.assert_array_equal(got, x.sum(axis=0))
        # without TLS settings: exit code 2 and one clear line (in a separate process: a
        # failed client start leaves distributed's IO loop state behind)
        exe = os.path.join(os.path.dirname(sys.executable), "xrsmap-dask")
        env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="5s")
        proc = subprocess.run([exe, "composite", os.path.join(scan.directory, "scan_*.edf"),
                               "--npt-y", "4", "--npt-x", "5", "-o", str(tmp_path / "o.zarr"),
                               "--scheduler", spec.address], capture_output=True, text=True,
                              env=env, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "cannot connect to the scheduler" in proc.stderr
        assert "Traceback" not in proc.stderr


# -- dask-jobqueue ---------------------------------------------------------------------------
def _script_option(script: str, flag: str) -> str:
    words = script.split()
    return words[words.index(flag) + 1]


def _expected_lifetime(walltime_s: float) -> tuple[float, float]:
    """The documented rule (cluster/jobqueue.py), restated: stagger min(5 min, 5 %), a grace
    of 5 % within [2, 10] min after the latest retirement."""
    stagger = min(300, 0.05 * walltime_s)
    grace = min(600, max(120, 0.05 * walltime_s))
    return walltime_s - stagger - grace, stagger


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_jobqueue_job_script_holds_requested_resources(kind, tmp_path, monkeypatch):
    from dask.utils import parse_bytes, parse_timedelta

    monkeypatch.chdir(tmp_path)
    spec = ExecutionSpec(kind=kind, cores=8, memory="16GiB", walltime="01:30:00",
                         queue="short", account="proj42", threads_per_worker=2,
                         host="127.0.0.1", dashboard=False,
                         job_directives=("--exclusive",) if kind == "slurm" else ())
    cluster = make_jobqueue_cluster(spec)
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    assert "distributed.cli.dask_worker" in script or "dask worker" in script
    assert "--nthreads 2" in script and "--nworkers 4" in script
    assert "01:30:00" in script
    assert "proj42" in script and "short" in script
    if kind == "slurm":
        assert "#SBATCH --cpus-per-task=8" in script
        assert "#SBATCH --mem=16G" in script  # the job asks for all of its memory
        assert "#SBATCH --exclusive" in script
    else:
        assert "ncpus=8" in script and "mem=16GB" in script
    # the workers' limits leave headroom: 4 of them add up to 90 % of the job's 16 GiB
    per_worker = parse_bytes(_script_option(script, "--memory-limit"))
    assert 4 * per_worker == pytest.approx(0.9 * 16 * 2**30, rel=0.01)
    # lifetimes from the 90-minute walltime: the last worker retires >= 2 min before it
    lifetime = parse_timedelta(_script_option(script, "--lifetime"))
    stagger = parse_timedelta(_script_option(script, "--lifetime-stagger"))
    exp_lifetime, exp_stagger = _expected_lifetime(5400)
    assert (lifetime, stagger) == (pytest.approx(exp_lifetime, abs=1),
                                   pytest.approx(exp_stagger, abs=1))
    assert lifetime + stagger <= 5400 - 120
    # a scheduler on 127.0.0.1 needs no TLS by default
    assert address.startswith("tcp://127.0.0.1:") and "--tls-key" not in script


@pytest.mark.parametrize("walltime, kind, seconds", [
    ("01:30:00", "slurm", 5400), ("2-00:00:00", "pbs", 172800), ("1-12", "slurm", 129600),
    ("45", "slurm", 2700), ("45", "pbs", 45), ("10:30", "slurm", 630),
])
def test_walltime_formats(walltime, kind, seconds):
    from xrsmap_dask.cluster.jobqueue import walltime_seconds

    assert walltime_seconds(walltime, kind) == seconds


def test_lifetime_rule_keeps_every_worker_inside_the_walltime():
    from xrsmap_dask.cluster.jobqueue import worker_lifetime

    assert worker_lifetime(240) is None  # too short to retire gracefully
    for walltime in (300, 600, 1800, 3600, 7200, 86400, 172800):
        lifetime, stagger = worker_lifetime(walltime)
        assert 0 < stagger < lifetime
        assert lifetime + stagger <= walltime - 120      # >= 2 min to hand results over
        if walltime >= 1800:
            assert lifetime - stagger >= 0.8 * walltime  # and most of the job is used


@pytest.mark.parametrize("options, expect", [
    (dict(lifetime="55m"), ["--lifetime", "55m"]),
    (dict(lifetime="55m", lifetime_stagger="2m"), ["--lifetime", "55m", "--lifetime-stagger",
                                                    "2m"]),
    (dict(lifetime="none"), []),
    (dict(walltime="00:04:00"), []),
])
def test_lifetime_options(options, expect, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kw = jobqueue_kwargs(ExecutionSpec(kind="slurm", cores=2, memory="2GiB", host="127.0.0.1",
                                       dashboard=False, **options))
    assert kw["worker_extra_args"] == expect


@pytest.mark.parametrize("kwargs, argument", [
    (dict(kind="slurm", lifetime="soon"), "lifetime"),
    (dict(kind="slurm", lifetime_stagger="-5m"), "lifetime"),
    (dict(kind="slurm", worker_memory_fraction=1.5), "worker_memory_fraction"),
    (dict(kind="local", lifetime="1h"), "lifetime"),
    (dict(kind="threads", tls=True), "tls"),
    (dict(kind="local", tls="yes"), "tls"),
])
def test_hpc_options_are_checked(kwargs, argument):
    with pytest.raises(InputError) as err:
        ExecutionSpec(**kwargs)
    assert err.value.argument == argument


def test_worker_memory_fraction_option(tmp_path, monkeypatch):
    from dask.utils import parse_bytes

    monkeypatch.chdir(tmp_path)
    spec = ExecutionSpec(kind="pbs", cores=4, memory="10GiB", threads_per_worker=1,
                         worker_memory_fraction=0.5, host="127.0.0.1", dashboard=False)
    cluster = make_jobqueue_cluster(spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert 4 * parse_bytes(_script_option(script, "--memory-limit")) == \
        pytest.approx(5 * 2**30, rel=0.01)


def test_jobqueue_scheduler_beyond_localhost_uses_tls(tmp_path, monkeypatch):
    """Listening on all interfaces (no host, no interface) means TLS by default; tls=True
    forces it on 127.0.0.1: the scheduler is tls:// and the job script hands the workers
    their credentials, written private (0600) to the shared directory."""
    monkeypatch.chdir(tmp_path)
    assert ExecutionSpec(kind="slurm").wants_tls(None)
    assert not ExecutionSpec(kind="slurm").wants_tls("127.0.0.1")
    assert not ExecutionSpec(kind="slurm", tls=False).wants_tls("10.1.2.3")
    assert ExecutionSpec(kind="slurm", tls=True).wants_tls("127.0.0.1")
    spec = ExecutionSpec(kind="slurm", cores=2, memory="2GiB", host="127.0.0.1",
                         dashboard=False, tls=True)
    cluster = make_jobqueue_cluster(spec)
    try:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        assert "--protocol tls://" in script
        for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
            path = _script_option(script, flag)
            assert os.path.dirname(path) == str(tmp_path)
            assert os.stat(path).st_mode & 0o077 == 0
    finally:
        cluster.close()


def test_jobqueue_falls_back_to_dask_config(tmp_path, monkeypatch):
    import dask_jobqueue  # noqa: F401 - its config defaults must exist before config.set

    monkeypatch.chdir(tmp_path)
    with dask.config.set({"jobqueue.slurm.cores": 3, "jobqueue.slurm.memory": "6GB",
                          "jobqueue.slurm.walltime": "00:07:00",
                          "jobqueue.slurm.scheduler-options": {"host": "127.0.0.1"}}):
        spec = ExecutionSpec(kind="slurm", dashboard=False)
        kw = jobqueue_kwargs(spec)
        assert "cores" not in kw and "walltime" not in kw  # left to jobqueue's config
        assert kw["scheduler_options"]["host"] == "127.0.0.1"
        assert "security" not in kw  # the configured host is loopback
        cluster = make_jobqueue_cluster(spec)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert "#SBATCH --cpus-per-task=3" in script and "00:07:00" in script
    # the lifetime comes from the configured walltime (7 minutes)
    from dask.utils import parse_timedelta

    assert parse_timedelta(_script_option(script, "--lifetime")) == \
        pytest.approx(_expected_lifetime(420)[0], abs=1)


def test_jobqueue_dashboard_binds_localhost_by_default():
    kw = jobqueue_kwargs(ExecutionSpec(kind="pbs", cores=2, memory="1GB"))
    assert kw["scheduler_options"]["dashboard_address"].startswith("127.0.0.1:")
    kw = jobqueue_kwargs(ExecutionSpec(kind="pbs", cores=2, memory="1GB",
                                       dashboard="0.0.0.0:9999"))
    assert kw["scheduler_options"]["dashboard_address"] == "0.0.0.0:9999"
    with pytest.raises(InputError, match="threads_per_worker"):
        jobqueue_kwargs(ExecutionSpec(kind="pbs", cores=3, threads_per_worker=2))


# -- what a cluster we start shows and accepts ---------------------------------------------
def test_printed_dashboard_link_is_where_the_scheduler_serves_it():
    """Scheduler on 127.0.0.2, dashboard on 127.0.0.1: the link printed is the dashboard's
    bound address (the scheduler's host would be refused) and it answers."""
    import urllib.request

    from distributed.comm.utils import get_tcp_server_addresses

    buf = io.StringIO()
    spec = ExecutionSpec(kind="local", n_workers=1, host="127.0.0.2", dashboard="127.0.0.1:0")
    with execution(spec, stream=buf) as ex:
        assert ex.client.scheduler.address.startswith("tcp://127.0.0.2:")
        host, port = get_tcp_server_addresses(ex.cluster.scheduler.http_server)[0][:2]
        assert (host, ex.dashboard_link) == ("127.0.0.1", f"http://127.0.0.1:{port}/status")
        with urllib.request.urlopen(ex.dashboard_link, timeout=20) as page:
            assert page.status == 200
    assert f"dask dashboard: http://127.0.0.1:{port}/status" in buf.getvalue()


def test_waiting_for_workers_line_before_the_progress_bar(scan):
    """An adaptive cluster starts with no worker: a line tracks them until one runs."""
    buf = io.StringIO()
    spec = ExecutionSpec(kind="local", adaptive_min=0, adaptive_max=1)
    with execution(spec, stream=buf) as ex:
        assert not ex.client.nthreads()  # no worker yet
        (got,) = ex.compute(lazy_sum_map(scan))
    np.testing.assert_array_equal(got, reference_sum_map(scan))
    text = buf.getvalue()
    assert "waiting for workers: 0 running, " in text
    assert text.index("waiting for workers") < text.index("100% Completed")


_PLAIN_CLIENT = """
import sys
from distributed import Client
try:
    Client(sys.argv[1], timeout="5s").close()
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
    sys.exit(3)
sys.exit(0)
"""


def test_tls_cluster_accepts_our_client_and_refuses_a_plain_one():
    x = np.arange(100.0).reshape(10, 10)
    lazy = dask.array.from_array(x, chunks=5).sum(axis=0)
    with execution(ExecutionSpec(kind="local", n_workers=1, tls=True), quiet=True) as ex:
        address = ex.client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        (got,) = ex.compute(lazy)
        np.testing.assert_array_equal(got, x.sum(axis=0))
        # a client without the credentials, by tls:// or plain tcp://, is refused (in
        # another process: a failed client leaves distributed's IO loop state behind)
        import subprocess

        for target in (address, address.replace("tls://", "tcp://")):
            proc = subprocess.run([sys.executable, "-c", _PLAIN_CLIENT, target],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 3, (target, proc.stdout, proc.stderr[-2000:])
    # and on the loopback interface TLS is off unless asked
    assert not ExecutionSpec(kind="local").wants_tls("127.0.0.1")
    assert ExecutionSpec(kind="local").wants_tls("0.0.0.0")


def test_map_graph_travels_without_per_frame_buffers(scan):
    """What the client sends a cluster: distributed pickles numpy arrays out of band, one
    protocol frame each; the read tasks' per-frame tables must travel inside the pickle (at
    most a few buffers per task, not one per array of every sub-read), and read the same."""
    import pickle

    from distributed.protocol.pickle import dumps, loads

    from xrsmap_dask.maps import MapSpec, build_maps
    from xrsmap_dask.scan import ScanGeometry

    ims = from_files(scan.files)
    block = ims.block_source(2, 9)
    buffers: list = []
    again = loads(dumps(block, buffer_callback=buffers.append), buffers=buffers)
    assert buffers == []
    np.testing.assert_array_equal(again.read(ROI), block.read(ROI))
    assert pickle.loads(pickle.dumps(block)).read(ROI).tobytes() == block.read(ROI).tobytes()
    maps = build_maps(ims, MapSpec(roi=ROI, binning=2), ScanGeometry(scan.npt_y, scan.npt_x),
                      frames_per_chunk=3)
    graph = dict(maps.composite.__dask_graph__())
    buffers = []
    dumps(graph, buffer_callback=buffers.append)
    assert len(buffers) <= 2 * len(graph)


def test_killed_worker_of_our_local_cluster_is_restarted():
    """Nannies hand dask's config to the worker processes they start: ours must pickle (the
    executor's scheduler hook travels as None), so a killed worker comes back."""
    import signal
    import time

    with execution(ExecutionSpec(kind="local", n_workers=1, dashboard=False), quiet=True) as ex:
        ((_, pid),) = ex.client.run(os.getpid).items()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        new = {pid}
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if ex.client.nthreads():
                new = set(ex.client.run(os.getpid).values())
                if new and pid not in new:
                    break
        assert new and pid not in new, "the nanny did not restart its worker"
        x = dask.array.arange(10, chunks=5).sum()
        assert ex.compute(x) == (45,)
