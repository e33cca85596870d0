"""Rings in physical units and radial-bin maps through the map pipeline (xrsmap_dask.maps
radial kind, pipeline, CLI, Mapper, job specs): against numpy references built from pyFAI's
own per-pixel arrays and against pyFAI's integrate1d on the same 50 frames."""
from __future__ import annotations

import fabio
import numpy as np
import pyFAI
import pytest
import zarr

from xrsmap_dask import cli, imageseries
from xrsmap_dask import geometry as G
from xrsmap_dask.errors import InputError
from xrsmap_dask.mapper import Mapper
from xrsmap_dask.maps import Corrections, MapSpec, RadialSpec, build_maps
from xrsmap_dask.scan import ScanGeometry
from xrsmap_dask.store import read_attrs

NY, NX = 5, 10


@pytest.fixture(scope="module")
def data(poni_map_scan):
    scan = poni_map_scan
    frames = np.stack([fabio.open(f).data for f in scan.files])
    user_mask = fabio.open(scan.mask_file).data != 0
    ai = pyFAI.load(scan.poni_file)
    excluded = user_mask | (ai.detector.mask != 0)
    return scan, frames, user_mask, ai, excluded


def _maps(scan, spec, corr=None, **kw):
    ims = imageseries.from_files(scan.files, on_error=kw.pop("on_error", "raise"))
    return build_maps(ims, spec, ScanGeometry(NY, NX), corr, **kw)


@pytest.mark.parametrize("unit, centres, width", [
    ("q_nm^-1", [8.0, 15.0, 22.0], 0.4),
    ("2th_deg", [7.3, 13.8], 0.3),
    ("r_mm", [20.0, 40.0], 0.6),
])
def test_unit_rings_equal_a_numpy_reference_from_pyfai_arrays(data, unit, centres, width):
    """A ring at Q +- dQ/2 (tilted PONI) sums exactly the pixels pyFAI's per-pixel array
    puts there, through Mapper (one read pass, maps in (ring, y, x))."""
    scan, frames, user_mask, ai, excluded = data
    values = ai.array_from_unit(scan.frame_shape, "center", unit, scale=True)
    m = Mapper(NX, NY, mask=scan.mask_file, poni=scan.poni_file, unit=unit)
    got = m.circle_map(scan.files, radius=centres, width=width)
    assert got.shape == (len(centres), NY, NX)
    for k, c in enumerate(centres):
        sel = (values >= c - width / 2) & (values <= c + width / 2) & ~excluded
        want = frames[:, sel].sum(axis=1, dtype=np.int64).reshape(NY, NX)
        np.testing.assert_array_equal(got[k], want)


def test_ring_in_a_chi_sector_and_coordinates_in_the_unit(data, tmp_path):
    scan, frames, user_mask, ai, excluded = data
    q = ai.array_from_unit(scan.frame_shape, "center", "q_nm^-1", scale=True)
    chi = np.degrees(ai.chiArray(scan.frame_shape))
    out = tmp_path / "rings.zarr"
    assert cli.main(["annulus", *scan.files, "--npt-y", str(NY), "--npt-x", str(NX),
                     "--poni", scan.poni_file, "--radius", "15", "22", "--width", "0.5",
                     "--chi", "-30", "60", "--mask", scan.mask_file, "-o", str(out),
                     "-q"]) == 0
    import xarray as xr

    ds = xr.open_zarr(out)
    for k, c in enumerate((15.0, 22.0)):
        sel = (np.abs(q - c) <= 0.25) & (chi >= -30) & (chi <= 60) & ~excluded
        want = frames[:, sel].sum(axis=1).reshape(NY, NX)
        np.testing.assert_array_equal(ds.annulus_sum.sel(ring=c).values, want)
        assert ds.ring_count.values[k] == sel.sum()
    assert ds.ring.attrs["units"] == "1/nm" and ds.ring_width.values.tolist() == [0.5, 0.5]
    assert read_attrs(out)["radial"]["chi"] == [-30.0, 60.0]


@pytest.mark.parametrize("corrections", [{}, {"solid_angle": True, "polarization": 0.99}])
@pytest.mark.parametrize("unit, rng, chi", [("q_nm^-1", None, None),
                                            ("2th_deg", (0.0, 25.0), (-100.0, 45.0))])
