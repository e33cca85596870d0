"""hexrd-compatible imageseries formats: hdf5, frame-cache (npz/yml/fch5), image-files,
raw-image and zarr.  Real files in tmp_path; every check against a plain numpy reference."""
from __future__ import annotations

import os
import pickle
import shutil

import h5py
import numpy as np
import pytest

from xrsmap_dask import imageseries
from xrsmap_dask.errors import FormatError, FrameReadError, InputError, UnsafeInputError
from xrsmap_dask.imageseries import _utils as series_utils
from xrsmap_dask.imageseries.base import BlockSource
from xrsmap_dask.synth import write_edf

NFRAMES, NY, NX = 11, 40, 48  # 11 frames: not divisible by the frames_per_chunk used below

# (format, file name, write kwargs, open kwargs)
CASES = {
    "hdf5": ("hdf5", "scan.h5", {"path": "/imageseries", "gzip": 4, "chunk_rows": 16},
             {"path": "/imageseries"}),
    "hdf5-root": ("hdf5", "root.h5", {"gzip": 0}, {}),
    "fc-npz": ("frame-cache", "scan.npz", {"threshold": 0}, {}),
    "fc-yml": ("frame-cache", "scan.yml", {"threshold": 0, "style": "yml",
                                           "cache_file": "cache/scan-cache.npz"}, {}),
    "fc-fch5": ("frame-cache", "scan.fch5", {"threshold": 0, "style": "fch5"}, {}),
    "image-files": ("image-files", "files.yml", {}, {}),
    "raw-image": ("raw-image", "raw.yml", {"endian": "big", "skip": 100}, {}),
    "zarr": ("zarr", "scan.zarr", {"frames_per_chunk": 4}, {}),
}
ROIS = [
    None,
    (slice(0, 5), slice(0, 7)),               # top-left corner
    (slice(NY - 3, NY), slice(NX - 9, NX)),   # bottom-right corner
    (slice(0, NY), slice(NX - 1, NX)),        # last column
    (slice(NY - 1, NY), slice(0, NX)),        # last row
    (slice(13, 29), slice(5, 41)),            # interior
]


def sparse_stack(dtype="uint16", seed=0) -> np.ndarray:
    """Mostly zero frames with ~10% bright pixels (frame-cache stores them exactly)."""
    rng = np.random.default_rng(seed)
    data = np.zeros((NFRAMES, NY, NX), dtype=dtype)
    hit = rng.random(data.shape) < 0.1
    data[hit] = rng.integers(1, 60000, hit.sum())
    # make sure corners and edges hold data
    data[:, 0, 0] = data[:, -1, -1] = data[:, 0, -1] = data[:, -1, 0] = 7
    return data


def source_meta() -> dict:
    return {"omega": np.column_stack([np.arange(NFRAMES) * 0.25,
                                      np.arange(1, NFRAMES + 1) * 0.25]),
            "panel": "ff1", "temperature": 295.5, "count": 3}


@pytest.fixture(scope="module")
def source():
    return imageseries.open(None, "array", data=sparse_stack(), meta=source_meta())


def write_open(tmp_path, key, ims):
    fmt, name, wkw, okw = CASES[key]
    target = tmp_path / name
    if "cache_file" in wkw:
        (tmp_path / os.path.dirname(wkw["cache_file"])).mkdir(exist_ok=True)
    imageseries.write(ims, str(target), fmt, **wkw)
    return imageseries.open(str(target), fmt, **okw)


def stack_of(ims) -> np.ndarray:
    return np.stack([ims[j] for j in range(len(ims))])


#: how each case reads scalar metadata back, as hexrd does: HDF5 attributes and fch5 datasets
#: as numpy scalars (strings as str), npz members as 0-d arrays, YAML and zarr as Python values
READ_BACK = {"hdf5": "numpy", "hdf5-root": "numpy", "fc-fch5": "numpy", "fc-npz": "array"}


