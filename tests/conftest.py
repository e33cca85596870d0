"""Shared fixtures: small synthetic scans (real EDF files) and a real 2-process LocalCluster."""
from __future__ import annotations

import pytest

from xrsmap_dask import synth


@pytest.fixture(scope="session")
def small_scan(tmp_path_factory):
    """A 4 x 6 raster scan of 48 x 40 uint16 EDF frames with varying header lengths."""
    return synth.make_scan(tmp_path_factory.mktemp("small_scan"), npt_y=4, npt_x=6,
                           frame_shape=(48, 40), n_background=2, hdf5=True, seed=3)


@pytest.fixture(scope="session")
def cluster_client():
    """A distributed.Client on a LocalCluster with 2 worker processes (closed at the end)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", host="127.0.0.1") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def local_cluster():
    """A LocalCluster of 2 worker processes, one per test module (tests may kill workers)."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", host="127.0.0.1")
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def client(local_cluster):
    """A distributed.Client on the module's :func:`local_cluster`, the default scheduler
    while the module's tests run."""
    from distributed import Client

    with Client(local_cluster) as c:
        yield c


# the reliability tables' shared harness (tests/_reliability.py) holds the asserts of their
# test_bad_input: have pytest rewrite them as it does a test module's
pytest.register_assert_rewrite("_reliability")


# -- counting real file opens (an audit hook) ----------------------------------------------
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402


class OpenCounter:
    """Counts real ``open`` audit events on given paths (one process-wide hook)."""

    paths: set = set()
    counts: dict = {}
    lock = threading.Lock()
    installed = False

    def __init__(self, paths):
        self.watch = {os.fspath(p) for p in paths}

    def __enter__(self):
        cls = type(self)
        with cls.lock:
            cls.paths, cls.counts = self.watch, {}
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True
        return self

    def __exit__(self, *exc):
        cls = type(self)
        with cls.lock:
            cls.paths = set()
            self.counts = dict(cls.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def _hook(cls, event, args):
        if event == "open" and cls.paths and isinstance(args[0], str) and args[0] in cls.paths:
            with cls.lock:
                cls.counts[args[0]] = cls.counts.get(args[0], 0) + 1


@pytest.fixture
def open_counter():
    """``with open_counter(paths) as c: ...``: then ``c.counts`` (path -> real opens) and
    ``c.total`` (a process-wide audit hook, so counts include dask's worker threads)."""
    return OpenCounter


@pytest.fixture(scope="session")
def poni_map_scan(tmp_path_factory):
    """50 int32 EDF frames (a 5 x 10 scan) of a tilted Pilatus 300k (its module gaps at -1,
    a user mask of hot pixels) with rings at known q, and the PONI file
    (``synth.make_poni_scan``): for rings and radial bins in physical units."""
    return synth.make_poni_scan(tmp_path_factory.mktemp("poni_map_scan"), npt_y=5, npt_x=10,
                                rot1=0.03, rot2=-0.02, rot3=0.4)
