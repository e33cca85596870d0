"""xrsmap-compatible Mapper on a 7 x 5 (npt_y x npt_x) mesh of real EDF files."""
from __future__ import annotations

import fabio
import numpy as np
import pytest

from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.mapper import Mapper

NPT_Y, NPT_X = 7, 5
SHAPE = (64, 64)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    d = tmp_path_factory.mktemp("mapper")
    s = synth.make_scan(d, npt_y=NPT_Y, npt_x=NPT_X, frame_shape=SHAPE, n_background=3,
                        seed=11, hdf5=True)
    rng = np.random.default_rng(4)
    dark = (3 + rng.integers(0, 4, SHAPE)).astype(np.uint16)
    flat = (0.8 + 0.4 * rng.random(SHAPE)).astype(np.float32)
    synth.write_edf(str(d / "dark.edf"), dark)
    synth.write_edf(str(d / "flat.edf"), flat)
    s.dark_file, s.flat_file = str(d / "dark.edf"), str(d / "flat.edf")
    return s


@pytest.fixture(scope="module")
def raw(scan):
    return np.stack([fabio.open(f).data for f in scan.files]).astype(np.float64)


def reference(raw, scan, roi, binning, *, mask=False, dark=False, flat=False, back=False,
              dummy=0.0):
    """xrsmap semantics written out plainly: correct each frame, cut the ROI, bin by summing,
    place tile (iy, ix) = divmod(i, npt_x) into the mosaic."""
    x = raw.copy()
    d = fabio.open(scan.dark_file).data.astype(np.float64) if dark else 0.0
    f = fabio.open(scan.flat_file).data.astype(np.float64) if flat else 1.0
    x = (x - d) / f
    if back:
        bg = np.mean([fabio.open(p).data.astype(np.float64) for p in scan.background_files],
                     axis=0)
        x -= (bg - d) / f
    m = fabio.open(scan.mask_file).data != 0 if mask else np.zeros(SHAPE, bool)
    x[:, m] = 0
    x0, y0, x1, y1 = roi
    r = x[:, y0:y1 + 1, x0:x1 + 1]
    mr = m[y0:y1 + 1, x0:x1 + 1]
    b = binning
    fy, fx = r.shape[1] // b, r.shape[2] // b
    comp = np.zeros((NPT_Y * fy, NPT_X * fx))
    sums = np.zeros((NPT_Y, NPT_X))
    for i in range(len(r)):
        iy, ix = divmod(i, NPT_X)
        tile = np.zeros((fy, fx))
        for a in range(fy):
            for c in range(fx):
                block = r[i, a * b:(a + 1) * b, c * b:(c + 1) * b]
                dead = mr[a * b:(a + 1) * b, c * b:(c + 1) * b].all()
                tile[a, c] = dummy if dead else block.sum()
        comp[iy * fy:(iy + 1) * fy, ix * fx:(ix + 1) * fx] = tile
        sums[iy, ix] = r[i].sum()
    return comp, sums