def hexrd_meta(key: str, meta: dict) -> dict:
    how = READ_BACK.get(key)
    out = {}
    for k, v in meta.items():
        if how == "array":
            v = np.asarray(v)
        elif how == "numpy" and not isinstance(v, (str, np.ndarray)):
            v = np.asarray(v)[()]
        out[k] = v
    return out


def assert_meta_equal(got: dict, want: dict):
    assert set(got) == set(want)
    for k, v in want.items():
        if isinstance(v, np.ndarray):
            assert isinstance(got[k], np.ndarray), k
            assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
            np.testing.assert_array_equal(got[k], v)
        else:
            assert type(got[k]) is type(v) and got[k] == v, (k, got[k], v)


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(CASES))
def test_round_trip(tmp_path, source, key):
    ims = write_open(tmp_path, key, source)
    want = source.data
    assert len(ims) == NFRAMES and ims.shape == (NY, NX)
    assert ims.dtype == want.dtype
    got = stack_of(ims)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert_meta_equal(ims.metadata, hexrd_meta(key, source.metadata))
    # region reads as hexrd's ims[(j, rows, cols)]
    np.testing.assert_array_equal(ims[(3, slice(2, 9), slice(40, 48))], want[3, 2:9, 40:48])
    np.testing.assert_array_equal(ims[-1], want[-1])


@pytest.mark.parametrize("key", list(CASES))
def test_guessed_format_opens_same_series(tmp_path, source, key):
    ims = write_open(tmp_path, key, source)
    fmt, name, _, okw = CASES[key]
    again = imageseries.open(str(tmp_path / name))
    assert type(again) is type(ims)
    np.testing.assert_array_equal(stack_of(again), source.data)
    assert again.token == ims.token  # stable between opens of the same file


@pytest.mark.parametrize("style", ["npz", "yml", "fch5"])
def test_frame_cache_dense_float_threshold_below_min(tmp_path, style):
    rng = np.random.default_rng(3)
    data = rng.normal(0, 10, (5, 17, 23)).astype("float32")
    meta = {"omega": rng.random((5, 2)), "name": "dense"}
    f = tmp_path / f"dense.{ 'yml' if style == 'yml' else style}"
    imageseries.write(imageseries.open(None, "array", data=data, meta=meta), str(f),
                      "frame-cache", threshold=float(data.min()) - 1, style=style)
    ims = imageseries.open(str(f), "frame-cache")
    assert ims.dtype == np.float32
    np.testing.assert_array_equal(stack_of(ims), data)
    assert_meta_equal(ims.metadata, hexrd_meta({"npz": "fc-npz", "fch5": "fc-fch5"}.get(
        style, style), meta))


def test_frame_cache_threshold_drops_low_pixels(tmp_path):
    data = sparse_stack()
    f = tmp_path / "thr.npz"
    imageseries.write(imageseries.open(None, "array", data=data), str(f), "frame-cache",
                      threshold=30000)
    want = np.where(data > 30000, data, 0)
    assert np.count_nonzero(want) < np.count_nonzero(data)
    np.testing.assert_array_equal(stack_of(imageseries.open(str(f), "frame-cache")), want)


def test_frame_cache_npz_layout_is_hexrds(tmp_path, source):
    f = tmp_path / "layout.npz"
    imageseries.write(source, str(f), "frame-cache", threshold=0)
    with np.load(f, allow_pickle=False) as arrs:
        assert int(arrs["nframes"]) == NFRAMES
        assert tuple(arrs["shape"]) == (NY, NX)
        assert str(arrs["dtype"]) == "uint16"
        frame = np.zeros((NY, NX), dtype="uint16")
        frame[arrs["4_row"], arrs["4_col"]] = arrs["4_data"]
        np.testing.assert_array_equal(frame, source.data[4])
        np.testing.assert_array_equal(arrs["omega"], source.metadata["omega"])


