"""Input resolution (``inputs.py``), the one path from input strings to a series for every
face; and a toy format registered through the format registry alone, mapped and converted
through the command line with no other change."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from xrsmap_dask import cli, imageseries
from xrsmap_dask.errors import InputError
from xrsmap_dask.inputs import open_inputs, read_image, resolve_inputs
from xrsmap_dask.synth import write_edf
from test_imageseries_registry import NpyStackFormat


@pytest.fixture
def toy():
    """The registry test's toy format (frames as one ``.npy`` stack, suffix ``.npystack``),
    registered through the registry alone."""
    entry = imageseries.register(NpyStackFormat())
    yield entry
    imageseries.unregister(entry.name)


def test_toy_format_maps_through_the_cli(tmp_path, toy, capsys):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 1000, (6, 16, 12)).astype(np.uint16)
    src = tmp_path / "scan.npystack"
    with open(src, "wb") as f:
        np.save(f, stack, allow_pickle=False)
    out = tmp_path / "maps.zarr"
    assert cli.main(["composite", str(src), "--npt-y", "2", "--npt-x", "3", "--roi", "2", "4",
                     "9", "11", "--binning", "4", "-o", str(out), "-q"]) == 0
    g = zarr.open_group(str(out), mode="r")
    roi = stack[:, 4:12, 2:10].astype(np.float64)
    np.testing.assert_array_equal(g["roi_sum"][...], roi.sum((1, 2)).reshape(2, 3))
    comp = roi.reshape(6, 2, 4, 2, 4).sum((2, 4)).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(g["composite"][...], comp)
    # info lists it, convert writes it
    assert cli.main(["info", "--formats", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["toy-npy"]["write"] is True and ".npy stack" in \
        listed["toy-npy"]["description"]
    back = tmp_path / "copy.npystack"
    assert cli.main(["convert", str(out.parent / "maps.zarr"), "-o", str(back),
                     "--format", "toy-npy", "-q"]) == 2  # a map group is not an image series
    h5 = tmp_path / "scan.h5"
    assert cli.main(["convert", str(src), "-o", str(h5), "--format", "hdf5", "--path",
                     "/imageseries", "-q"]) == 0
    assert cli.main(["convert", f"{h5}:/imageseries/images", "-o", str(back), "--format",
                     "toy-npy", "-q"]) == 0
    np.testing.assert_array_equal(np.load(back), stack)


def test_resolve_inputs_kinds(tmp_path):
    import h5py

    write_edf(str(tmp_path / "a_0.edf"), np.zeros((4, 5), np.uint16))
    write_edf(str(tmp_path / "a_1.edf"), np.ones((4, 5), np.uint16))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["/entry/images"] = np.arange(60, dtype=np.uint16).reshape(3, 4, 5)
    spec = resolve_inputs(str(tmp_path / "a_*.edf"))
    assert spec.kind == "files" and len(spec.paths) == 2
    spec = resolve_inputs("s.h5:/entry/images", base_dir=str(tmp_path))
    assert (spec.kind, spec.dataset) == ("hdf5", "/entry/images")
    assert len(open_inputs(spec)) == 3
    with pytest.raises(InputError, match="only input"):
        resolve_inputs([str(tmp_path / "s.h5:/entry/images"), str(tmp_path / "a_0.edf")])
    np.testing.assert_array_equal(read_image(str(tmp_path / "a_1.edf"), "mask"),
                                  np.ones((4, 5)))
    with pytest.raises(InputError) as err:
        read_image(str(tmp_path / "missing.edf"), "dark")
    assert err.value.argument == "dark" and "missing.edf" in str(err.value)


def test_on_error_fill_refused_by_formats_without_the_policy(tmp_path):
    from xrsmap_dask.inputs import open_series

    data = np.ones((2, 3, 4), np.uint16)
    imageseries.write(imageseries.open(None, "array", data=data), str(tmp_path / "c.npz"),
                      "frame-cache", threshold=0)
    with pytest.raises(InputError) as err:
        open_series(str(tmp_path / "c.npz"), on_error="fill")
    assert err.value.argument == "on_error" and "frame-cache" in str(err.value)
    assert os.path.basename(err.value.path) == "c.npz"


def test_reader_option_reaches_the_format_from_every_face(tmp_path):
    """``missing_chunks`` (one option-table entry marked ``reader``) travels from the CLI,
    a job spec and Mapper to the zarr format: a never-written chunk is an error by default
    and the fill value with ``fill-value``."""
    import zarr as zarr_mod

    from xrsmap_dask import Mapper

    data = np.arange(1, 4 * 6 * 5 + 1, dtype=np.uint16).reshape(4, 6, 5)
    store = tmp_path / "s.zarr"
    imageseries.write(imageseries.open(None, "array", data=data), str(store), "zarr",
                      frames_per_chunk=1)
    arr = zarr_mod.open_array(str(store), path="images", mode="r")
    chunk = sorted(p for p in (store / "images" / "c").rglob("*") if p.is_file())[2]
    chunk.unlink()  # frame 2 never written
    assert arr.fill_value == 0
    want = data.sum((1, 2)).astype(float)
    want[2] = 0.0
    # CLI
    assert cli.main(["composite", str(store), "--npt-y", "2", "--npt-x", "2", "-o",
                     str(tmp_path / "a.zarr"), "-q"]) == 2
    assert cli.main(["composite", str(store), "--npt-y", "2", "--npt-x", "2", "-o",
                     str(tmp_path / "b.zarr"), "--missing-chunks", "fill-value", "-q"]) == 0
    got = zarr_mod.open_group(str(tmp_path / "b.zarr"), mode="r")["roi_sum"][...]
    np.testing.assert_array_equal(got.ravel(), want)
    # job spec
    spec = tmp_path / "job.yaml"
    spec.write_text(f"output: {tmp_path / 'j.zarr'}\nscans:\n  - {{name: s, inputs: {store}, "
                    f"mesh: [2, 2], missing_chunks: fill-value}}\n")
    assert cli.main(["run", str(spec), "-q"]) == 0
    got = zarr_mod.open_group(str(tmp_path / "j.zarr" / "s"), mode="r")["roi_sum"][...]
    np.testing.assert_array_equal(got.ravel(), want)
    # Mapper
    _, sums = Mapper(2, 2, missing_chunks="fill-value").composite_map(str(store))
    np.testing.assert_array_equal(sums.ravel(), want)
    with pytest.raises(InputError, match="missing_chunks.*fill"):
        Mapper(2, 2, missing_chunks="zeros")
