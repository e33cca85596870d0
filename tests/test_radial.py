"""Rings and radial bins: against numpy references built from pyFAI's own per-pixel arrays,
against pyFAI's integrate1d on the same 50 frames, and against today's pixel rings."""
from __future__ import annotations

import fabio
import numpy as np
import pyFAI
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xrsmap_dask import geometry as G
from xrsmap_dask import imageseries, maps, synth
from xrsmap_dask import radial as R
from xrsmap_dask.errors import InputError
from xrsmap_dask.scan import ScanGeometry


@pytest.fixture(scope="module")
def poni_scan(tmp_path_factory):
    """50 int32 EDF frames (5 x 10 scan) of a tilted Pilatus 300k with rings at known q."""
    scan = synth.make_poni_scan(tmp_path_factory.mktemp("poni_scan"), npt_y=5, npt_x=10,
                                rot1=0.03, rot2=-0.02, rot3=0.4)
    frames = np.stack([fabio.open(f).data for f in scan.files])
    user_mask = fabio.open(scan.mask_file).data != 0
    return scan, frames, user_mask


def _crop(frames, groups):
    return np.ascontiguousarray(frames[:, groups.box[0], groups.box[1]])


@pytest.mark.parametrize("unit, centres, width", [
    ("q_nm^-1", [8.0, 15.0, 15.2, 22.0], 0.5),         # two rings overlap
    ("2th_deg", [7.3, 13.8], 0.3),
    ("r_mm", [20.0, 40.0], 0.6),
])
def test_rings_equal_numpy_reference_from_pyfai_arrays(poni_scan, unit, centres, width):
    scan, frames, user_mask = poni_scan
    geo = G.load_poni(scan.poni_file)
    ai = pyFAI.load(scan.poni_file)
    values = ai.array_from_unit(scan.frame_shape, "center", unit, scale=True)
    excluded = user_mask | (ai.detector.mask != 0)
    rings = R.make_rings(geo, scan.frame_shape, centres, width, unit, mask=user_mask)
    got = R.group_sums(_crop(frames, rings.groups), rings.groups)
    for k, c in enumerate(centres):
        sel = (values >= c - width / 2) & (values <= c + width / 2) & ~excluded
        np.testing.assert_array_equal(got[:, k], frames[:, sel].sum(axis=1, dtype=np.int64))
        assert rings.groups.count[k] == sel.sum() > 0


def test_q_and_2theta_rings_agree(poni_scan):
    """A ring given in 2theta at the angles of q = Q +- dQ/2 holds the same pixels."""
    scan, frames, user_mask = poni_scan
    geo = G.load_poni(scan.poni_file)
    wavelength_nm = geo.wavelength * 1e9
    q_lo, q_hi = 14.8, 15.2

    def tth(q):
        return np.degrees(2 * np.arcsin(q * wavelength_nm / (4 * np.pi)))

    in_q = R.make_rings(geo, scan.frame_shape, [15.0], q_hi - q_lo, "q_nm^-1", mask=user_mask)
    centre, width = (tth(q_lo) + tth(q_hi)) / 2, tth(q_hi) - tth(q_lo)
    in_tth = R.make_rings(geo, scan.frame_shape, [centre], width, "2th_deg", mask=user_mask)
    a, b = in_q.groups, in_tth.groups.reindex(in_q.groups.box) \
        if in_q.groups.box != in_tth.groups.box else in_tth.groups
    assert abs(len(a.pixels) - len(b.pixels)) <= 2 and len(a.pixels) > 1000
    same = np.intersect1d(a.pixels, b.pixels)
    assert len(same) >= len(a.pixels) - 2    # only pixels at rounding distance of an edge