def test_frame_cache_fch5_layout_is_hexrds(tmp_path, source):
    f = tmp_path / "layout.fch5"
    imageseries.write(source, str(f), "frame-cache", threshold=0, style="fch5")
    with h5py.File(f, "r") as h:
        assert h.attrs["HEXRD_FRAMECACHE_VERSION"] == 1
        ids = h["frame_ids"][()]
        assert ids.shape == (2 * NFRAMES,)
        a, b = int(ids[2 * 6]), int(ids[2 * 6 + 1])
        frame = np.zeros((NY, NX), dtype="uint16")
        idx = h["indices"][a:b]
        frame[idx[:, 0], idx[:, 1]] = h["data"][a:b, 0]
        np.testing.assert_array_equal(frame, source.data[6])
        np.testing.assert_array_equal(h["metadata/omega"][()], source.metadata["omega"])


def test_hdf5_layout_is_hexrds(tmp_path, source):
    f = tmp_path / "layout.h5"
    imageseries.write(source, str(f), "hdf5", path="imageseries", gzip=2, chunk_rows=8)
    with h5py.File(f, "r") as h:
        ds = h["imageseries/images"]
        assert ds.chunks == (1, 8, NX) and ds.compression == "gzip"
        np.testing.assert_array_equal(ds[()], source.data)
        np.testing.assert_array_equal(h["imageseries"].attrs["omega"],
                                      source.metadata["omega"])


def test_hdf5_dataname_and_2d_dataset(tmp_path):
    data = sparse_stack()[0]
    f = tmp_path / "one.h5"
    with h5py.File(f, "w") as h:
        h.create_dataset("g/frame", data=data)
        h["g"].attrs["note"] = "single"
    ims = imageseries.open(str(f), "hdf5", path="g", dataname="frame")
    assert len(ims) == 1
    np.testing.assert_array_equal(ims[0], data)
    assert ims.metadata == {"note": "single"}


# -- lazy arrays ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(CASES))
def test_to_dask_rois_match_frames(tmp_path, source, key):
    ims = write_open(tmp_path, key, source)
    full = stack_of(ims)
    for roi in ROIS:
        want = full if roi is None else full[(slice(None),) + roi]
        for fpc in (1, 4, "auto"):
            arr = ims.to_dask(roi, frames_per_chunk=fpc)
            got = arr.compute(scheduler="threads")
            assert got.dtype == full.dtype
            np.testing.assert_array_equal(got, want)
        assert arr.name.startswith("read-roi-")


@pytest.mark.parametrize("key", list(CASES))
def test_block_source_is_small_and_picklable(tmp_path, source, key):
    ims = write_open(tmp_path, key, source)
    block = ims.block_source(0, NFRAMES)
    assert isinstance(block, BlockSource)
    dense_bytes = source.data.nbytes
    size = len(pickle.dumps(block))
    if key in ("fc-npz", "fc-yml"):
        # carries the sparse entries of its own frames only (~10% of pixels)
        assert size < dense_bytes / 2
        assert len(pickle.dumps(ims.block_source(0, 1))) < size / 4
    else:
        assert size < 2000, size  # file names and offsets, never pixel data
    back = pickle.loads(pickle.dumps(block))
    roi = (slice(1, 9), slice(30, 48))
    np.testing.assert_array_equal(back.read(roi), source.data[:, 1:9, 30:48])


def test_token_depends_on_file(tmp_path, source):
    a = write_open(tmp_path, "hdf5", source)
    other = imageseries.open(None, "array", data=source.data[::-1].copy())
    imageseries.write(other, str(tmp_path / "other.h5"), "hdf5", path="imageseries")
    b = imageseries.open(str(tmp_path / "other.h5"), "hdf5", path="imageseries")
    assert a.token != b.token
    assert a.to_dask().name != b.to_dask().name


# -- writers work block by block -----------------------------------------------------------
class CountingSeries(imageseries.ImageSeries):
    """Array series recording the largest block a writer asked for."""

    def __init__(self, data, meta):
        self._data, self._shape, self._dtype = data, data.shape[1:], data.dtype
        self._metadata = meta
        self.largest = 0

    def __len__(self):
        return len(self._data)

    def _read_region(self, j, rows, cols):
        self.largest = max(self.largest, 1)
        return self._data[j, rows, cols]

    def read_block(self, start, stop, roi=None):
        self.largest = max(self.largest, stop - start)
        return self._data[start:stop]


