"""Security defaults of ``cluster`` (issue 7): the scheduler, workers and dashboards we start
listen on 127.0.0.1 only, for local clusters, jobqueue clusters and the CLI's options."""
from __future__ import annotations

import pytest

from _reliability import cli


def _listening(proc) -> set:
    import psutil

    try:
        return {(c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        return set()


def test_cluster_binds_to_localhost():
    cluster = pytest.importorskip("xrsmap_dask.cluster")
    import psutil

    spec = cluster.ExecutionSpec.from_scheduler("local", n_workers=1)
    assert spec.dashboard_address().startswith("127.0.0.1:")
    me = psutil.Process()
    before = _listening(me)
    old_children = {c.pid for c in me.children(recursive=True)}
    with cluster.execution(spec, quiet=True) as ex:
        assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = list(ex.client.scheduler_info()["workers"])
        assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)
        if ex.dashboard_link:
            assert ex.dashboard_link.startswith("http://127.0.0.1:")
        opened = _listening(me) - before
        for child in me.children(recursive=True):
            if child.pid not in old_children:   # the workers this cluster started
                opened |= _listening(child)
    assert opened, "the cluster opened no listening socket?"
    exposed = {a for a in opened if a[0] not in ("127.0.0.1", "::1")}
    assert not exposed, f"listening beyond localhost: {exposed}"


def test_jobqueue_and_cli_dashboards_default_to_localhost():
    cluster = pytest.importorskip("xrsmap_dask.cluster")
    pytest.importorskip("dask_jobqueue")
    for kind in ("slurm", "pbs"):
        kw = cluster.jobqueue_kwargs(cluster.ExecutionSpec(kind, cores=2, memory="1GiB"))
        assert kw["scheduler_options"]["dashboard_address"].startswith("127.0.0.1:")
    if cli is not None:
        args = cli.build_parser().parse_args(["composite", "x.edf", "--npt-y", "1", "--npt-x",
                                              "1", "-o", "o.zarr", "--scheduler", "local"])
        spec = cli.execution_spec(args)
        assert spec.kind == "local" and spec.host in (None, "127.0.0.1")
        assert spec.dashboard_address().startswith("127.0.0.1:")
