"""The format registry: entries, keyword checks, guessing and a toy format registered through
the registry alone (real files in tmp_path, compared with numpy)."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from xrsmap_dask import imageseries
from xrsmap_dask.errors import FormatError, InputError
from xrsmap_dask.imageseries.base import ImageSeries
from xrsmap_dask.imageseries.registry import ImageSeriesFormat
from xrsmap_dask.synth import write_edf


# -- a toy format: frames as consecutive .npy arrays in one file ------------------------------
class NpyStackSeries(ImageSeries):
    def __init__(self, filename, scale: int = 1):
        with open(filename, "rb") as f:
            self._data = np.load(f, allow_pickle=False) * scale
        self._shape = self._data.shape[1:]
        self._dtype = self._data.dtype
        self._metadata = {"source": os.path.basename(filename)}

    def __len__(self):
        return len(self._data)

    def _read_region(self, j, rows, cols):
        return self._data[j, rows, cols]


class NpyStackFormat(ImageSeriesFormat):
    name = "toy-npy"
    description = "a .npy stack (test format)"
    suffixes = (".npystack",)
    open_keywords = frozenset({"scale"})
    write_keywords = frozenset()

    def open(self, filename, **kwargs):
        return NpyStackSeries(filename, **kwargs)

    def write(self, ims, filename, **kwargs):
        with open(filename, "wb") as f:
            np.save(f, ims.read_block(0, len(ims)), allow_pickle=False)


@pytest.fixture
def toy_format():
    entry = imageseries.register(NpyStackFormat())
    yield entry
    imageseries.unregister(entry.name)


def test_toy_format_through_the_registry_alone(tmp_path, toy_format):
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    src = imageseries.open(None, "array", data=data)
    target = str(tmp_path / "x.npystack")
    imageseries.write(src, target, "toy-npy")
    assert imageseries.guess_format(target) == "toy-npy"
    ims = imageseries.open(target)  # guessed from the suffix the entry declares
    np.testing.assert_array_equal(np.stack(list(ims)), data)
    np.testing.assert_array_equal(ims.to_dask().compute(), data)
    doubled = imageseries.open(target, "toy-npy", scale=2)
    np.testing.assert_array_equal(doubled[1], data[1] * 2)
    assert imageseries.formats()["toy-npy"] is toy_format
    with pytest.raises(TypeError, match="'toy-npy'.*'gain'"):
        imageseries.open(target, "toy-npy", gain=2)


def test_unknown_keyword_is_input_error_and_type_error(tmp_path):
    data = np.zeros((2, 3, 4), np.uint8)
    with pytest.raises(InputError, match=r"format 'array' open takes no keyword.*'bogus'") \
            as info:
        imageseries.open(None, "array", data=data, bogus=1)
    assert isinstance(info.value, TypeError)
    src = imageseries.open(None, "array", data=data)
    with pytest.raises(TypeError, match="'hdf5' write.*'compresion'"):
        imageseries.write(src, str(tmp_path / "a.h5"), "hdf5", compresion=4)
    assert not (tmp_path / "a.h5").exists()


def test_unknown_format_is_format_error_and_key_error(tmp_path):
    with pytest.raises(FormatError, match="nope") as info:
        imageseries.open(str(tmp_path / "a.h5"), "nope")
    assert isinstance(info.value, KeyError)
    assert "known:" in str(info.value) and not str(info.value).startswith("'")


def test_on_error_policies(tmp_path):
    data = np.ones((2, 3, 4), np.uint16)
    src = imageseries.open(None, "array", data=data, on_error="raise")  # accepted everywhere
    f = tmp_path / "c.npz"
    imageseries.write(src, str(f), "frame-cache", threshold=0)
    with pytest.raises(InputError, match="'frame-cache' has no on_error policy"):
        imageseries.open(str(f), "frame-cache", on_error="fill")
    assert len(imageseries.open(str(f), "frame-cache", on_error="raise")) == 2
    with_policy = [n for n, e in imageseries.formats().items() if e.accepts_on_error]
    assert {"hdf5", "image-files", "raw-image", "zarr", "files"} <= set(with_policy)


def test_inner_paths_split_and_open(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4)
    h5 = tmp_path / "s.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("entry/data/frames", data=data)
        f.create_dataset("imageseries/images", data=data + 1)
    assert imageseries.split_inner_path(f"{h5}:/entry/data/frames") == (str(h5),
                                                                         "/entry/data/frames")
    assert imageseries.split_inner_path("C:/x.edf") == ("C:/x.edf", None)
    assert imageseries.split_inner_path("a.edf:/x") == ("a.edf:/x", None)
    np.testing.assert_array_equal(imageseries.open(f"{h5}:/entry/data/frames")[1], data[1])
    np.testing.assert_array_equal(imageseries.open(f"{h5}:/imageseries")[0], data[0] + 1)
    store = tmp_path / "s.zarr"
    src = imageseries.open(None, "array", data=data)
    imageseries.write(src, str(store), "zarr", path="g")
    assert imageseries.split_inner_path(f"{store}:/g") == (str(store), "/g")
    np.testing.assert_array_equal(imageseries.open(f"{store}:/g")[1], data[1])
    np.testing.assert_array_equal(imageseries.open(f"{store}:/g/images")[0], data[0])


def test_guess_format_by_content_and_keys(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    src = imageseries.open(None, "array", data=data)
    cases = {"a.h5": ("hdf5", {}), "b.npz": ("frame-cache", {"threshold": 0}),
             "c.fch5": ("frame-cache", {"threshold": 0, "style": "fch5"}),
             "d.yml": ("frame-cache", {"threshold": 0, "style": "yml"}),
             "e.yml": ("image-files", {}), "f.yml": ("raw-image", {}),
             "g.zarr": ("zarr", {})}
    for name, (fmt, kw) in cases.items():
        imageseries.write(src, str(tmp_path / name), fmt, **kw)
        assert imageseries.guess_format(str(tmp_path / name)) == fmt, name
    # an fch5 cache under an .h5 name is a frame cache, not a plain HDF5 file
    os.rename(tmp_path / "c.fch5", tmp_path / "c.h5")
    assert imageseries.guess_format(str(tmp_path / "c.h5")) == "frame-cache"
    write_edf(str(tmp_path / "x_0.edf"), data[0])
    write_edf(str(tmp_path / "x_1.edf"), data[1])
    assert imageseries.guess_format(str(tmp_path / "x_0.edf")) == "files"
    assert imageseries.guess_format(str(tmp_path / "x_*.edf")) == "files"
    assert imageseries.guess_format([str(tmp_path / "x_0.edf")]) == "files"
    np.testing.assert_array_equal(np.stack(list(imageseries.open(str(tmp_path / "x_*.edf")))),
                                  data)
    (tmp_path / "other.yml").write_text("just: text\n")
    with pytest.raises(FormatError, match="other.yml"):
        imageseries.guess_format(str(tmp_path / "other.yml"))


def test_every_entry_is_complete():
    for name, entry in imageseries.formats().items():
        assert entry.name == name and entry.description
        assert isinstance(entry.open_keywords, frozenset)
        assert entry.write_keywords is None or isinstance(entry.write_keywords, frozenset)
        assert "on_error" not in entry.open_keywords  # declared by accepts_on_error
