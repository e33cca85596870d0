"""hexrd drop-in behaviour (issue 13): names, formats, errors and file semantics, each checked
against numpy on real files written in tmp_path."""
from __future__ import annotations

import io
import pickle

import h5py
import hdf5plugin
import numpy as np
import pytest

from xrsmap_dask import imageseries
from xrsmap_dask.errors import FrameReadError, InputError
from xrsmap_dask.synth import write_edf


def stack(n=4, h=6, w=5, dtype=np.uint16) -> np.ndarray:
    a = (np.arange(n * h * w).reshape(n, h, w) * 37) % 251
    return a.astype(dtype)


# -- names ---------------------------------------------------------------------------------
def test_hexrd_names_exist():
    from xrsmap_dask.imageseries import load, omega, process, save, stats

    assert imageseries.stats is stats and imageseries.process is process
    assert imageseries.omega is omega and imageseries.load is load
    for module, name in ((load.array, "ArrayImageSeriesAdapter"),
                         (load.hdf5, "HDF5ImageSeriesAdapter"),
                         (load.framecache, "FrameCacheImageSeriesAdapter"),
                         (load.imagefiles, "ImageFilesImageSeriesAdapter"),
                         (load.rawimage, "RawImageSeriesAdapter"),
                         (load.function, "FunctionImageSeriesAdapter"),
                         (load.eiger_stream_v1, "EigerStreamV1ImageSeriesAdapter"),
                         (load.eiger_stream_v2, "EigerStreamV2ImageSeriesAdapter")):
        assert hasattr(module, name), name
        assert load.Registry.adapter_registry[getattr(module, name).format] \
            is getattr(module, name)
    assert callable(save.write) and callable(stats.sum) and callable(stats.sum_iter)
    assert issubclass(omega.OmegaSeriesError, InputError)
    assert callable(load.metadata.yamlmeta) and callable(load.eiger.decompress_frame)


def test_imageseries_of_an_adapter_and_region_options(tmp_path):
    data = stack()
    adapter = imageseries.load.array.ArrayImageSeriesAdapter(None, data=data, meta={"k": 1})
    ims = imageseries.ImageSeries(adapter)
    assert isinstance(ims, imageseries.ImageSeries) and len(ims) == 4
    np.testing.assert_array_equal(ims[2], data[2])
    np.testing.assert_array_equal(ims.get_region(1, ((1, 4), (0, 2))), data[1, 1:4, 0:2])
    assert ims.option_values() == {} and ims.metadata == {"k": 1}
    with pytest.raises(NotImplementedError):
        ims.set_option("threshold_setting", "threshold_2")
    # the adapter pickles (hexrd's test_pickleable) and reads the same afterwards
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(adapter))[3], data[3])


def test_user_adapter_class_becomes_a_format(tmp_path):
    from xrsmap_dask.imageseries.load import ImageSeriesAdapter, Registry

    class ScaledAdapter(ImageSeriesAdapter):
        format = "scaled-test"

        def __init__(self, fname, scale=1):
            self._data = np.load(fname) * scale

        def __len__(self):
            return len(self._data)

        def __getitem__(self, key):
            return self._data[key].copy()

        @property
        def shape(self):
            return self._data.shape[1:]

        @property
        def dtype(self):
            return self._data.dtype

    try:
        np.save(tmp_path / "s.npy", stack())
        ims = imageseries.open(str(tmp_path / "s.npy"), "scaled-test", scale=3)
        np.testing.assert_array_equal(ims.to_dask().compute(), stack() * 3)
        np.testing.assert_array_equal(imageseries.stats.max(ims), (stack() * 3).max(axis=0))
    finally:
        Registry.adapter_registry.pop("scaled-test", None)


# -- indexing ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,kw,name", [("hdf5", {"path": "g"}, "a.h5"),
                                         ("frame-cache", {"threshold": 0}, "a.npz"),
                                         ("frame-cache", {"threshold": 0, "style": "fch5"},
                                          "a.fch5")])
def test_fancy_indexing_as_pull_spots(tmp_path, fmt, kw, name):
    data = stack(h=20, w=17)
    imageseries.write(imageseries.open(None, "array", data=data), str(tmp_path / name), fmt,
                      **kw)
    ims = imageseries.open(str(tmp_path / name), fmt, **({"path": "g"} if fmt == "hdf5"
                                                         else {}))
    rows = np.array([[3, 3, 4], [19, 0, 7]])
    cols = np.array([[16, 2, 2], [0, 5, -1]])
    np.testing.assert_array_equal(ims[2, rows, cols], data[2][rows, cols])
    np.testing.assert_array_equal(ims[(1, slice(2, 18, 3), slice(None, None, -2))],
                                  data[1][2:18:3, ::-2])
    np.testing.assert_array_equal(ims[(3, slice(4, 9))], data[3][4:9])
    assert ims[0, 5, 6] == data[0, 5, 6]
    with pytest.raises(IndexError):
        ims[0, np.array([20]), np.array([0])]


