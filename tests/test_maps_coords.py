"""Coordinates and units of outputs (xrsmap_dask.maps.coords, the store's attrs): every
dimension of every map and statistics image has a coordinate with units, xarray opens the
groups with only the maps as data variables, .sel works, to_netcdf works; scan coordinates
from a step/origin or measured motor positions (npy, csv, HDF5 datasets)."""
from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr

from xrsmap_dask import cli
from xrsmap_dask.errors import InputError
from xrsmap_dask.mapper import Mapper
from xrsmap_dask.maps.coords import ScanAxes
from xrsmap_dask.store import read_attrs, write_statistics

NY, NX = 4, 6


def _open(path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # consolidated: xarray opens it without warning
        return xr.open_zarr(path)


def _check_units_everywhere(ds: xr.Dataset) -> None:
    for name, var in ds.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("long_name"), name
        for dim in var.dims:
            assert dim in ds.coords, (name, dim)
            assert ds[dim].attrs.get("units"), (name, dim)


def _composite(scan, out, *extra):
    return cli.main(["composite", *scan.files, "--npt-y", str(NY), "--npt-x", str(NX),
                     "--roi", "4", "8", "27", "39", "--binning", "4", "--mask", scan.mask_file,
                     "-o", str(out), "-q", *extra])


def test_map_output_coordinates_units_and_netcdf(small_scan, tmp_path):
    out = tmp_path / "maps.zarr"
    assert _composite(small_scan, out, "--step", "0.5", "-0.25", "--origin", "10", "20",
                      "--position-units", "um") == 0
    ds = _open(out)
    assert sorted(ds.data_vars) == ["composite", "roi_sum"]       # records are coordinates
    assert {"chunk_done", "chunk_checksum", "chunk_index", "frame_unreadable"} <= set(ds.coords)
    _check_units_everywhere(ds)
    np.testing.assert_allclose(ds.y.values, 10 + 0.5 * np.arange(NY))
    np.testing.assert_allclose(ds.x.values, 20 - 0.25 * np.arange(NX))
    assert ds.y.attrs["units"] == "um" and ds.roi_sum.attrs["units"] == "counts"
    assert ds.composite.dims == ("y", "x", "det_y", "det_x")
    np.testing.assert_array_equal(ds.det_y.values, 9.5 + 4 * np.arange(8))   # rows 8..39
    np.testing.assert_array_equal(ds.det_x.values, 5.5 + 4 * np.arange(6))   # cols 4..27
    point = ds.roi_sum.sel(y=11.0, x=19.75)
    assert float(point) == float(ds.roi_sum.values[2, 1])
    for engine in ("h5netcdf", "scipy"):            # netCDF-4 and netCDF-3
        ds.to_netcdf(tmp_path / f"maps_{engine}.nc", engine=engine)
        back = xr.open_dataset(tmp_path / f"maps_{engine}.nc", engine=engine)
        np.testing.assert_array_equal(back.composite.values, ds.composite.values)
        assert back.y.attrs["units"] == "um" and back.attrs["complete"] == "true"
        back.close()
    attrs = read_attrs(out)          # structured attrs are JSON strings, decoded here
    assert attrs["roi"]["xrsmap"] == [4, 8, 27, 39] and attrs["complete"] is True
    assert attrs["scan_axes"] == {"units": "um", "source": "step", "step": [0.5, -0.25],
                                  "origin": [10.0, 20.0]}


def test_stats_output_coordinates_units_and_netcdf(small_scan, tmp_path):
    out = tmp_path / "stats.zarr"
    write_statistics(small_scan.files, out, ["median", "max"], [90], roi=(slice(8, 40),
                                                                            slice(4, 28)))
    ds = _open(out)
    assert sorted(ds.data_vars) == ["max", "median", "percentile_90"]
    _check_units_everywhere(ds)
    assert ds["median"].dims == ("det_y", "det_x")
    np.testing.assert_array_equal(ds.det_y.values, np.arange(8, 40))
    np.testing.assert_array_equal(ds.det_x.values, np.arange(4, 28))
    assert "percentile" in ds.percentile_90.attrs["long_name"]
    ds.to_netcdf(tmp_path / "stats.nc", engine="h5netcdf")   # uint16 max: netCDF-4
    out2 = tmp_path / "stats_cli.zarr"      # the CLI's stats output: the same dims
    assert cli.main(["stats", *small_scan.files, "--stat", "median", "--roi", "4", "8", "27",
                     "39", "-o", str(out2), "-q"]) == 0
    ds2 = _open(out2)
    _check_units_everywhere(ds2)
    np.testing.assert_array_equal(ds2.det_x.values, np.arange(4, 28))
    np.testing.assert_array_equal(ds2["median"].values, ds["median"].values)
    ds2.to_netcdf(tmp_path / "stats2.nc", engine="h5netcdf")


def test_measured_motor_positions_from_tables_and_hdf5(small_scan, tmp_path):
    rng = np.random.default_rng(1)
    iy, ix = np.divmod(np.arange(NY * NX), NX)
    pos = np.stack([1.0 + 0.1 * iy, 5.0 + 0.02 * ix], axis=1) + rng.normal(0, 1e-4, (24, 2))
    np.save(tmp_path / "pos.npy", pos)
    np.savetxt(tmp_path / "pos.csv", pos, delimiter=",", header="sz,sy", comments="")
    with h5py.File(tmp_path / "bliss.h5", "w") as f:
        for name, col in (("sz", 0), ("sy", 1)):
            f[f"1.1/measurement/{name}"] = pos[:, col]
            f[f"1.1/measurement/{name}"].attrs["units"] = "mm"
    sources = {"npy": [str(tmp_path / "pos.npy")], "csv": [str(tmp_path / "pos.csv")],
               "h5": [f"{tmp_path}/bliss.h5:/1.1/measurement/sz",
                      f"{tmp_path}/bliss.h5:/1.1/measurement/sy"]}
    for kind, value in sources.items():
        out = tmp_path / f"{kind}.zarr"
        assert _composite(small_scan, out, "--motor-positions", *value) == 0, kind
        ds = _open(out)
        np.testing.assert_allclose(ds.y.values, pos[:, 0].reshape(NY, NX).mean(axis=1))
        np.testing.assert_allclose(ds.x.values, pos[:, 1].reshape(NY, NX).mean(axis=0))
        np.testing.assert_array_equal(ds.y_position.values, pos[:, 0].reshape(NY, NX))
        assert ds.roi_sum.coords["x_position"].dims == ("y", "x")
        assert ds.y.attrs["units"] == "mm"
        if kind != "npy":
            assert ds.x.attrs["long_name"].startswith("sy")
        _check_units_everywhere(ds)
    # Mapper: an array, and a scan with rows no frame reaches (filled on the line)
    m = Mapper(NX, NY, motor_positions=pos[:18], allow_incomplete=True,
               output=str(tmp_path / "m.zarr"))
    with pytest.warns(UserWarning, match="6 of 24 map points have no frame"):
        m.composite_map(small_scan.files[:18], roi=(4, 8, 27, 39), binning=4)
    ds = _open(tmp_path / "m.zarr")
    np.testing.assert_allclose(ds.y.values[:3], pos[:18, 0].reshape(3, NX).mean(axis=1))
    assert ds.y.values[3] == pytest.approx(1.3, abs=1e-3)
    assert np.isnan(ds.y_position.values[3]).all()


def test_scan_axes_errors():
    for kw, arg in (({"step": [0, 1]}, "step"), ({"step": "1 2"}, "step"),
                    ({"origin": [1]}, "origin"), ({"units": ""}, "position_units"),
                    ({"positions": np.ones((3, 3))}, "motor_positions"),
                    ({"positions": np.ones((3, 2)), "step": (1, 1)}, "motor_positions")):
        with pytest.raises(InputError) as err:
            ScanAxes(**kw)
        assert err.value.argument == arg, kw
    axes = ScanAxes(positions=np.zeros((2, 2)))
    with pytest.raises(InputError, match="2 motor positions for 6 frames"):
        axes.arrays(np.arange(6).reshape(2, 3))


def test_position_units_are_checked_on_every_face(small_scan, capsys):
    """An unknown unit is refused by the CLI (exit 2, naming the flag) and Mapper alike."""
    argv = ["composite", *small_scan.files, "--npt-y", "6", "--npt-x", "4", "--step", "1",
            "1", "--position-units", "furlongs", "-o", "never.zarr", "-q"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--position-units" in err and "furlongs" in err and "mm" in err
    with pytest.raises(InputError, match="furlongs"):
        Mapper(4, 6, step=(1, 1), position_units="furlongs")
    assert not os.path.exists("never.zarr")