@pytest.mark.parametrize("key", list(CASES))
def test_writers_go_block_by_block(tmp_path, monkeypatch, key):
    data = sparse_stack()
    frame_bytes = data[0].nbytes
    monkeypatch.setattr(series_utils, "WRITE_BLOCK_BYTES", 3 * frame_bytes)
    ims = CountingSeries(data, source_meta())
    out = write_open(tmp_path, key, ims)
    assert 1 <= ims.largest <= 4, ims.largest  # zarr rounds up to whole chunks of 4
    np.testing.assert_array_equal(stack_of(out), data)


# -- distributed ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(CASES))
def test_distributed_equals_threads(tmp_path, source, client, key):
    ims = write_open(tmp_path, key, source)
    roi = (slice(3, NY), slice(0, 31))
    arr = ims.to_dask(roi, frames_per_chunk=3)
    on_threads = arr.compute(scheduler="threads")
    on_cluster = client.compute(arr).result()
    np.testing.assert_array_equal(on_cluster, on_threads)
    np.testing.assert_array_equal(on_threads, source.data[:, 3:, :31])
    total = client.compute(arr.sum(axis=0, dtype="float64")).result()
    np.testing.assert_array_equal(total, source.data[:, 3:, :31].sum(axis=0, dtype="float64"))


# -- image-files specifics -----------------------------------------------------------------
def _edf_dir(tmp_path, n=6, name="frames"):
    d = tmp_path / name
    d.mkdir()
    data = sparse_stack()[:n]
    for i in range(n):
        write_edf(str(d / f"img_{i:03d}.edf"), data[i])
    return d, data


def test_image_files_yaml_text_options_and_numpy_meta(tmp_path, monkeypatch):
    d, data = _edf_dir(tmp_path)
    omega = np.linspace(0, 1, 8).reshape(4, 2)
    np.save(tmp_path / "om.npy", omega)
    text = ("image-files:\n  directory: frames\n  files: 'img_00[3-5].edf img_00[0-1].edf'\n"
            "options:\n  empty-frames: 0\n  max-total-frames: 4\n  dtype: float32\n"
            "meta:\n  omega: '! load-numpy-array om.npy'\n  panel: ge\n")
    monkeypatch.chdir(tmp_path)  # YAML text: paths relative to the working directory
    ims = imageseries.open(text, "image-files")
    want = data[[0, 1, 3, 4]].astype("float32")  # all matches sorted (hexrd); 4 frames max
    assert ims.dtype == np.float32 and len(ims) == 4
    np.testing.assert_array_equal(stack_of(ims), want)
    assert ims.metadata["panel"] == "ge"
    np.testing.assert_array_equal(ims.metadata["omega"], omega)
    # the same YAML as a file in another directory: paths relative to the YAML
    sub = tmp_path / "yaml"
    sub.mkdir()
    (sub / "s.yml").write_text(text.replace("directory: frames", "directory: ../frames")
                               .replace("om.npy", "../om.npy"))
    monkeypatch.chdir(sub.parent.parent)
    again = imageseries.open(str(sub / "s.yml"), "image-files")
    np.testing.assert_array_equal(stack_of(again), want)