def _close(a, b, rtol=1e-5):
    scale = max(1.0, float(np.nanmax(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


CORRECTIONS = [
    dict(),
    dict(mask=True, dummy=-5.0),
    dict(dark=True, flat=True),
    dict(mask=True, dark=True, flat=True, back=True, dummy=3.0),
]


@pytest.mark.parametrize("binning", [1, 2, 4, 16])
@pytest.mark.parametrize("corr", CORRECTIONS, ids=["none", "mask", "darkflat", "all"])
def test_composite_map_matches_reference(scan, raw, binning, corr):
    roi = (0, 16, 63, 47)   # inclusive (x0, y0, x1, y1): 32 rows x 64 cols
    mapper = Mapper(NPT_X, NPT_Y,
                    mask=scan.mask_file if corr.get("mask") else None,
                    dummy=corr.get("dummy", 0),
                    back_files=scan.background_files if corr.get("back") else None,
                    dark=scan.dark_file if corr.get("dark") else None,
                    flat=scan.flat_file if corr.get("flat") else None)
    comp, sums = mapper.composite_map(scan.files, roi=roi, binning=binning)
    ref_comp, ref_sums = reference(raw, scan, roi, binning, **corr)
    assert comp.shape == (NPT_Y * 32 // binning, NPT_X * 64 // binning)
    assert sums.shape == (NPT_Y, NPT_X)
    assert comp.dtype == np.float32 and sums.dtype == np.float64
    _close(comp, ref_comp)
    _close(sums, ref_sums)
    if corr.get("mask") and binning == 1:
        # the mask's detector gap rows show the dummy value in every tile
        gap = SHAPE[0] // 3 - 16
        assert np.all(comp[gap::32] == corr["dummy"])


def test_arrays_instead_of_paths_and_default_roi(scan, raw):
    mask = fabio.open(scan.mask_file).data
    dark = fabio.open(scan.dark_file).data
    m = Mapper(NPT_X, NPT_Y, mask=mask, dark=dark)
    comp, sums = m.composite_map(scan.files, binning=4)
    ref_comp, ref_sums = reference(raw, scan, (0, 0, 63, 63), 4, mask=True, dark=True)
    _close(comp, ref_comp)
    _close(sums, ref_sums)
    # an ImageSeries works as in_files too
    comp2, sums2 = m.composite_map(imageseries.from_files(scan.files), binning=4)
    np.testing.assert_array_equal(comp2, comp)


def test_roi_origin_lower(scan, raw):
    m = Mapper(NPT_X, NPT_Y)
    _, up = m.composite_map(scan.files, roi=(4, 10, 20, 29))
    _, low = m.composite_map(scan.files, roi=(4, 64 - 1 - 29, 20, 64 - 1 - 10),
                             roi_origin="lower")
    np.testing.assert_array_equal(up, low)
    _close(up.ravel(), raw[:, 10:30, 4:21].sum((1, 2)))


def test_non_square_not_swapped(scan, raw):
    m = Mapper(npt_x=NPT_X, npt_y=NPT_Y)
    _, sums = m.composite_map(scan.files)
    assert sums.shape == (7, 5)
    # frame 6 is at row 1, column 1 (x fastest); xrsmap's swap would put it elsewhere
    _close(sums[1, 1], raw[6].sum())


def test_incomplete_scan_warns_and_fills_nan(scan, raw):
    from xrsmap_dask.mapper import IncompleteScanWarning
    from xrsmap_dask.scan import ScanGeometry

    m = Mapper(NPT_X, NPT_Y, scan=ScanGeometry(NPT_Y, NPT_X, allow_incomplete=True))
    with pytest.warns(IncompleteScanWarning, match="3 of 35 map points"):
        comp, sums = m.composite_map(scan.files[:32], binning=8)
    assert np.isnan(sums[-1, 2:]).all() and np.isnan(sums).sum() == 3
    _close(sums.ravel()[:32], raw[:32].sum((1, 2)))
    assert np.isnan(comp[-8:, 2 * 8:]).all() and not np.isnan(comp[:-8]).any()


def test_wrong_frame_counts(scan):
    with pytest.raises(InputError, match="34 frames for a 7 x 5"):
        Mapper(NPT_X, NPT_Y).composite_map(scan.files[:34])
    with pytest.raises(InputError, match="36 frames"):
        Mapper(NPT_X, NPT_Y).composite_map(scan.files + scan.files[:1])


def test_position_table_per_call(scan, raw):
    table = np.stack(np.divmod(np.arange(NPT_X * NPT_Y)[::-1], NPT_X), axis=1)
    _, sums = Mapper(NPT_X, NPT_Y).composite_map(scan.files, scan=table)
    _close(sums.ravel()[::-1], raw.sum((1, 2)))


@pytest.mark.parametrize("kind", ["snake", "column"])
def test_scan_kinds(scan, raw, kind):
    _, sums = Mapper(NPT_X, NPT_Y, scan=kind).composite_map(scan.files)
    for i in range(NPT_X * NPT_Y):
        if kind == "column":
            col, row = divmod(i, NPT_Y)
        else:
            row, col = divmod(i, NPT_X)
            col = NPT_X - 1 - col if row % 2 else col
        _close(sums[row, col], raw[i].sum())


def _ring_sum(frames, cy, cx, radius, width, mask=None):
    yy, xx = np.indices(SHAPE, dtype=np.float64)
    d = np.hypot(yy - cy, xx - cx)
    sel = (d >= radius - width / 2) & (d <= radius + width / 2)
    if mask is not None:
        sel &= mask == 0
    return frames[:, sel].sum(1).reshape(NPT_Y, NPT_X)


@pytest.mark.parametrize("radius, width", [(10.0, 3.0), (33.28, 4.0), (45.0, 6.0)])
def test_circle_map(scan, raw, radius, width):
    cy, cx = scan.centre
    m = Mapper(NPT_X, NPT_Y)
    got = m.circle_map(scan.files, cen_x=cx, cen_y=cy, radius=radius, width=width)
    assert got.shape == (NPT_Y, NPT_X)
    _close(got, _ring_sum(raw, cy, cx, radius, width))
    if radius > 40:
        # clipped by the frame edge: the full ring would hold more pixels than the frame has
        yy, xx = np.indices(SHAPE)
        assert cy + radius > SHAPE[0] and cx + radius > SHAPE[1]


def test_circle_map_with_mask_and_many_rings(scan, raw):
    cy, cx = scan.centre
    mask = fabio.open(scan.mask_file).data
    m = Mapper(NPT_X, NPT_Y, mask=scan.mask_file)
    stack = m.circle_map(scan.files, cx, cy, [8.0, 20.0, 33.0], 3.0)
    assert stack.shape == (3, NPT_Y, NPT_X)
    for k, r in enumerate([8.0, 20.0, 33.0]):
        _close(stack[k], _ring_sum(raw, cy, cx, r, 3.0, mask))
    with pytest.raises(InputError, match="no pixel inside"):
        m.circle_map(scan.files, 500, 500, 10, 2)


def test_binning_error_names_working_sizes(scan):
    with pytest.raises(InputError, match=r"binning 3 does not divide the 32 x 64 ROI"
                                         r".*\[1, 2, 4, 8, 16, 32\]"):
        Mapper(NPT_X, NPT_Y).composite_map(scan.files, roi=(0, 16, 63, 47), binning=3)


def test_shape_mismatch_named(scan):
    with pytest.raises(InputError) as err:
        Mapper(NPT_X, NPT_Y, dark=np.zeros((8, 8))).composite_map(scan.files)
    assert err.value.argument == "dark"
    with pytest.raises(InputError) as err:
        Mapper(NPT_X, NPT_Y, mask=np.zeros((8, 8)), flat=np.ones((9, 9)))
    assert "mask" in str(err.value) and "flat" in str(err.value)
    with pytest.raises(InputError, match="file not found") as err:
        Mapper(NPT_X, NPT_Y, mask=scan.mask_file + ".nope")
    assert err.value.argument == "mask"


def test_background_methods(scan, raw):
    bgs = np.stack([fabio.open(p).data.astype(np.float64) for p in scan.background_files])
    for spec, ref in [("median", np.median(bgs, 0)),
                      (("percentile", 25), np.percentile(bgs, 25, 0)),
                      (None, bgs.mean(0))]:
        m = Mapper(NPT_X, NPT_Y, back_files=scan.background_files, background=spec)
        _close(m.background, ref)
        _, sums = m.composite_map(scan.files)
        _close(sums.ravel(), (raw - ref).sum((1, 2)))
    with pytest.raises(InputError, match=r"\[0, 100\]"):
        Mapper(NPT_X, NPT_Y, back_files=scan.background_files, background=("percentile", 120))
    with pytest.raises(InputError, match="needs back_files"):
        Mapper(NPT_X, NPT_Y, background="median")
    img = np.full(SHAPE, 2.5)
    _, sums = Mapper(NPT_X, NPT_Y, background=img).composite_map(scan.files)
    _close(sums.ravel(), (raw - 2.5).sum((1, 2)))


def test_norm(scan, raw):
    norm = np.linspace(1, 3, NPT_X * NPT_Y)
    comp, sums = Mapper(NPT_X, NPT_Y, norm=norm).composite_map(scan.files, binning=64)
    _close(sums.ravel(), raw.sum((1, 2)) / norm)
    _close(comp.ravel(), raw.sum((1, 2)) / norm)


def test_hdf5_and_array_series(scan, raw):
    m = Mapper(NPT_X, NPT_Y, mask=scan.mask_file)
    want = m.composite_map(scan.files, roi=(8, 0, 55, 63), binning=8)
    h5 = imageseries.open(scan.hdf5_file, "hdf5", path="/imageseries")
    arr = imageseries.open(None, "array", data=raw.astype(np.uint16))
    for ims in (h5, arr):
        got = m.composite_map(ims, roi=(8, 0, 55, 63), binning=8)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    ref_comp, ref_sums = reference(raw, scan, (8, 0, 55, 63), 8, mask=True)
    _close(want[0], ref_comp)
    _close(want[1], ref_sums)