# -- array semantics -----------------------------------------------------------------------
def test_array_series_copies_like_hexrd():
    data = stack()
    ims = imageseries.open(None, "array", data=data)
    data[0, 0, 0] = 999  # the caller's array changes afterwards
    assert ims[0][0, 0] != 999
    frame = ims[1]
    frame[:] = 0  # a frame read is the caller's to change
    assert ims[1].any()
    with pytest.raises(RuntimeError):
        imageseries.open(None, "array", data=np.zeros((2, 2, 2, 2)))
    with pytest.raises(RuntimeError, match="zero length"):
        imageseries.open(None, "array", data=np.zeros((0, 3, 3)))


def test_function_format():
    def frame(j):
        return np.full((3, 4), j, dtype=np.float32)

    ims = imageseries.open(None, "function", func=frame, num_frames=5, meta={"m": 1})
    assert len(ims) == 5 and ims.shape == (3, 4) and ims.dtype == np.float32
    np.testing.assert_array_equal(ims.to_dask().compute(),
                                  np.stack([frame(j) for j in range(5)]))
    with pytest.raises(KeyError):
        imageseries.open(None, "function", num_frames=3)


# -- errors: ours and the builtin hexrd raises ----------------------------------------------
def test_errors_are_ours_and_hexrds_builtins(tmp_path):
    with pytest.raises(KeyError):
        imageseries.open(str(tmp_path / "x.h5"), "no-such-format")
    with pytest.raises(FileNotFoundError) as err:
        imageseries.open(str(tmp_path / "missing.h5"), "hdf5", path="g")
    assert isinstance(err.value, FrameReadError) and "missing.h5" in str(err.value)
    f = tmp_path / "a.h5"
    imageseries.write(imageseries.open(None, "array", data=stack()), str(f), "hdf5", path="g")
    with pytest.raises(KeyError) as err:
        imageseries.open(str(f), "hdf5", path="nope")
    assert isinstance(err.value, InputError) and "nope" in str(err.value)
    with pytest.raises(TypeError) as err:
        imageseries.open(str(f), "hdf5", pth="g")
    assert isinstance(err.value, InputError) and "pth" in str(err.value)
    with pytest.raises(FileNotFoundError):
        imageseries.open(str(tmp_path / "none.npz"), "frame-cache")


