"""Files written by the real hexrd (tests/fixtures/hexrd, see its README) open in ours with
equal frames and the metadata hexrd reads; hexrd's relative-path rule works too."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from xrsmap_dask import imageseries
from xrsmap_dask.imageseries.omega import OmegaImageSeries, OmegaWedges

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "hexrd")


def reference_stack() -> np.ndarray:
    """The frames tools/make_hexrd_fixtures.py gave hexrd (same formula)."""
    a = (np.arange(4 * 12 * 10, dtype=np.int64).reshape(4, 12, 10) * 7919) % 1000
    a[a < 600] = 0
    return a.astype(np.uint16)


def omegas() -> np.ndarray:
    w = OmegaWedges(4)
    w.addwedge(0.0, 1.0, 4)
    return w.omegas


# file -> (format, open keywords, metadata as hexrd reads it)
CASES = {
    "hdf5_gzip.h5": ("hdf5", {"path": "imageseries"},
                     {"omega": omegas(), "panel": np.bytes_(b"ff1"),
                      "temperature": np.float64(295.5)}),
    "fc.npz": ("frame-cache", {}, {"omega": omegas(), "panel": np.array("ff1"),
                                   "temperature": np.array(295.5)}),
    "fc.fch5": ("frame-cache", {}, {"omega": omegas(), "panel": "ff1",
                                    "temperature": np.float64(295.5),
                                    "detector": {"name": "ge", "pixels": np.array([12, 10])}}),
    "fc.yml": ("frame-cache", {}, {"omega": omegas(), "panel": "ff1",
                                   "legacy": np.array([1, 2, 3])}),
    "imagefiles.yml": ("image-files", {}, {"omega": omegas(), "panel": "ff1"}),
    "raw.yml": ("raw-image", {}, {}),
}


def assert_same(got, want, key=""):
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), key
        for k in want:
            assert_same(got[k], want[k], f"{key}/{k}")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.shape == want.shape, key
        assert got.dtype.kind == want.dtype.kind, key
        np.testing.assert_array_equal(got, want)
    else:
        assert type(got) is type(want) and got == want, (key, got, want)


@pytest.mark.parametrize("name", list(CASES))
def test_hexrd_written_file_opens_with_equal_frames_and_metadata(name, tmp_path,
                                                                monkeypatch):
    fmt, kw, meta = CASES[name]
    monkeypatch.chdir(tmp_path)  # anywhere: relative paths resolve beside the YAML first
    path = os.path.join(FIXTURES, name)
    for ims in (imageseries.open(path, fmt, **kw), imageseries.open(path, **kw)):
        assert len(ims) == 4 and ims.shape == (12, 10)
        np.testing.assert_array_equal(np.stack(list(ims)), reference_stack())
        np.testing.assert_array_equal(ims.to_dask(frames_per_chunk=3).compute(),
                                      reference_stack())
        assert_same(ims.metadata, meta)
    if "omega" in meta:
        np.testing.assert_array_equal(OmegaImageSeries(ims).omega, omegas())


def test_hexrd_relative_paths_from_the_working_directory(tmp_path, monkeypatch):
    """hexrd resolves YAML paths against the working directory: a YAML copied elsewhere
    still opens in ours when run from the directory hexrd would be run from."""
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("imagefiles.yml", "raw.yml", "fc.yml"):
        shutil.copy(os.path.join(FIXTURES, name), moved / name)
    monkeypatch.chdir(FIXTURES)
    for name in ("imagefiles.yml", "raw.yml", "fc.yml"):
        ims = imageseries.open(str(moved / name))
        np.testing.assert_array_equal(np.stack(list(ims)), reference_stack())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="imagefiles"):
        imageseries.open(str(moved / "imagefiles.yml"))