def test_pixel_rings_are_todays_annulus_maps(tmp_path):
    """Without a PONI file a pixel geometry gives the same ring pixels and sums as maps."""
    scan = synth.make_scan(tmp_path, npt_y=2, npt_x=3, frame_shape=(48, 40), seed=5)
    mask = fabio.open(scan.mask_file).data
    radii, width = [7.0, 12.5, 19.0], 3.0
    ims = imageseries.from_files(scan.files)
    corr = maps.Corrections(mask=mask)
    want = maps.annulus_sum(ims, ScanGeometry(2, 3), scan.centre[0], scan.centre[1], radii,
                            width, corr).compute()
    geo = G.PixelGeometry(*scan.centre)
    rings = R.make_rings(geo, (48, 40), radii, width, mask=mask)
    frames = np.stack([fabio.open(f).data for f in scan.files])
    got = R.group_sums(_crop(frames, rings.groups), rings.groups)
    np.testing.assert_array_equal(got.T.reshape(3, 2, 3), want)
    for k, ring in enumerate(maps.rings(*scan.centre, radii, width)):
        sel = maps.ring_mask(ring, (slice(0, 48), slice(0, 40))) & (mask == 0)
        assert rings.groups.count[k] == sel.sum()


@pytest.mark.parametrize("unit, corrections, chi, rng", [
    ("q_nm^-1", {}, None, (0.0, 30.0)),
    ("q_nm^-1", {"solid_angle": True, "polarization": 0.99}, None, None),
    ("2th_deg", {"solid_angle": True, "polarization": -0.5}, None, (0.0, 27.0)),
    ("q_A^-1", {}, (-60.0, 75.0), (0.0, 3.0)),
])
def test_radial_bins_equal_pyfai_integrate1d(poni_scan, unit, corrections, chi, rng):
    """Same 50 frames, no pixel splitting, 100 bins, same mask: equal within 1e-6."""
    scan, frames, user_mask = poni_scan
    geo = G.load_poni(scan.poni_file)
    ai = pyFAI.load(scan.poni_file)
    bins = R.make_radial_bins(geo, scan.frame_shape, 100, unit, radial_range=rng, chi=chi,
                              mask=user_mask, **corrections)
    groups = bins.groups
    means = R.group_means(R.group_sums(_crop(frames, groups), groups), groups)
    excluded = user_mask | (ai.detector.mask != 0)
    for i in range(len(frames)):
        res = ai.integrate1d(frames[i], 100, unit=unit, method=("no", "csr", "cython"),
                             mask=excluded, radial_range=bins.radial_range, azimuth_range=chi,
                             correctSolidAngle=corrections.get("solid_angle", False),
                             polarization_factor=corrections.get("polarization"))
        np.testing.assert_array_equal(res.count, groups.count)
        full = groups.count > 0
        assert full.sum() > 80
        np.testing.assert_allclose(means[i, full], res.intensity[full], rtol=1e-6)
        np.testing.assert_allclose(bins.centres, res.radial, rtol=1e-6)
    assert np.isnan(means[:, ~full]).all()


def test_bin_zero_differs_from_pyfai_only_by_pixels_below_the_range(poni_scan):
    """pyFAI counts pixels less than one bin below ``lo`` in bin 0 (truncation); we do not."""
    scan, frames, user_mask = poni_scan
    geo = G.load_poni(scan.poni_file)
    ai = pyFAI.load(scan.poni_file)
    lo, hi, n = 5.0, 25.0, 40
    bins = R.make_radial_bins(geo, scan.frame_shape, n, "q_nm^-1", (lo, hi), mask=user_mask)
    excluded = user_mask | (ai.detector.mask != 0)
    res = ai.integrate1d(frames[0], n, unit="q_nm^-1", method=("no", "csr", "cython"),
                         mask=excluded, radial_range=(lo, hi), correctSolidAngle=False)
    np.testing.assert_array_equal(res.count[1:], bins.groups.count[1:])
    q = geo.radial("q_nm^-1", scan.frame_shape)
    below = (q < lo) & (q > lo - np.diff(bins.edges)[0]) & ~excluded
    assert below.sum() > 0
    assert res.count[0] == bins.groups.count[0] + below.sum()
    assert (q[R.excluded_pixels(geo, scan.frame_shape, user_mask) == 0] >= lo).sum() == \
        bins.groups.count.sum() + (q[~excluded] > bins.edges[-1]).sum()