def test_image_files_dtype_that_would_truncate(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    write_edf(str(d / "a.edf"), np.array([[1, 300], [2, 3]], dtype=np.uint16))
    write_edf(str(d / "b.edf"), np.array([[1, 200], [2, 3]], dtype=np.uint16))
    y = tmp_path / "f.yml"
    y.write_text("image-files:\n  directory: frames\n  files: '*.edf'\n"
                 "options:\n  dtype: uint8\n")
    ims = imageseries.open(str(y), "image-files")
    assert ims.dtype == np.uint8
    np.testing.assert_array_equal(ims[1], [[1, 200], [2, 3]])
    with pytest.raises(RuntimeError, match="truncate") as err:
        ims[0]
    assert isinstance(err.value, FrameReadError) and "a.edf" in str(err.value)
    filled = imageseries.open(str(y), "image-files", on_error="fill")
    block = filled.read_block(0, 2)
    assert np.isnan(block[0]).all() and np.array_equal(block[1], [[1, 200], [2, 3]])


# -- HDF5 writes ----------------------------------------------------------------------------
def test_hdf5_write_truncates_and_takes_compression(tmp_path):
    f = tmp_path / "w.h5"
    with h5py.File(f, "w") as h:
        h["old"] = np.arange(3)
    meta = {"panel": "ff1", "names": np.array(["a", "bc"]), "t": 295.5}
    ims = imageseries.open(None, "array", data=stack(), meta=meta)
    imageseries.write(ims, str(f), "hdf5", path="imageseries",
                      compression=hdf5plugin.Blosc(cname="zstd", clevel=5))
    with h5py.File(f, "r") as h:
        assert "old" not in h  # truncated as hexrd does
        assert "32001" in h["imageseries/images"]._filters  # Blosc, not gzip
    back = imageseries.open(str(f), "hdf5", path="imageseries")
    np.testing.assert_array_equal(back.read_block(0, 4), stack())
    assert back.metadata["panel"] == "ff1" and type(back.metadata["t"]) is np.float64
    np.testing.assert_array_equal(back.metadata["names"], np.array([b"a", b"bc"]))


def test_fch5_in_an_open_group(tmp_path):
    f = tmp_path / "state.h5"
    ims = imageseries.open(None, "array", data=stack(), meta={"nested": {"a": 1}})
    with h5py.File(f, "w") as h:
        imageseries.write(ims, h, "frame-cache", style="fch5", threshold=0, path="img/det")
    with h5py.File(f, "r") as h:
        back = imageseries.open(h, "frame-cache", style="fch5", path="img/det")
        np.testing.assert_array_equal(np.stack(list(back)), stack())
        assert back.metadata == {"nested": {"a": 1}}


# -- Eiger stream files ----------------------------------------------------------------------
def _bslz4_chunk(frame: np.ndarray, lz4_only: bool = False) -> bytes:
    """Frame bytes in the Dectris stream encoding, made by the HDF5 bitshuffle/LZ4 filters
    (whose chunks are the same 8-byte size + 4-byte block size + LZ4 blocks)."""
    buf = io.BytesIO()
    filt = hdf5plugin.LZ4() if lz4_only else hdf5plugin.Bitshuffle(cname="lz4")
    with h5py.File(buf, "w") as h:
        h.create_dataset("x", data=frame[None], chunks=(1,) + frame.shape, **filt)
    with h5py.File(buf, "r") as h:
        return h["x"].id.read_direct_chunk((0, 0, 0))[1]


def _csrnpz(frame: np.ndarray) -> bytes:
    import scipy.sparse

    out = io.BytesIO()
    out.write(frame.nbytes.to_bytes(8, "big"))
    scipy.sparse.save_npz(out, scipy.sparse.csr_matrix(frame))
    return out.getvalue()


def _entry(group, frame, kind):
    raw = {"bslz4": lambda f: _bslz4_chunk(f), "lz4": lambda f: _bslz4_chunk(f, True),
           "csrnpz": _csrnpz}[kind](frame)
    group["compression_type"] = kind
    group["dtype"] = frame.dtype.str
    group["shape"] = np.array(frame.shape)
    group["elem_size"] = frame.dtype.itemsize
    group["data"] = np.void(raw)


@pytest.mark.parametrize("kind", ["bslz4", "lz4", "csrnpz"])
def test_eiger_stream_v1(tmp_path, kind):
    data = stack(n=3, h=16, w=24, dtype=np.uint32)
    f = tmp_path / "s1.h5"
    with h5py.File(f, "w") as h:
        for j, frame in enumerate(data):
            _entry(h.create_group(f"data/{j}"), frame, kind)
        h["metadata/start"] = 1.5
    ims = imageseries.open(str(f))  # guessed from the content
    assert type(ims).__name__ == "EigerStreamV1ImageSeries"
    np.testing.assert_array_equal(ims.read_block(0, 3), data)
    assert ims.metadata == {"start": 1.5}
    np.testing.assert_array_equal(ims[1, 2:5, 3:9], data[1, 2:5, 3:9])


def test_eiger_stream_v2_thresholds_and_lying_sizes(tmp_path):
    one, two = stack(n=2, h=8, w=6), stack(n=2, h=8, w=6)[:, ::-1] // 2
    f = tmp_path / "s2.h5"
    with h5py.File(f, "w") as h:
        for j in range(2):
            _entry(h.create_group(f"data/{j}/threshold_1"), one[j], "bslz4")
            _entry(h.create_group(f"data/{j}/threshold_2"), two[j], "csrnpz")
        h.create_group("metadata")
    ims = imageseries.open(str(f), "eiger-stream-v2")
    np.testing.assert_array_equal(ims[1], one[1])
    ims.set_option("threshold_setting", "threshold_2")
    np.testing.assert_array_equal(ims[1], two[1])
    ims.set_option("threshold_setting", "man_diff")
    ims.set_option("multiplier", 0.75)
    assert ims.option_values() == {"threshold_setting": "man_diff", "multiplier": 0.75}
    assert ims.dtype == np.float64
    np.testing.assert_array_equal(ims[0], one[0].astype(np.float64) - 0.75 * two[0])
    with pytest.raises(NotImplementedError):
        ims.set_option("threshold_setting", "threshold_3")
    with h5py.File(f, "a") as h:  # a shape that lies about the encoded size
        del h["data/1/threshold_1/shape"]
        h["data/1/threshold_1/shape"] = np.array([10**6, 10**6])
    again = imageseries.open(str(f), "eiger-stream-v2")
    with pytest.raises(FrameReadError, match="frame 1"):
        again[1]
    with pytest.raises(ValueError, match="Unsupported compression type: zip"):
        imageseries.load.eiger.decompress_frame({"compression_type": "zip", "dtype": "u1",
                                                 "shape": (1, 1), "data": b""})


def test_legacy_frame_cache_yaml_array(tmp_path):
    f = tmp_path / "fc.yml"
    imageseries.write(imageseries.open(None, "array", data=stack()), str(f), "frame-cache",
                      threshold=0, style="yml")
    text = f.read_text().replace("meta: {}", "meta:\n  w: ++np.array\n  w-array: [1, 2]\n"
                                 "  gone: '! unknown-command x'\n")
    f.write_text(text)
    ims = imageseries.open(str(f))
    assert set(ims.metadata) == {"w"}
    np.testing.assert_array_equal(ims.metadata["w"], [1, 2])


def test_format_error_is_named(tmp_path):
    f = tmp_path / "e.h5"
    with h5py.File(f, "w") as h:
        h.create_group("data/0")
    with pytest.raises(InputError, match="e.h5.*dtype"):
        imageseries.open(str(f), "eiger-stream-v1")
