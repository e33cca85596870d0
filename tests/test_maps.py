"""Map graphs (composite, roi-sum, annulus) against numpy references on real EDF files."""
from __future__ import annotations

import sys
import threading

import dask
import fabio
import numpy as np
import pytest

from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.maps import (Corrections, MapSpec, Ring, apply_corrections, bin_frames,
                              build_maps, composite, mosaic, radial_bins, rings, roi_sum,
                              annulus_sum)
from xrsmap_dask.scan import ScanGeometry

NY, NX = 6, 4
SHAPE = (64, 48)


@pytest.fixture(scope="module")
def scan_files(tmp_path_factory):
    return synth.make_scan(tmp_path_factory.mktemp("maps"), npt_y=NY, npt_x=NX,
                           frame_shape=SHAPE, n_background=2, seed=5)


@pytest.fixture(scope="module")
def frames(scan_files):
    return np.stack([fabio.open(f).data for f in scan_files.files]).astype(np.float64)


def _ring_ref(frames, ring, mask=None):
    yy, xx = np.indices(frames.shape[1:], dtype=np.float64)
    d = np.sqrt((yy - ring.cen_y) ** 2 + (xx - ring.cen_x) ** 2)
    sel = (d >= ring.radius - ring.width / 2) & (d <= ring.radius + ring.width / 2)
    if mask is not None:
        sel &= mask == 0
    return frames[:, sel].sum(axis=1)


