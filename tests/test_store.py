"""Zarr output: named dims and attrs, resume after SIGKILL, lock, bad-frame fill, cluster."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import dask
import fabio
import numpy as np
import pytest
import xarray as xr
import zarr

import xrsmap_dask
from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import FrameReadError, InputError
from xrsmap_dask.layout import decode_attrs
from xrsmap_dask.maps import MapSpec, build_maps, rings
from xrsmap_dask.mapper import Mapper
from xrsmap_dask.scan import ScanGeometry
from xrsmap_dask.store import OutputLock, OutputLockedError, read_attrs, write_maps

NY, NX = 12, 8          # the resume job: 96 frames, one map row per chunk -> 12 chunks
SHAPE = (48, 48)


@pytest.fixture(scope="module")
def job_scan(tmp_path_factory):
    return synth.make_scan(tmp_path_factory.mktemp("store"), npt_y=NY, npt_x=NX,
                           frame_shape=SHAPE, seed=21, vary_headers=True)


@pytest.fixture(scope="module")
def raw(job_scan):
    return np.stack([fabio.open(f).data for f in job_scan.files]).astype(np.float64)


def _spec(scan):
    return MapSpec(roi=(slice(8, 40), slice(0, 48)), binning=8,
                   rings=rings(scan.centre[0], scan.centre[1], scan.radii, 2.5))


def _arrays(path):
    g = zarr.open_group(store=str(path), mode="r")
    return {name: g[name][:] for name in ("composite", "roi_sum", "annulus_sum", "chunk_done")}


def _attrs(path):
    a = read_attrs(path)
    a.pop("date")
    return a


def test_zarr_group_opens_with_xarray(job_scan, raw, tmp_path):
    ims = imageseries.from_files(job_scan.files)
    maps = build_maps(ims, _spec(job_scan), ScanGeometry(NY, NX), frames_per_chunk=16)
    res = write_maps(maps, tmp_path / "out.zarr", ims)
    assert not res.skipped and res.computed_chunks == list(range(6))
    ds = xr.open_zarr(tmp_path / "out.zarr")
    assert ds["composite"].dims == ("y", "x", "det_y", "det_x")
    assert ds["composite"].shape == (NY, NX, 4, 6)
    assert ds["roi_sum"].dims == ("y", "x") and ds["annulus_sum"].dims == ("ring", "y", "x")
    assert ds.attrs["complete"] == "true"      # bools as JSON: netCDF-4 has no bool attrs
    assert ds.attrs["binning"] == 8
    attrs = read_attrs(tmp_path / "out.zarr")     # structured attrs decoded from JSON
    assert attrs["roi"]["xrsmap"] == [0, 8, 47, 39]
    assert attrs["rings"][1]["radius"] == pytest.approx(job_scan.radii[1])
    np.testing.assert_allclose(ds["ring"].values, job_scan.radii)
    assert "ring" in ds.coords and ds["ring_width"].values.tolist() == [2.5] * 3
    assert attrs["scan"] == {"npt_y": NY, "npt_x": NX, "kind": "raster",
                             "allow_incomplete": False}
    assert ds.attrs["xrsmap_dask_version"] == xrsmap_dask.__version__
    assert ds.attrs["date"].startswith("20") and len(ds.attrs["inputs_digest"]) == 40
    assert attrs["corrections"]["mask"] is None and attrs["bad_frames"] == []
    # composite chunks cover whole frames
    assert ds["composite"].encoding["chunks"][2:] == (4, 6)
    np.testing.assert_allclose(ds["roi_sum"].values.ravel(), raw[:, 8:40].sum((1, 2)))
    comp = ds["composite"].values.reshape(-1, 4, 6)
    np.testing.assert_allclose(comp, raw[:, 8:40].reshape(-1, 4, 8, 6, 8).sum((2, 4)),
                               rtol=1e-6)


def test_complete_output_is_left_alone(open_counter, job_scan, tmp_path):
    ims = imageseries.from_files(job_scan.files)
    maps = build_maps(ims, _spec(job_scan), ScanGeometry(NY, NX), frames_per_chunk=16)
    out = tmp_path / "out.zarr"
    write_maps(maps, out, ims)
    with open_counter(job_scan.files) as c:
        res = write_maps(maps, out, ims)
    assert res.skipped and res.computed_chunks == [] and c.total == 0
    with open_counter(job_scan.files) as c:
        res = write_maps(maps, out, ims, overwrite=True)
    assert not res.skipped and c.total == NY * NX
    other = build_maps(ims, MapSpec(binning=4), ScanGeometry(NY, NX))
    with pytest.raises(InputError, match="different job") as err:
        write_maps(other, out, ims)
    assert err.value.argument == "output"
    assert not os.path.exists(str(out) + ".lock")


KILL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from dask.callbacks import Callback
    from xrsmap_dask.maps import MapSpec, rings
    from xrsmap_dask.mapper import Mapper

    files, out, marker, stop_after = json.loads(sys.argv[1])
    scan = json.loads(open(sys.argv[2]).read())

    class StopMidway(Callback):
        done = 0

        def _posttask(self, key, result, dsk, state, worker_id):
            name = key[0] if isinstance(key, tuple) else key
            if str(name).startswith("map-reduce-write-"):   # one task per unit
                StopMidway.done += 1
                if StopMidway.done == stop_after:
                    open(marker, "w").close()
                    time.sleep(600)  # wait here to be killed

    with StopMidway():
        Mapper(scan["npt_x"], scan["npt_y"]).maps(
            files, roi=(0, 8, 47, 39), binning=8,
            rings=rings(scan["centre"][0], scan["centre"][1], scan["radii"], 2.5),
            output=out, frames_per_chunk=8, scheduler="synchronous")
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_interrupt_then_resume(open_counter, job_scan, tmp_path, sig):
    out = str(tmp_path / "killed.zarr")
    marker = str(tmp_path / "stopped")
    script = tmp_path / "job.py"
    script.write_text(KILL_SCRIPT)
    stop_after = 5
    proc = subprocess.Popen([sys.executable, str(script),
                             json.dumps([job_scan.files, out, marker, stop_after]),
                             os.path.join(job_scan.directory, "scan.json")])
    try:
        t0 = time.time()
        while not os.path.exists(marker):
            assert proc.poll() is None, "the job ended before reaching the marker"
            assert time.time() - t0 < 60, "the job did not reach the marker"
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # state left by the interrupted job: 5 chunks done, not complete; SIGKILL leaves a stale
    # lock (taken over below), Ctrl-C (KeyboardInterrupt) releases it on the way out
    g = zarr.open_group(store=out, mode="r")
    done = g["chunk_done"][:].astype(bool)
    assert int(done.sum()) == stop_after
    missing = np.flatnonzero(~done).tolist()
    assert decode_attrs(g.attrs)["complete"] is False
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and os.path.exists(out + ".lock")
    else:
        assert proc.returncode != 0 and not os.path.exists(out + ".lock")

    mapper = Mapper(NX, NY)
    rs = rings(job_scan.centre[0], job_scan.centre[1], job_scan.radii, 2.5)
    ims = imageseries.from_files(job_scan.files)
    with open_counter(job_scan.files) as c:
        # another frames_per_chunk (here 'auto'): resumed in the partial output's layout
        mapper.maps(ims, roi=(0, 8, 47, 39), binning=8, rings=rs, output=out)
    assert mapper.last_store.computed_chunks == missing
    # only the missing chunks' frames (one map row = one chunk here) are read again
    assert c.total == (NY - stop_after) * NX < NY * NX
    for row in range(NY):
        for f in job_scan.files[row * NX:(row + 1) * NX]:
            assert c.counts.get(f, 0) == (0 if done[row] else 1)
    assert not os.path.exists(out + ".lock")

    full = str(tmp_path / "full.zarr")
    Mapper(NX, NY).maps(job_scan.files, roi=(0, 8, 47, 39), binning=8, rings=rs, output=full,
                        frames_per_chunk=8)
    got, want = _arrays(out), _arrays(full)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert _attrs(out) == _attrs(full)
    assert _attrs(out)["complete"] is True


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from xrsmap_dask.store import OutputLock
    OutputLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(600)
""")