def _rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar")


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_image_files_open_reads_headers_only(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    frame = np.arange(128 * 128, dtype="float32").reshape(128, 128)
    write_edf(str(d / "f_0000.edf"), frame)
    for i in range(1, 200):
        shutil.copyfile(d / "f_0000.edf", d / f"f_{i:04d}.edf")
    (tmp_path / "many.yml").write_text("image-files:\n  directory: many\n  files: f_*.edf\n")
    total = sum(p.stat().st_size for p in d.iterdir())

    before = _rchar()
    ims = imageseries.open(str(tmp_path / "many.yml"), "image-files")
    opened = _rchar() - before
    assert len(ims) == 200
    before = _rchar()
    full = ims.to_dask().compute(scheduler="sync")
    read_all = _rchar() - before
    assert read_all >= total * 0.9  # the counter sees the bytes a full read takes
    assert opened < total * 0.2, (opened, total)
    np.testing.assert_array_equal(full[123], frame)


# -- raw-image specifics -------------------------------------------------------------------
@pytest.mark.parametrize("scalar,dtype", [
    ({"type": "i", "bytes": 4, "signed": True, "endian": "big"}, ">i4"),
    ({"type": "i", "bytes": 1, "signed": False, "endian": "little"}, "u1"),
    ({"type": "f", "bytes": 4, "signed": True, "endian": "little"}, "<f4"),
    ({"type": "d", "bytes": 8, "signed": True, "endian": "big"}, ">f8"),
    ({"type": "b", "bytes": 1, "signed": False, "endian": "little"}, "?"),
])
def test_raw_image_scalar_types(tmp_path, scalar, dtype):
    import yaml

    rng = np.random.default_rng(5)
    data = (rng.random((3, 9, 13)) * 100).astype(dtype)
    skip = 37
    (tmp_path / "r.bin").write_bytes(b"H" * skip + data.tobytes())
    (tmp_path / "r.yml").write_text(yaml.safe_dump(
        {"filename": "r.bin", "scalar": scalar, "shape": "9 13", "skip": skip}))
    ims = imageseries.open(str(tmp_path / "r.yml"), "raw-image")
    assert ims.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(stack_of(ims), data)
    np.testing.assert_array_equal(ims.to_dask((slice(2, 9), slice(12, 13)), 2).compute(),
                                  data[:, 2:9, 12:13])


def test_raw_image_truncated_after_open(tmp_path, source):
    ims = write_open(tmp_path, "raw-image", source)
    filled = imageseries.open(str(tmp_path / "raw.yml"), "raw-image", on_error="fill")
    raw = tmp_path / "raw.raw"
    with open(raw, "r+b") as f:
        f.truncate(raw.stat().st_size - 10)
    with pytest.raises(FrameReadError, match="raw.raw"):
        ims.to_dask().compute(scheduler="sync")
    got = filled.to_dask(frames_per_chunk=4).compute()
    assert got.dtype.kind == "f" and np.isnan(got).all()


# -- bad input -----------------------------------------------------------------------------
def test_hdf5_missing_dataset_names_file_and_dataset(tmp_path):
    f = tmp_path / "nodata.h5"
    with h5py.File(f, "w") as h:
        h.create_dataset("imageseries/other", data=np.zeros((2, 3, 3)))
    for kwargs in ({"path": "imageseries"}, {}):
        with pytest.raises(InputError) as err:
            imageseries.open(str(f), "hdf5", **kwargs)
        assert "nodata.h5" in str(err.value) and "images" in str(err.value)


@pytest.mark.parametrize("gzip", [10, -1, "9", 2.5, True, None])
def test_hdf5_write_bad_gzip(tmp_path, source, gzip):
    with pytest.raises(ValueError, match="gzip"):
        imageseries.write(source, str(tmp_path / "g.h5"), "hdf5", path="x", gzip=gzip)


def test_raw_image_size_not_multiple_of_frame(tmp_path):
    (tmp_path / "odd.raw").write_bytes(b"\0" * (2 * 4 * 5 * 2 + 3))
    (tmp_path / "odd.yml").write_text(
        "filename: odd.raw\nscalar: {type: i, bytes: 2, signed: false, endian: little}\n"
        "shape: 4 5\nskip: 0\n")
    with pytest.raises(InputError, match="odd.raw"):
        imageseries.open(str(tmp_path / "odd.yml"), "raw-image")


def test_image_files_glob_matching_nothing(tmp_path):
    _edf_dir(tmp_path)
    # as in hexrd, a glob matching nothing adds nothing; no file at all is an error
    (tmp_path / "some.yml").write_text(
        "image-files:\n  directory: frames\n  files: 'img_*.edf nothing_*.edf'\n")
    assert len(imageseries.open(str(tmp_path / "some.yml"), "image-files")) == 6
    (tmp_path / "none.yml").write_text(
        "image-files:\n  directory: frames\n  files: 'nothing_*.edf'\n")
    with pytest.raises(InputError) as err:
        imageseries.open(str(tmp_path / "none.yml"), "image-files")
    assert "nothing_*.edf" in str(err.value) and "none.yml" in str(err.value)


UNSAFE = '!!python/object/apply:os.system ["echo"]'


@pytest.mark.parametrize("fmt,doc", [
    ("image-files", f"image-files:\n  directory: .\n  files: {UNSAFE}\n"),
    ("raw-image", f"filename: {UNSAFE}\nshape: 2 2\n"),
    ("frame-cache", f"data:\n  file: {UNSAFE}\n"),
])
def test_unsafe_yaml_refused(tmp_path, fmt, doc):
    f = tmp_path / "evil.yml"
    f.write_text(doc)
    with pytest.raises(UnsafeInputError, match="evil.yml"):
        imageseries.open(str(f), fmt)


def test_unsafe_yaml_text_refused():
    with pytest.raises(UnsafeInputError):
        imageseries.open(f"image-files:\n  directory: .\n  files: {UNSAFE}\n", "image-files")


def test_pickled_npz_refused(tmp_path):
    f = tmp_path / "evil.npz"
    np.savez(f, nframes=np.array(1), shape=np.array([2, 2]), dtype=np.array("uint16"),
             **{"0_row": np.array([0]), "0_col": np.array([1]),
                "0_data": np.array([5], dtype="uint16")},
             note=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnsafeInputError, match="evil.npz"):
        imageseries.open(str(f), "frame-cache")


def test_pickled_npy_metadata_refused(tmp_path):
    _edf_dir(tmp_path, n=2)
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "m.yml").write_text("image-files:\n  directory: frames\n  files: '*.edf'\n"
                                    "meta:\n  omega: '! load-numpy-array evil.npy'\n")
    with pytest.raises(UnsafeInputError, match="evil.npy"):
        imageseries.open(str(tmp_path / "m.yml"), "image-files")