def _close(a, b, rtol=2e-6):
    scale = max(1.0, float(np.nanmax(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


# -- kernels ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32"])
@pytest.mark.parametrize("b", [1, 2, 4, 8])
def test_bin_frames(dtype, b):
    rng = np.random.default_rng(0)
    x = (rng.random((3, 16, 24)) * 60000).astype(dtype)
    ref = np.zeros((3, 16 // b, 24 // b))
    for i in range(16 // b):
        for j in range(24 // b):
            ref[:, i, j] = x[:, i * b:(i + 1) * b, j * b:(j + 1) * b].astype(np.float64).sum((1, 2))
    _close(bin_frames(x, b), ref)


def test_apply_corrections_order():
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 1000, (2, 5, 6)).astype(np.uint16)
    dark = rng.random((5, 6)) * 10
    flat = 0.5 + rng.random((5, 6))
    bg = rng.random((5, 6)) * 3
    mask = np.zeros((5, 6), bool)
    mask[1, 2] = True
    out = apply_corrections(raw, dark, flat, bg, mask, "float64")
    ref = (raw - dark) / flat - bg
    ref[:, 1, 2] = 0
    np.testing.assert_allclose(out, ref)


# -- graphs -------------------------------------------------------------------------------

def test_composite_roi_sum_annuli_one_pass(scan_files, frames):
    ims = imageseries.from_files(scan_files.files)
    cy, cx = scan_files.centre
    rs = rings(cy, cx, scan_files.radii, 3.0)
    roi = (slice(8, 40), slice(4, 44))
    spec = MapSpec(roi=roi, binning=4, rings=rs)
    m = build_maps(ims, spec, ScanGeometry(NY, NX), frames_per_chunk=5)
    comp, rsum, ann = dask.compute(m.composite, m.roi_sum, m.annulus_sum)
    assert comp.shape == (NY, NX, 8, 10) and comp.dtype == np.float32
    assert rsum.shape == (NY, NX) and rsum.dtype == np.float64
    assert ann.shape == (3, NY, NX) and ann.dtype == np.float64
    for i in range(NY * NX):
        iy, ix = divmod(i, NX)
        r = frames[i, 8:40, 4:44]
        _close(comp[iy, ix], r.reshape(8, 4, 10, 4).sum((1, 3)))
        _close(rsum[iy, ix], r.sum())
    for k, ring in enumerate(rs):
        _close(ann[k], _ring_ref(frames, ring).reshape(NY, NX))
    # the outer ring really is clipped by the frame edge
    assert scan_files.radii[2] + 1.5 > min(cy, cx)


def test_mosaic_layout():
    comp = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    mos = mosaic(comp)
    assert mos.shape == (8, 15)
    for iy in range(2):
        for ix in range(3):
            np.testing.assert_array_equal(mos[iy * 4:(iy + 1) * 4, ix * 5:(ix + 1) * 5],
                                          comp[iy, ix])


def test_corrections_and_norm(scan_files, frames):
    rng = np.random.default_rng(2)
    dark = rng.random(SHAPE) * 5
    flat = 0.8 + 0.4 * rng.random(SHAPE)
    bg = rng.random(SHAPE) * 4
    mask = np.zeros(SHAPE, np.uint8)
    mask[10:12, :] = 1
    mask[16:20, 8:12] = 1                      # a whole 4x4 bin excluded -> dummy
    norm = 1 + rng.random(NY * NX)
    corr = Corrections(dark=dark, flat=flat, background=bg, mask=mask, norm=norm, dummy=-7)
    ims = imageseries.from_files(scan_files.files)
    ring = Ring(scan_files.centre[0], scan_files.centre[1], scan_files.radii[1], 4)
    spec = MapSpec(roi=(slice(8, 40), slice(4, 44)), binning=4, rings=(ring,))
    m = build_maps(ims, spec, ScanGeometry(NY, NX), corr)
    comp, rsum, ann = dask.compute(m.composite, m.roi_sum, m.annulus_sum)
    x = (frames - dark) / flat - bg
    x[:, mask != 0] = 0
    r = x[:, 8:40, 4:44]
    binned = r.reshape(-1, 8, 4, 10, 4).sum((2, 4)) / norm[:, None, None]
    binned[:, 2, 1] = -7                        # rows 16:20, cols 8:12 of the frame
    _close(comp.reshape(-1, 8, 10), binned, rtol=1e-5)
    _close(rsum.ravel(), r.sum((1, 2)) / norm)
    _close(ann[0].ravel(), _ring_ref(x, ring, mask) / norm)


@pytest.mark.parametrize("kind", ["raster", "snake", "column"])
@pytest.mark.parametrize("fpc", [3, 4, 7, "auto"])
def test_placement(scan_files, frames, kind, fpc):
    ims = imageseries.from_files(scan_files.files)
    scan = ScanGeometry(NY, NX, kind=kind)
    rsum = roi_sum(ims, scan, frames_per_chunk=fpc).compute()
    comp = composite(ims, scan, binning=16, frames_per_chunk=fpc).compute()
    sums = frames.sum((1, 2))
    for i in range(NY * NX):
        if kind == "column":
            col, row = divmod(i, NY)
        else:
            row, col = divmod(i, NX)
            if kind == "snake" and row % 2:
                col = NX - 1 - col
        _close(rsum[row, col], sums[i])
        _close(comp[row, col], frames[i].reshape(4, 16, 3, 16).sum((1, 3)))


def test_explicit_positions_and_incomplete(scan_files, frames):
    ims = imageseries.from_files(scan_files.files[:NY * NX - 3])
    rng = np.random.default_rng(3)
    points = rng.permutation(NY * NX)[:NY * NX - 3]
    table = np.stack(np.divmod(points, NX), axis=1)
    scan = ScanGeometry(NY, NX, positions=table)
    m = build_maps(ims, MapSpec(binning=8), scan, frames_per_chunk=5)
    rsum, comp = dask.compute(m.roi_sum, m.composite)
    assert m.unfilled == 3
    seen = np.zeros((NY, NX), bool)
    for i, (r, c) in enumerate(table):
        _close(rsum[r, c], frames[i].sum())
        seen[r, c] = True
    assert np.isnan(rsum[~seen]).all() and np.isnan(comp[~seen]).all()
    # raster with an incomplete last row
    inc = ScanGeometry(NY, NX, allow_incomplete=True)
    rsum = roi_sum(ims, inc).compute()
    assert np.isnan(rsum).sum() == 3 and np.isnan(rsum[-1, 1:]).all()
    _close(rsum.ravel()[:NY * NX - 3], frames[:NY * NX - 3].sum((1, 2)))


def test_radial_bins(scan_files, frames):
    ims = imageseries.from_files(scan_files.files)
    cy, cx = scan_files.centre
    rs = radial_bins(cy, cx, [2, 6, 10, 14])
    ann = annulus_sum(ims, ScanGeometry(NY, NX), cy, cx, [r.radius for r in rs],
                      [r.width for r in rs]).compute()
    for k, ring in enumerate(rs):
        _close(ann[k].ravel(), _ring_ref(frames, ring))


class _OpenCounter:
    """Counts real ``open`` audit events on a set of paths (hooks cannot be removed, so one
    hook per process, switched on and off)."""

    counts: dict = {}
    paths: set = set()
    lock = threading.Lock()
    installed = False

    @classmethod
    def start(cls, paths):
        with cls.lock:
            cls.paths = {str(p) for p in paths}
            cls.counts = {}
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True

    @classmethod
    def stop(cls):
        with cls.lock:
            cls.paths = set()
            return dict(cls.counts)

    @classmethod
    def _hook(cls, event, args):
        if event == "open" and cls.paths:
            path = args[0]
            if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
                import os

                p = os.fsdecode(path) if not isinstance(path, str) else path
                if p in cls.paths:
                    with cls.lock:
                        cls.counts[p] = cls.counts.get(p, 0) + 1


@pytest.mark.parametrize("fuse", [True, False])
def test_each_file_read_once(scan_files, fuse):
    ims = imageseries.from_files(scan_files.files)
    cy, cx = scan_files.centre
    spec = MapSpec(roi=(slice(0, 32), slice(0, 48)), binning=2,
                   rings=rings(cy, cx, scan_files.radii, 2.0))
    m = build_maps(ims, spec, ScanGeometry(NY, NX), frames_per_chunk=4, fuse_reads=fuse)
    _OpenCounter.start(scan_files.files)
    try:
        dask.compute(m.composite, m.roi_sum, m.annulus_sum, scheduler="threads")
    finally:
        counts = _OpenCounter.stop()
    assert counts == {f: 1 for f in scan_files.files}
    # and separately built maps over different boxes would read twice: the counter sees it
    _OpenCounter.start(scan_files.files)
    try:
        dask.compute(roi_sum(ims, ScanGeometry(NY, NX)),
                     annulus_sum(ims, ScanGeometry(NY, NX), cy, cx, 5.0, 2.0))
    finally:
        counts = _OpenCounter.stop()
    assert set(counts.values()) == {2}


def test_annulus_only_reads_ring_box(scan_files):
    ims = imageseries.from_files(scan_files.files)
    cy, cx = scan_files.centre
    m = build_maps(ims, MapSpec(rings=(Ring(cy, cx, 5, 2),), composite=False, roi_sum=False),
                   ScanGeometry(NY, NX))
    box = m.plan.box
    assert box[0].stop - box[0].start <= 14 and box[1].stop - box[1].start <= 14
    assert (box[0].start, box[1].start) == (int(np.ceil(cy - 6)), int(np.ceil(cx - 6)))


@pytest.mark.parametrize("fpc", [4, "auto"])
def test_fused_and_unfused_reads_agree(scan_files, frames, fpc):
    ims = imageseries.from_files(scan_files.files)
    mask = np.zeros(SHAPE, bool)
    mask[5:9, 3:30] = True
    corr = Corrections(dark=np.full(SHAPE, 2.0), mask=mask, norm=np.arange(1, NY * NX + 1))
    spec = MapSpec(roi=(slice(0, 32), slice(8, 40)), binning=2,
                   rings=rings(scan_files.centre[0], scan_files.centre[1], [6, 12], 2.0))
    got = [dask.compute(*build_maps(ims, spec, ScanGeometry(NY, NX), corr, fpc,
                                    fuse_reads=fuse).arrays().values())
           for fuse in (True, False)]
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)
    _close(got[0][1].ravel(), ((frames[:, :32, 8:40] - 2) * ~mask[:32, 8:40]).sum((1, 2))
           / np.arange(1, NY * NX + 1))


def test_graph_is_batched(scan_files):
    ims = imageseries.from_files(scan_files.files)
    m = build_maps(ims, MapSpec(binning=4), ScanGeometry(NY, NX), frames_per_chunk=8)
    # 8 frames per read rounded down to 2 whole rows: 3 reads, 3 map chunks, not 24 tasks
    assert m.plan.frames_per_chunk == 8 and m.plan.nchunks == 3
    graph = dict(m.composite.__dask_graph__())
    names = [k[0] if isinstance(k, tuple) else k for k in graph]
    assert sum(n.startswith("map-reduce") for n in names) == 3   # fused read + reduce
    assert sum(n.startswith("composite") for n in names) == 3
    assert len(graph) <= 4 * 3 + 2
    unfused = build_maps(ims, MapSpec(binning=4), ScanGeometry(NY, NX), frames_per_chunk=8,
                         fuse_reads=False)
    names = [k[0] if isinstance(k, tuple) else k for k in dict(unfused.composite.dask)]
    assert sum(n.startswith("read-roi") for n in names) == 3


@pytest.mark.parametrize("make, argument, match", [
    (lambda ims: MapSpec(roi=(slice(0, 30), slice(0, 48)), binning=4), "binning",
     r"binnings that work: \[1, 2, 3, 5, 6, 10, 15, 30\]|binnings that work: \[1, 2, 3, 6\]"),
    (lambda ims: MapSpec(binning=0), "binning", "positive"),
    (lambda ims: MapSpec(rings=(Ring(500, 500, 10, 2),), composite=False, roi_sum=False),
     "rings", "no pixel inside"),
    (lambda ims: MapSpec(roi=(slice(0, 70), slice(0, 8))), "roi", "outside"),
])
def test_spec_errors(scan_files, make, argument, match):
    ims = imageseries.from_files(scan_files.files)
    with pytest.raises(InputError, match=match) as err:
        build_maps(ims, make(ims), ScanGeometry(NY, NX))
    assert err.value.argument == argument


def test_correction_shape_errors(scan_files):
    ims = imageseries.from_files(scan_files.files)
    with pytest.raises(InputError, match="mask") as err:
        build_maps(ims, MapSpec(), ScanGeometry(NY, NX), Corrections(mask=np.zeros((4, 4))))
    assert err.value.argument == "mask"
    with pytest.raises(InputError) as err:
        Corrections(dark=np.zeros((4, 4)), flat=np.ones((5, 4)))
    assert "dark" in str(err.value) and "flat" in str(err.value)
    with pytest.raises(InputError, match="values for"):
        build_maps(ims, MapSpec(), ScanGeometry(NY, NX), Corrections(norm=np.ones(3)))
    with pytest.raises(InputError, match="24 frames for a 5 x 4"):
        build_maps(ims, MapSpec(), ScanGeometry(5, 4))
    with pytest.raises(InputError, match="width"):
        Ring(1, 1, 5, -1)


def test_flat_zeros_must_be_masked():
    flat = np.ones((4, 5))
    flat[1, 2] = 0
    with pytest.raises(InputError, match="1 zero or non-finite") as err:
        Corrections(flat=flat)
    assert err.value.argument == "flat"
    mask = np.zeros((4, 5), np.uint8)
    mask[1, 2] = 1
    Corrections(flat=flat, mask=mask)          # masked: fine
    dark = np.zeros((4, 5))
    dark[0, 0] = np.nan
    with pytest.raises(InputError, match="non-finite") as err:
        Corrections(dark=dark)
    assert err.value.argument == "dark"


# -- issue 14: 64-bit integers and big-endian data bin right -------------------------------

@pytest.mark.parametrize("dtype, value", [("int64", 2**62), ("uint64", 2**64 - 1),
                                          ("int64", -2**63), ("uint32", 2**32 - 1)])
@pytest.mark.parametrize("b", [1, 2, 4])
def test_bin_frames_64_bit_never_wraps(dtype, value, b):
    x = np.full((2, 4, 8), value, dtype=dtype)
    x[1, 0, 0] = 1
    got = bin_frames(x, b)
    # exact sums as Python ints, then rounded once to float64
    def exact(k, i, j):
        return float(sum(int(v) for v in x[k, i * b:(i + 1) * b, j * b:(j + 1) * b].ravel()))

    want = np.array([[[exact(k, i, j) for j in range(8 // b)] for i in range(4 // b)]
                     for k in range(2)])
    assert got.dtype == np.float64 and np.all(np.sign(got) == np.sign(want))
    np.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">u2", ">i4", "<f4"])
def test_big_endian_hdf5_frames_bin(tmp_path, dtype):
    import h5py

    rng = np.random.default_rng(6)
    stack = (rng.random((6, 16, 24)) * 1000).astype(dtype)
    path = tmp_path / "be.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("imageseries/images", data=stack)
    ims = imageseries.open(str(path), "hdf5", path="imageseries")
    m = build_maps(ims, MapSpec(roi=(slice(0, 16), slice(0, 24)), binning=4,
                                rings=rings(8, 12, [5], 2)), ScanGeometry(2, 3))
    comp, rsum, ann = dask.compute(m.composite, m.roi_sum, m.annulus_sum, scheduler="sync")
    ref = stack.astype(np.float64)
    _close(comp.reshape(6, 4, 6), ref.reshape(6, 4, 4, 6, 4).sum((2, 4)), rtol=1e-5)
    _close(rsum.ravel(), ref.sum((1, 2)))
    _close(ann[0].ravel(), _ring_ref(ref, Ring(8, 12, 5, 2)))