def test_second_writer_refused_and_stale_lock_taken_over(job_scan, tmp_path):
    out = str(tmp_path / "locked.zarr")
    script = tmp_path / "hold.py"
    script.write_text(HOLD_LOCK)
    proc = subprocess.Popen([sys.executable, str(script), out], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        ims = imageseries.from_files(job_scan.files)
        maps = build_maps(ims, _spec(job_scan), ScanGeometry(NY, NX))
        with pytest.raises(OutputLockedError, match=f"pid {proc.pid}") as err:
            write_maps(maps, out, ims)
        assert err.value.argument == "output"
        assert not os.path.exists(os.path.join(out, "zarr.json"))
        # in-process second lock is refused as well
        with pytest.raises(OutputLockedError):
            OutputLock(out).acquire()
    finally:
        proc.kill()
        proc.wait()
    # the holder is dead now: its lock is stale and taken over
    res = write_maps(maps, out, ims)
    assert not res.skipped and read_attrs(out)["complete"] is True
    assert not os.path.exists(out + ".lock")


@pytest.fixture(scope="module")
def fill_scan(tmp_path_factory):
    """A 20 x 20 scan of 24 x 24 frames with 2 truncated, 1 corrupt-header and 1 missing."""
    s = synth.make_scan(tmp_path_factory.mktemp("fill"), npt_y=20, npt_x=20,
                        frame_shape=(24, 24), seed=7, vary_headers=False)
    raw = np.stack([fabio.open(f).data for f in s.files]).astype(np.float64)
    bad = {13: "truncated", 177: "truncated", 250: "header", 391: "missing"}
    for i, how in bad.items():
        f = s.files[i]
        if how == "truncated":
            size = os.path.getsize(f)
            with open(f, "r+b") as fh:
                fh.truncate(size - 300)
        elif how == "header":
            with open(f, "r+b") as fh:
                fh.write(b"\x00\x13garbage")
        else:
            os.remove(f)
    return s, raw, bad


def test_fill_bad_frames(fill_scan, tmp_path):
    s, raw, bad = fill_scan
    with pytest.raises(FrameReadError) as err:
        Mapper(20, 20).composite_map(s.files)
    assert err.value.path == s.files[13]
    out = str(tmp_path / "fill.zarr")
    m = Mapper(20, 20, dummy=-1, on_error="fill", output=out)
    comp, sums = m.composite_map(s.files, binning=4)
    ring = m.circle_map(s.files, cen_x=12, cen_y=11, radius=6, width=2,
                        output=str(tmp_path / "ring.zarr"))
    good = np.ones(400, bool)
    good[list(bad)] = False
    isnan = np.isnan(sums).ravel()
    assert np.flatnonzero(isnan).tolist() == sorted(bad)
    assert np.flatnonzero(np.isnan(ring).ravel()).tolist() == sorted(bad)
    np.testing.assert_allclose(sums.ravel()[good], raw[good].sum((1, 2)))
    yy, xx = np.indices((24, 24))
    d = np.hypot(yy - 11, xx - 12)
    sel = (d >= 5) & (d <= 7)
    np.testing.assert_allclose(ring.ravel()[good], raw[good][:, sel].sum(1))
    tiles = comp.reshape(20, 6, 20, 6).transpose(0, 2, 1, 3).reshape(400, 6, 6)
    np.testing.assert_allclose(tiles[good], raw[good].reshape(-1, 6, 4, 6, 4).sum((2, 4)),
                               rtol=1e-6)
    assert np.all(tiles[~good] == -1)
    # the same without an output (in memory)
    comp2, sums2 = Mapper(20, 20, dummy=-1, on_error="fill").composite_map(s.files, binning=4)
    np.testing.assert_array_equal(comp2, comp)
    np.testing.assert_array_equal(sums2, sums)
    for path in (out, str(tmp_path / "ring.zarr")):
        attrs = read_attrs(path)
        listed = attrs["bad_frames"]
        assert [b[0] for b in listed] == sorted(bad)
        assert [b[1] for b in listed] == [s.files[i] for i in sorted(bad)]
        reasons = {b[0]: b[2] for b in listed}
        assert "truncated" in reasons[13] and "not found" in reasons[391]
        assert attrs["complete"] is True and attrs["on_error"] == "fill"


def test_same_results_on_threads_and_cluster(job_scan, client, tmp_path):
    rs = rings(job_scan.centre[0], job_scan.centre[1], job_scan.radii, 2.5)
    kw = dict(roi=(0, 8, 47, 39), binning=4, rings=rs, frames_per_chunk=16)
    local = Mapper(NX, NY, mask=job_scan.mask_file).maps(job_scan.files, scheduler="threads",
                                                         **kw)
    dist = Mapper(NX, NY, mask=job_scan.mask_file).maps(job_scan.files, client=client, **kw)
    stored = Mapper(NX, NY, mask=job_scan.mask_file).maps(
        job_scan.files, client=client, output=str(tmp_path / "c.zarr"), **kw)
    for name in ("composite", "roi_sum", "annulus_sum"):
        np.testing.assert_array_equal(dist[name], local[name])
        np.testing.assert_array_equal(stored[name], local[name])
    # the composite tasks really ran on the worker processes
    assert read_attrs(tmp_path / "c.zarr")["complete"] is True


@pytest.mark.parametrize("kind", ["snake", "column", "positions"])
def test_store_every_scan_kind(job_scan, tmp_path, kind):
    ims = imageseries.from_files(job_scan.files)
    if kind == "positions":
        perm = np.random.default_rng(9).permutation(NY * NX)
        scan = ScanGeometry(NY, NX, positions=np.stack(np.divmod(perm, NX), axis=1))
    else:
        scan = ScanGeometry(NY, NX, kind=kind)
    maps = build_maps(ims, _spec(job_scan), scan, frames_per_chunk=20)
    res = write_maps(maps, tmp_path / "k.zarr", ims)
    assert res.nchunks == maps.plan.nchunks > 1
    got = _arrays(tmp_path / "k.zarr")
    want = dict(zip(maps.arrays(), dask.compute(*maps.arrays().values())))
    for name, arr in want.items():
        np.testing.assert_array_equal(got[name], arr)
    assert got["chunk_done"].all()


def test_output_killed_while_being_created_is_recreated(job_scan, tmp_path):
    out = str(tmp_path / "half.zarr")
    # what a job killed inside its creation step leaves: the group, no arrays, no job attrs
    zarr.open_group(store=out, mode="w", zarr_format=3,
                    attributes={"xrsmap_dask_format": 1, "creating": True})
    ims = imageseries.from_files(job_scan.files)
    maps = build_maps(ims, _spec(job_scan), ScanGeometry(NY, NX))
    res = write_maps(maps, out, ims)
    assert not res.skipped and len(res.computed_chunks) == res.nchunks
    attrs = read_attrs(out)
    assert attrs["complete"] is True and "creating" not in attrs
    # a foreign zarr group is never replaced without overwrite=True
    other = str(tmp_path / "foreign.zarr")
    zarr.open_group(store=other, mode="w", zarr_format=3, attributes={"owner": "someone"})
    with pytest.raises(InputError, match="different job"):
        write_maps(maps, other, ims)
    assert zarr.open_group(store=other, mode="r").attrs["owner"] == "someone"


def test_frame_unreadable_at_read_time_is_listed(tmp_path):
    s = synth.make_scan(tmp_path / "late", npt_y=3, npt_x=4, frame_shape=(16, 16), seed=2)
    ims = imageseries.from_files(s.files, on_error="fill")
    assert ims.bad_frames == []
    with open(s.files[5], "r+b") as fh:          # damaged after the series was opened
        fh.truncate(os.path.getsize(s.files[5]) - 100)
    maps = build_maps(ims, MapSpec(binning=4), ScanGeometry(3, 4))
    res = write_maps(maps, tmp_path / "late.zarr", ims)
    assert res.bad_frames == [[5, s.files[5], "read as NaN (unreadable when read)"]]
    g = zarr.open_group(store=str(tmp_path / "late.zarr"), mode="r")
    assert np.flatnonzero(np.isnan(g["roi_sum"][:]).ravel()).tolist() == [5]
    assert np.all(g["composite"][1, 1] == 0)     # dummy (0) in the composite
    assert read_attrs(tmp_path / "late.zarr")["bad_frames"] == res.bad_frames


def test_composite_only_fill_records_frames_damaged_after_open(tmp_path):
    from xrsmap_dask import imageseries
    from xrsmap_dask.maps import MapSpec, build_maps
    from xrsmap_dask.scan import ScanGeometry
    from xrsmap_dask.store import write_maps
    from xrsmap_dask.synth import make_scan

    scan = make_scan(tmp_path / "scan", 2, 3, (16, 16), mask=False)
    ims = imageseries.from_files(scan.files, on_error="fill")
    with open(scan.files[4], "r+b") as f:          # damaged after open: found while reading
        f.truncate(os.path.getsize(scan.files[4]) - 10)
    maps = build_maps(ims, MapSpec(binning=4, roi_sum=False), ScanGeometry(2, 3))
    result = write_maps(maps, tmp_path / "o.zarr", ims)
    assert [b[0] for b in result.bad_frames] == [4]
    assert scan.files[4] in result.bad_frames[0][1]