def test_radial_bin_edges_and_index():
    edges = R.radial_bin_edges(4, 0.0, 8.0)
    assert edges[0] == 0 and 8.0 < edges[-1] < 8.0 * (1 + 2e-7)
    # bins are a hair wider than 2 (pyFAI's widened top): 2.0 itself is still in bin 0
    v = np.array([-0.1, 0.0, 1.99, 2.0, 2.001, 7.9, 8.0, 8.5, np.nan])
    np.testing.assert_array_equal(R.radial_bin_index(v, 4, 0.0, 8.0),
                                  [-1, 0, 0, 0, 1, 3, 3, -1, -1])
    # the same as looking the values up in the edges
    ref = np.searchsorted(edges, v[:-1], side="right") - 1
    ref[(v[:-1] < edges[0]) | (v[:-1] >= edges[-1])] = -1
    np.testing.assert_array_equal(R.radial_bin_index(v[:-1], 4, 0.0, 8.0), ref)


def test_group_sums_kernel_details():
    rng = np.random.default_rng(0)
    index = rng.integers(-1, 6, (12, 9))
    index[:, 4] = -1
    groups = R.groups_from_index(index, 7, (slice(3, 15), slice(2, 11)))  # group 6 empty
    frames = rng.integers(0, 2**32 - 1, (4, 12, 9), dtype=np.uint64).astype(np.uint32)
    got = R.group_sums(frames, groups)
    ref = np.array([[sum(int(v) for v in f[index == g]) for g in range(7)] for f in frames])
    np.testing.assert_array_equal(got, ref.astype(np.float64))
    assert got[:, 6].tolist() == [0, 0, 0, 0] and groups.count[6] == 0
    # the same groups laid on whole-row reads of a taller, wider block
    wide = groups.reindex((slice(0, 20), slice(0, 30)))
    big = np.zeros((4, 20, 30), np.uint32)
    big[:, 3:15, 2:11] = frames
    np.testing.assert_array_equal(R.group_sums(big, wide), got)
    with pytest.raises(ValueError, match="does not contain"):
        groups.reindex((slice(4, 20), slice(0, 30)))
    with pytest.raises(ValueError, match="laid on"):
        R.group_sums(big, groups)
    # float frames: a NaN frame (unreadable, on_error='fill') is NaN in every group
    f = frames.astype(np.float32)
    f[2] = np.nan
    out = R.group_sums(f, groups)
    assert np.isnan(out[2, :6]).all() and np.isfinite(out[[0, 1, 3]]).all()
    means = R.group_means(got, groups)
    np.testing.assert_allclose(means[:, :6], got[:, :6] / groups.count[:6])
    assert np.isnan(means[:, 6]).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 30), st.integers(0, 10**6))
def test_group_sums_match_bincount(ngroups, n, width, seed):
    rng = np.random.default_rng(seed)
    index = rng.integers(-1, ngroups, (7, width))
    frames = rng.normal(size=(n, 7, width)).astype(np.float32)
    groups = R.groups_from_index(index, ngroups, (slice(0, 7), slice(0, width)))
    keep = index.ravel() >= 0
    ref = np.stack([np.bincount(index.ravel()[keep], f.ravel()[keep].astype(np.float64),
                                minlength=ngroups) for f in frames])
    np.testing.assert_allclose(R.group_sums(frames, groups), ref, rtol=1e-12, atol=1e-12)