def test_radial_bins_equal_pyfai_integrate1d(data, corrections, unit, rng, chi):
    """Radial-bin maps (100 bins) of the 50 frames equal pyFAI's integrate1d per frame (no
    pixel splitting, same bins, same mask) within 1e-6, fused and unfused reads."""
    scan, frames, user_mask, ai, excluded = data
    geo = G.load_poni(scan.poni_file)
    spec = MapSpec(composite=False, roi_sum=False, radial=RadialSpec(
        geo, unit, bins=100, radial_range=rng, chi=chi, **corrections))
    results = []
    for fuse in (True, False):
        m = _maps(scan, spec, Corrections(mask=user_mask), fuse_reads=fuse)
        results.append(m.compute()["radial"])
    np.testing.assert_array_equal(results[0], results[1])
    means, bins = results[0], m.plan.radial.bins
    assert means.shape == (100, NY, NX)
    for i in range(len(frames)):
        res = ai.integrate1d(frames[i], 100, unit=unit, method=("no", "csr", "cython"),
                             mask=excluded, radial_range=bins.radial_range,
                             azimuth_range=chi,
                             correctSolidAngle=corrections.get("solid_angle", False),
                             polarization_factor=corrections.get("polarization"))
        full = res.count > 0
        assert full.sum() > 80
        np.testing.assert_array_equal(bins.groups.count, res.count)
        np.testing.assert_allclose(means[full, i // NX, i % NX], res.intensity[full],
                                   rtol=1e-6)
        assert np.isnan(means[~full, i // NX, i % NX]).all()


def test_radial_bins_with_pixel_corrections_norm_and_unreadable_frames(data, tmp_path):
    """Dark subtracted first, norm divided, an unreadable frame NaN in every bin; the
    bins' narrow box is read as whole rows (fused) and as the box (unfused): the same."""
    import shutil

    scan, frames, user_mask, ai, excluded = data
    files = [shutil.copy(f, tmp_path) for f in scan.files]
    with open(files[7], "r+b") as f:
        f.truncate(2000)
    dark = np.full(scan.frame_shape, 3.0)
    norm = np.linspace(1.0, 2.0, len(files))
    geo = G.load_poni(scan.poni_file)
    spec = MapSpec(composite=False, roi_sum=False,
                   radial=RadialSpec(geo, "q_nm^-1", bins=40, radial_range=(12.0, 18.0),
                                     chi=(0.0, 90.0)))
    out = {}
    for fuse in (True, False):
        ims = imageseries.from_files(files, on_error="fill")
        m = build_maps(ims, spec, ScanGeometry(NY, NX),
                       Corrections(mask=user_mask, dark=dark, norm=norm), fuse_reads=fuse)
        out[fuse] = m.compute()["radial"]
    assert m.plan.box[1] != slice(0, scan.frame_shape[1])      # a narrow box
    np.testing.assert_array_equal(out[True], out[False])
    got = out[True].reshape(40, -1)
    assert np.isnan(got[:, 7]).all()
    bins = m.plan.radial.bins
    for i in (0, 23, 49):
        res = ai.integrate1d(frames[i] - 3.0, 40, unit="q_nm^-1", method=("no", "csr", "cython"),
                             mask=excluded, radial_range=(12.0, 18.0), azimuth_range=(0, 90),
                             correctSolidAngle=False)
        # bin 0 differs by design (pyFAI also counts pixels up to one bin below 12.0)
        np.testing.assert_array_equal(res.count[1:], bins.groups.count[1:])
        np.testing.assert_allclose(got[1:, i], res.intensity[1:] / norm[i], rtol=1e-6)


@pytest.mark.parametrize("corrections", [{}, {"solid_angle": True, "polarization": 0.95}])
def test_invalid_pixels_leave_the_radial_bins_pyfai_with_a_frame_mask(data, tmp_path,
                                                                    corrections):
    """Pilatus -2 values scattered over the bins (a few frames): each frame's bin means equal
    pyFAI's integrate1d of that frame with those pixels masked, ``radial_excluded`` counts
    them per bin and point, and frames without any equal the plain integration."""
    scan, frames, user_mask, ai, excluded = data
    rng = np.random.default_rng(5)
    hot = frames.copy()
    hits = {3: 40, 17: 400, 31: 5}                     # frame: pixels set to -2
    for i, n in hits.items():
        free = np.flatnonzero(~excluded)
        hot[i].flat[rng.choice(free, n, replace=False)] = -2
    files = []
    for i, f in enumerate(hot):
        files.append(str(tmp_path / f"f_{i:03d}.edf"))
        fabio.edfimage.EdfImage(data=f).write(files[-1])
    geo = G.load_poni(scan.poni_file)
    spec = MapSpec(composite=False, roi_sum=False,
                   radial=RadialSpec(geo, "q_nm^-1", bins=60, **corrections))
    m = build_maps(imageseries.from_files(files), spec, ScanGeometry(NY, NX),
                   Corrections(mask=user_mask))            # invalid='auto': int32 < 0
    from xrsmap_dask.store import write_maps

    write_maps(m, tmp_path / "out.zarr", m.series)
    g = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    means, bins = g["radial"][...].reshape(60, -1), g["radial_excluded"][...].reshape(60, -1)
    np.testing.assert_array_equal(means, m.compute()["radial"].reshape(60, -1))
    edges = m.plan.radial.bins.radial_range

    def integrate(frame, mask):
        return ai.integrate1d(frame, 60, unit="q_nm^-1", method=("no", "csr", "cython"),
                              mask=mask, radial_range=edges,
                              correctSolidAngle=corrections.get("solid_angle", False),
                              polarization_factor=corrections.get("polarization"))

    for i in (0, *hits):
        res = integrate(hot[i], excluded | (hot[i] < 0))
        full = res.count > 0
        np.testing.assert_allclose(means[full, i], res.intensity[full], rtol=1e-6)
        assert np.isnan(means[~full, i]).all()
        # pixels the -2 took from each bin (pyFAI's Pilatus dummy skips them anyway)
        lost = integrate(frames[i], excluded).count - res.count
        np.testing.assert_array_equal(bins[:, i], lost)
        assert (bins[:, i].sum() > 0) == (i in hits)
    assert not bins[:, [i for i in range(len(files)) if i not in hits]].any()


def test_pixel_geometry_bins_and_rings_without_poni(small_scan):
    """Without a PONI file, bins are in pixels around cen_y/cen_x (numpy reference), and
    rings through a pixel geometry (a chi sector) take the same centre."""
    frames = np.stack([fabio.open(f).data for f in small_scan.files]).astype(np.float64)
    mask = fabio.open(small_scan.mask_file).data != 0
    cy, cx = small_scan.centre
    m = Mapper(6, 4, mask=small_scan.mask_file)
    radial, means = m.radial_map(small_scan.files, 8, (0.0, 16.0), cen_x=cx, cen_y=cy)
    yy, xx = np.indices(frames.shape[1:])
    d = np.hypot(yy - cy, xx - cx)
    width = 16.0 * (1 + np.finfo(np.float32).eps) / 8
    index = np.floor(d / width).astype(int)
    for k in range(8):
        sel = (index == k) & ~mask
        np.testing.assert_allclose(means[k].ravel(), frames[:, sel].mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(radial, (np.arange(8) + 0.5) * width)
    m = Mapper(6, 4, mask=small_scan.mask_file, chi=(0, 90))
    ring = m.circle_map(small_scan.files, cx, cy, radius=10.0, width=3.0)
    chi = np.degrees(np.arctan2(yy - cy, xx - cx))
    sel = (np.abs(d - 10.0) <= 1.5) & (chi >= 0) & (chi <= 90) & ~mask
    np.testing.assert_allclose(ring.ravel(), frames[:, sel].sum(axis=1))


def test_radial_command_nexus_output_and_job_spec(data, tmp_path):
    """`radial -o x.nxs` and a job spec with `output: survey.nxs` write the zarr working
    group beside the NeXus file; the three faces give identical maps."""
    import h5py
    import yaml

    from xrsmap_dask.nexus_export import read_maps

    scan = data[0]
    common = ["--npt-y", str(NY), "--npt-x", str(NX), "--poni", scan.poni_file,
              "--radial-bins", "30", "--mask", scan.mask_file, "-q"]
    out = tmp_path / "radial.nxs"
    assert cli.main(["radial", *scan.files, *common, "-o", str(out)]) == 0
    assert (tmp_path / "radial.nxs.zarr").is_dir()
    cli_maps = read_maps(out)
    with h5py.File(out, "r") as f:
        assert f["entry/radial/bin"].attrs["units"] == "1/nm"
        assert list(f["entry/radial"].attrs["axes"]) == ["bin", "y", "x"]
    spec = {"output": "survey.nxs", "defaults": {
        "mesh": [NY, NX], "poni": scan.poni_file, "radial_bins": 30, "composite": False,
        "roi_sum": False, "corrections": {"mask": scan.mask_file}},
        "scans": [{"name": "a", "inputs": scan.files}, {"name": "b", "inputs": scan.files}]}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    assert cli.main(["run", str(tmp_path / "job.yaml"), "-q"]) == 0
    with h5py.File(tmp_path / "survey.nxs", "r") as f:
        assert sorted(k for k in f if f[k].attrs.get("NX_class") == "NXentry") == ["a", "b"]
        np.testing.assert_array_equal(f["a/radial/radial"][()], cli_maps["radial"])
    # the export command: a survey store (one NXentry per complete scan), a map group
    assert cli.main(["export", str(tmp_path / "survey.nxs.zarr"), str(tmp_path / "e.nxs"),
                     "-q"]) == 0
    assert cli.main(["export", str(tmp_path / "radial.nxs.zarr"), str(tmp_path / "e1.nxs"),
                     "-q"]) == 0
    with h5py.File(tmp_path / "e.nxs", "r") as f, h5py.File(tmp_path / "e1.nxs", "r") as g:
        assert sorted(f) == ["a", "b"] and list(g) == ["entry"]
        np.testing.assert_array_equal(f["b/radial/radial"][()], g["entry/radial/radial"][()])
    assert cli.main(["export", str(tmp_path / "radial.nxs.zarr"), str(tmp_path / "e1.nxs"),
                     "-q"]) == 2                       # exists: --overwrite replaces it
    mapped = Mapper(NX, NY, mask=scan.mask_file, poni=scan.poni_file).radial_map(
        scan.files, 30)[1]
    np.testing.assert_array_equal(mapped, cli_maps["radial"])
    # nothing to redo: the NeXus file is kept, the command says skipped
    before = out.stat().st_mtime_ns
    assert cli.main(["radial", *scan.files, *common, "-o", str(out)]) == 0
    assert out.stat().st_mtime_ns == before


def test_geometry_settings_errors(data, small_scan, tmp_path, capsys):
    scan = data[0]
    base = ["--npt-y", str(NY), "--npt-x", str(NX), "-o", str(tmp_path / "x.zarr"), "-q"]
    cases = [
        (["radial", *scan.files, "--radial-bins", "10", "--solid-angle"], "--solid-angle",
         "PONI"),
        (["radial", *scan.files, "--radial-bins", "10"], "--radial-bins", "PONI"),
        (["annulus", *scan.files, "--poni", scan.poni_file, "--cen-y", "3", "--cen-x", "4",
          "--radius", "15", "--width", "1"], "--cen-y", "give no centre"),
        (["annulus", *scan.files, "--radius", "15", "--width", "1"], "--cen-y", "no centre"),
        (["radial", *scan.files, "--poni", scan.poni_file, "--radial-bins", "0"],
         "--radial-bins", ">= 1"),
        (["radial", *scan.files, "--poni", scan.poni_file, "--radial-bins", "10",
          "--unit", "furlong"], "--unit", "must be one of"),
        (["radial", *scan.files, "--poni", scan.poni_file, "--radial-bins", "10",
          "--polarization", "2"], "--polarization", "[-1, 1]"),
        (["radial", *scan.files, "--poni", str(tmp_path / "none.poni"), "--radial-bins",
          "10"], "--poni", "not found"),
    ]
    for args, flag, reason in cases:
        capsys.readouterr()
        assert cli.main(args + base) == 2, args
        err = capsys.readouterr().err
        assert flag in err and reason in err, (args, err)
    with pytest.raises(InputError) as err:
        Mapper(6, 4, solid_angle=True).radial_map(small_scan.files, 4, cen_x=3, cen_y=3)
    assert err.value.argument == "solid_angle"