def test_unknown_format(tmp_path):
    with pytest.raises(FormatError, match="nope"):
        imageseries.open(str(tmp_path / "x.h5"), "nope")
    with pytest.raises(FormatError, match="nope"):
        imageseries.write(imageseries.open(None, "array", data=np.zeros((1, 2, 2))),
                          str(tmp_path / "x"), "nope")


def test_frame_cache_write_needs_threshold(tmp_path, source):
    with pytest.raises(InputError, match="threshold"):
        imageseries.write(source, str(tmp_path / "t.npz"), "frame-cache")


def test_zarr_missing_array(tmp_path, source):
    write_open(tmp_path, "zarr", source)
    with pytest.raises(InputError, match="scan.zarr"):
        imageseries.open(str(tmp_path / "scan.zarr"), "zarr", dataname="nothing")


# -- hexrd variants ------------------------------------------------------------------------
def test_hdf5_open_h5py_objects_and_rewrite_drops_old_attrs(tmp_path, source):
    f = tmp_path / "obj.h5"
    with h5py.File(f, "a") as h:
        imageseries.write(source, h, "hdf5", path="a/b", gzip=1)
    with h5py.File(f, "r") as h:
        ims = imageseries.open(h["a"], "hdf5", path="b")
        np.testing.assert_array_equal(stack_of(ims), source.data)
        assert_meta_equal(ims.metadata, hexrd_meta("hdf5", source.metadata))
    # a second write into the same group replaces data and metadata
    small = imageseries.open(None, "array", data=source.data[:3], meta={"x": 1})
    imageseries.write(small, str(f), "hdf5", path="a/b")
    again = imageseries.open(str(f), "hdf5", path="a/b")
    assert len(again) == 3 and again.metadata == {"x": 1}