def test_errors(poni_scan):
    scan, _, user_mask = poni_scan
    geo = G.load_poni(scan.poni_file)
    shape = scan.frame_shape
    with pytest.raises(InputError, match=r"rings \[1\]") as err:
        R.make_rings(geo, shape, [10.0, 500.0], 0.5)
    assert err.value.argument == "rings"
    with pytest.raises(InputError, match="one width or one per ring"):
        R.make_rings(geo, shape, [10.0, 12.0], [0.5, 0.5, 0.5])
    with pytest.raises(InputError, match=">= 0"):
        R.make_rings(geo, shape, [10.0], -1)
    with pytest.raises(InputError, match="no unmasked pixel"):
        R.make_radial_bins(geo, shape, 10, radial_range=(300, 400))
    with pytest.raises(InputError, match="every pixel is masked"):
        R.make_radial_bins(geo, shape, 10, mask=np.ones(shape))
    with pytest.raises(InputError, match="differs from the frames'"):
        R.make_radial_bins(geo, shape, 10, mask=np.ones((3, 3)))
    with pytest.raises(InputError, match="needs a PONI"):
        R.make_radial_bins(G.PixelGeometry(1, 1), (8, 8), 4, solid_angle=True)
    for bad in (0, -3, 2.5, "100", True, 10**7):
        with pytest.raises(InputError) as err:
            R.parse_radial_bins(bad)
        assert err.value.argument == "radial_bins"
    assert R.parse_radial_bins(100) == 100 and R.parse_radial_bins(None) is None
    assert R.parse_radial_range([0, 3.5]) == (0.0, 3.5) and R.parse_radial_range(None) is None
    for bad in ([3, 1], [1], [0, float("inf")], "1:25", ["a", 2]):
        with pytest.raises(InputError) as err:
            R.parse_radial_range(bad)
        assert err.value.argument == "radial_range"
    attrs = R.make_radial_bins(geo, shape, 10, "r_mm", chi=[0, 90]).to_attrs()
    assert attrs["units"] == "mm" and attrs["chi"] == [0.0, 90.0] and attrs["nbins"] == 10


def test_profiles_peak_at_the_synthetic_rings(poni_scan):
    """synth.make_poni_scan puts its rings at q_rings under the tilted geometry: the radial
    profile of every frame peaks in the bins holding them."""
    scan, frames, user_mask = poni_scan
    geo = G.load_poni(scan.poni_file)
    bins = R.make_radial_bins(geo, scan.frame_shape, 120, "q_nm^-1", (0.0, 30.0),
                              mask=user_mask)
    means = R.group_means(R.group_sums(_crop(frames, bins.groups), bins.groups), bins.groups)
    for q0 in scan.q_rings:
        k = int(np.searchsorted(bins.edges, q0) - 1)
        for side in (k - 6, k + 6):              # each ring's height varies over the map
            assert np.all(means[:, k] > means[:, side])
            assert means[:, k].mean() > means[:, side].mean() + 20


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 30), st.integers(0, 10**6),
       st.sampled_from(["uint16", "uint32", "int32", "float32", "float64"]))
def test_run_sums_equal_group_sums_for_disjoint_groups(ngroups, n, width, seed, dtype):
    """The run kernel (radial bins) gives the gather kernel's sums, exactly for integers
    (uint32 values near 2**32 included); a NaN outside every group is ignored."""
    rng = np.random.default_rng(seed)
    index = rng.integers(-1, ngroups, (7, width))
    index[rng.random((7, width)) < 0.5] = rng.integers(0, ngroups)   # long runs too
    if np.dtype(dtype).kind == "f":
        frames = rng.normal(size=(n, 7, width)).astype(dtype)
        frames[:, index < 0] = np.nan
    else:
        hi = np.iinfo(dtype).max
        frames = rng.integers(0, hi, (n, 7, width), dtype=np.uint64, endpoint=True) \
            .astype(dtype) if np.dtype(dtype).kind == "u" else \
            rng.integers(-hi, hi, (n, 7, width)).astype(dtype)
    groups = R.groups_from_index(index, ngroups, (slice(0, 7), slice(0, width)))
    runs = R.RunTable.from_groups(groups)
    assert runs.starts[0] == 0 and np.all(np.diff(runs.starts) > 0)
    got, want = R.run_sums(frames, runs), R.group_sums(frames, groups)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
        assert np.isfinite(got).all()
    else:
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="laid on"):
        R.run_sums(frames[:, :, :-1] if width > 1 else frames[:, :-1], runs)
    overlapping = R.groups_from_lists([np.arange(3), np.arange(2, 5)],
                                      (slice(0, 1), slice(0, 6)))
    with pytest.raises(ValueError, match="disjoint"):
        R.RunTable.from_groups(overlapping)
