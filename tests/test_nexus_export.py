"""NeXus export: a real map group (maps + store on EDF files) -> NeXus -> numpy round-trips
exactly; the file follows the NeXus rules, opens with h5py and silx; bad outputs refused."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import fabio
import h5py
import numpy as np
import pytest
import zarr

from xrsmap_dask import imageseries, maps, store
from xrsmap_dask.errors import InputError
from xrsmap_dask.nexus_export import classify, export, plain_attrs, read_maps
from xrsmap_dask.scan import ScanGeometry


@pytest.fixture(scope="module")
def map_group(small_scan, tmp_path_factory):
    """A complete map group (composite, ROI sum, two rings) of the 4 x 6 scan, frame 7
    unreadable (on_error='fill': NaN points in the sums)."""
    tmp = tmp_path_factory.mktemp("nexus")
    paths = [shutil.copy(f, tmp) for f in small_scan.files]
    with open(paths[7], "r+b") as f:
        f.truncate(700)
    ims = imageseries.from_files(paths, on_error="fill")
    spec = maps.MapSpec(roi=(slice(8, 40), slice(4, 28)), binning=4,
                        rings=maps.rings(small_scan.centre[0], small_scan.centre[1], [8, 14], 3))
    corr = maps.Corrections(mask=fabio.open(small_scan.mask_file).data)
    m = maps.build_maps(ims, spec, ScanGeometry(4, 6), corr)
    path = str(tmp / "maps.zarr")
    store.write_maps(m, path, ims)
    return path


def _tree_digest(path) -> str:
    h = hashlib.sha1()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_round_trip_is_exact_and_input_untouched(map_group, tmp_path):
    before = _tree_digest(map_group)
    out = export(map_group, tmp_path / "maps.nxs")
    assert _tree_digest(map_group) == before
    assert not [p for p in os.listdir(tmp_path) if ".part" in p]
    group = zarr.open_group(map_group, mode="r")
    got = read_maps(out)
    assert sorted(got) == ["annulus_sum", "composite", "roi_sum"]
    for name, arr in got.items():
        ref = group[name][...]
        assert arr.dtype == ref.dtype and arr.shape == ref.shape
        np.testing.assert_array_equal(arr, ref)          # NaN where NaN, bit for bit
    assert np.isnan(got["roi_sum"]).sum() == 1            # the unreadable frame


def test_nexus_structure(map_group, tmp_path):
    out = export(map_group, tmp_path / "maps.nxs")
    job = store.read_attrs(map_group)
    with h5py.File(out, "r") as f:
        assert f.attrs["default"] == "entry" and f.attrs["NX_class"] == "NXroot"
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry" and entry.attrs["default"] == "roi_sum"
        proc = entry["process"]
        assert proc.attrs["NX_class"] == "NXprocess"
        assert proc["program"][()].decode() == "xrsmap-dask"
        assert proc["version"][()].decode() == job["xrsmap_dask_version"]
        assert proc["date"][()].decode() == job["date"]
        config = json.loads(proc["configuration/data"][()])
        inputs = json.loads(proc["inputs/data"][()])
        assert config["roi"] == job["roi"] and config["rings"] == job["rings"]
        assert inputs["first_file"] == job["first_file"] and inputs["nframes"] == 24
        assert [b[0] for b in inputs["bad_frames"]] == [7]
        assert "chunk_done" not in entry
        for name in ("roi_sum", "annulus_sum", "composite"):
            grp = entry[name]
            assert grp.attrs["NX_class"] == "NXdata"
            signal = grp[grp.attrs["signal"]]
            axes = [a.decode() if isinstance(a, bytes) else a for a in grp.attrs["axes"]]
            assert len(axes) == signal.ndim
            for k, axis in enumerate(axes):       # NeXus: <axis>_indices and matching length
                assert grp.attrs[f"{axis}_indices"] == k
                assert grp[axis].shape == (signal.shape[k],)
            assert signal.attrs["units"] == "counts" and signal.attrs["long_name"]
        ann = entry["annulus_sum"]
        np.testing.assert_array_equal(ann["ring"][()], [8, 14])
        assert ann["ring"].attrs["units"] == "pixel"
        assert ann.attrs["ring_width_indices"] == 0
        np.testing.assert_array_equal(ann["ring_width"][()], [3, 3])
        comp = entry["composite"]
        # centre of each 4 x 4 binned pixel, in detector pixels: 8 + 1.5, 12 + 1.5, ...
        np.testing.assert_array_equal(comp["det_y"][()], 9.5 + 4 * np.arange(8))
        np.testing.assert_array_equal(comp["det_x"][()], 5.5 + 4 * np.arange(6))
        assert comp["det_x"].attrs["units"] == "pixel"
        # the scan coordinates the store holds (point indices without a step), with units
        np.testing.assert_array_equal(entry["roi_sum/x"][()], np.arange(6))
        assert entry["roi_sum/y"].attrs["units"] == "1"


def test_silx_reads_it(map_group, tmp_path):
    import silx.io
    from silx.io.nxdata import NXdata, get_default, is_valid_nxdata

    out = export(map_group, tmp_path / "maps.nxs")
    group = zarr.open_group(map_group, mode="r")
    with silx.io.open(str(out)) as f:
        default = get_default(f)
        assert default is not None and default.signal.name.endswith("/roi_sum")
        for name in ("roi_sum", "annulus_sum", "composite"):
            assert is_valid_nxdata(f["entry"][name])
            nx = NXdata(f["entry"][name])
            np.testing.assert_array_equal(nx.signal[()], group[name][...])
        assert NXdata(f["entry/annulus_sum"]).axes_dataset_names == ["ring", "y", "x"]


def test_stats_group_and_coordinates_from_the_store(tmp_path):
    """A group of detector images (dims row/col) and a map group carrying its own y/x
    coordinates with units (as the store will): both become NXdata with those axes."""
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    img = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    g.create_array("median", shape=img.shape, dtype="float32",
                   dimension_names=("row", "col"))[...] = img
    g.attrs.update({"complete": True, "stats": ["median"], "nframes": 3})
    export(tmp_path / "s.zarr", tmp_path / "s.nxs")
    with h5py.File(tmp_path / "s.nxs", "r") as f:
        np.testing.assert_array_equal(f["entry/median/median"][()], img)
        assert f["entry/median/col"].attrs["units"] == "pixel"
    g = zarr.open_group(str(tmp_path / "m.zarr"), mode="w", zarr_format=3)
    g.create_array("roi_sum", shape=(2, 3), dtype="float64",
                   dimension_names=("y", "x"))[...] = np.arange(6.0).reshape(2, 3)
    g["roi_sum"].attrs.update({"units": "counts/s", "long_name": "flux"})
    for dim, values in (("y", [0.0, 0.5]), ("x", [10.0, 10.2, 10.4])):
        arr = g.create_array(dim, shape=(len(values),), dtype="float64", dimension_names=(dim,))
        arr[...] = values
        arr.attrs["units"] = "mm"
    g.attrs.update({"complete": True, "roi": {"rows": [0, 2], "cols": [0, 3]}, "ok": True,
                    "note": None})
    maps_, coords = classify(g)
    assert list(maps_) == ["roi_sum"] and sorted(coords) == ["x", "y"]
    export(tmp_path / "m.zarr", tmp_path / "m.nxs")
    with h5py.File(tmp_path / "m.nxs", "r") as f:
        grp = f["entry/roi_sum"]
        np.testing.assert_array_equal(grp["x"][()], [10.0, 10.2, 10.4])
        assert grp["x"].attrs["units"] == "mm" and grp["roi_sum"].attrs["units"] == "counts/s"
        config = json.loads(f["entry/process/configuration/data"][()])
        assert config["ok"] is True and config["note"] is None


def test_refusals(map_group, tmp_path):
    out = tmp_path / "maps.nxs"
    export(map_group, out)
    with pytest.raises(InputError, match="exists; pass overwrite=True") as err:
        export(map_group, out)
    assert err.value.path == str(out)
    export(map_group, out, overwrite=True)
    with pytest.raises(InputError, match="overwrite the zarr input"):
        export(map_group, os.path.join(map_group, "x.nxs"))
    with pytest.raises(InputError, match="not a zarr group"):
        export(tmp_path / "nothing.zarr", tmp_path / "n.nxs")
    part = str(tmp_path / "part.zarr")
    shutil.copytree(map_group, part)
    zarr.open_group(part, mode="r+").attrs["complete"] = False
    with pytest.raises(InputError, match="incomplete"):
        export(part, tmp_path / "p.nxs")
    assert not os.path.exists(tmp_path / "p.nxs")
    empty = zarr.open_group(str(tmp_path / "e.zarr"), mode="w", zarr_format=3)
    empty.attrs["complete"] = True
    with pytest.raises(InputError, match="no maps"):
        export(tmp_path / "e.zarr", tmp_path / "e.nxs")


def test_plain_attrs_and_the_stores_attrs_make_to_netcdf_work(map_group, tmp_path):
    """The store keeps structured attrs as JSON strings (named in json_attrs), so
    xarray's to_netcdf takes a map group as it is; plain_attrs does the same for HDF5."""
    import xarray as xr

    assert plain_attrs({"a": {"b": 1}, "c": [1, 2], "d": [1, "x"], "e": None, "f": True,
                        "g": "s", "h": 2.5}) == {
        "a": '{"b": 1}', "c": [1, 2], "d": '[1, "x"]', "e": "null", "f": "true", "g": "s",
        "h": 2.5}
    ds = xr.open_zarr(map_group)
    ds.to_netcdf(tmp_path / "maps.nc")
    back = xr.open_dataset(tmp_path / "maps.nc")
    assert json.loads(back.attrs["roi"]) == store.read_attrs(map_group)["roi"]
    assert store.read_attrs(map_group)["roi"]["xrsmap"] == [4, 8, 27, 39]
    np.testing.assert_array_equal(back["roi_sum"].values, ds["roi_sum"].values)
    back.close()