def test_fch5_inside_a_group(tmp_path, source):
    f = tmp_path / "state.h5"
    with h5py.File(f, "w") as h:
        h["other"] = np.arange(3)
    imageseries.write(source, str(f), "frame-cache", style="fch5", threshold=0,
                      path="images/det")
    ims = imageseries.open(str(f), "frame-cache", style="fch5", path="images/det")
    np.testing.assert_array_equal(stack_of(ims), source.data)
    assert_meta_equal(ims.metadata, hexrd_meta("fc-fch5", source.metadata))
    np.testing.assert_array_equal(
        ims.to_dask((slice(30, 40), slice(0, 8)), 4).compute(), source.data[:, 30:, :8])
    with h5py.File(f, "r") as h:
        np.testing.assert_array_equal(h["other"][()], np.arange(3))


def test_frame_cache_yml_arrays_beside_the_cache(tmp_path, source):
    # hexrd resolves a frame-cache YAML's arrays beside the cache file
    sub = tmp_path / "cache"
    sub.mkdir()
    imageseries.write(source, str(sub / "c.npz"), "frame-cache", threshold=0)
    np.save(sub / "om.npy", source.metadata["omega"])
    (tmp_path / "c.yml").write_text(
        f"data:\n  file: cache/c.npz\n  nframes: {NFRAMES}\n  shape: [{NY}, {NX}]\n"
        "  dtype: uint16\nmeta:\n  omega: '! load-numpy-array om.npy'\n")
    ims = imageseries.open(str(tmp_path / "c.yml"), "frame-cache")
    np.testing.assert_array_equal(ims.metadata["omega"], source.metadata["omega"])
    np.testing.assert_array_equal(stack_of(ims), source.data)


def test_frame_cache_yml_disagreeing_with_cache(tmp_path, source):
    imageseries.write(source, str(tmp_path / "c.npz"), "frame-cache", threshold=0)
    (tmp_path / "c.yml").write_text("data:\n  file: c.npz\n  nframes: 99\n")
    with pytest.raises(FormatError, match="nframes"):
        imageseries.open(str(tmp_path / "c.yml"), "frame-cache")


def test_image_files_writer_refuses_stale_frames(tmp_path, source):
    f = tmp_path / "w.yml"
    imageseries.write(source, str(f), "image-files")
    short = imageseries.open(None, "array", data=source.data[:4], meta={})
    with pytest.raises(InputError, match="overwrite"):
        imageseries.write(short, str(f), "image-files")
    imageseries.write(short, str(f), "image-files", overwrite=True)
    ims = imageseries.open(str(f), "image-files")
    np.testing.assert_array_equal(stack_of(ims), source.data[:4])


def test_image_files_literal_directory_and_list_of_globs(tmp_path):
    d, data = _edf_dir(tmp_path, n=4, name="run[1]")
    (tmp_path / "l.yml").write_text(
        "image-files:\n  directory: run[1]\n  files: ['img_003.edf', 'img_00[0-1].edf']\n")
    ims = imageseries.open(str(tmp_path / "l.yml"), "image-files")
    np.testing.assert_array_equal(stack_of(ims), data[[0, 1, 3]])  # all sorted (hexrd)


def test_zarr_metadata_kinds_round_trip(tmp_path):
    meta = {"zero_d": np.array(3.5), "flags": np.array([True, False]),
            "empty": np.zeros((0, 2), dtype="int32"), "nested": {"a": [1, 2], "b": "x"},
            "items": [1.5, 2.5], "flag": True}
    data = sparse_stack()[:3]
    imageseries.write(imageseries.open(None, "array", data=data, meta=meta),
                      str(tmp_path / "m.zarr"), "zarr", path="det/a")
    ims = imageseries.open(str(tmp_path / "m.zarr"), "zarr", path_in_store="det/a")
    assert_meta_equal(ims.metadata, meta)
    np.testing.assert_array_equal(stack_of(ims), data)
