"""Issue 14 for the imageseries readers: a frame is the bytes that were written or a clear
error naming file and field; lying sizes fail in milliseconds; hostile bytes and YAML raise
only our error types (property-based, bounded example counts)."""
from __future__ import annotations

import os
import tempfile
import time

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xrsmap_dask import imageseries
from xrsmap_dask.errors import FrameReadError, InputError

SHAPE = (6, 5)


def good_frames():
    """(rows, cols, data) per frame of a valid 2-frame uint16 cache."""
    return [(np.array([0, 1]), np.array([0, 4]), np.array([7, 9], np.uint16)),
            (np.array([5]), np.array([2]), np.array([3], np.uint16))]


def write_npz(path, frames=None, **header):
    arrays = {"nframes": np.array(2), "shape": np.array(SHAPE), "dtype": np.array("uint16")}
    arrays.update(header)
    for i, (r, c, v) in enumerate(good_frames() if frames is None else frames):
        arrays.update({f"{i}_row": r, f"{i}_col": c, f"{i}_data": v})
    np.savez(path, **arrays)
    return str(path)


def bad_entry(frame1):
    frames = good_frames()
    frames[1] = frame1
    return frames


# -- frame caches never change stored pixels silently ------------------------------------------
NPZ_CASES = {
    "row-out-of-range": (bad_entry((np.array([6]), np.array([0]), np.array([1], np.uint16))),
                         {}, r"frame 1.*row indices 6 .. 6 outside 0 .. 5"),
    "col-negative": (bad_entry((np.array([0]), np.array([-1]), np.array([1], np.uint16))),
                     {}, r"frame 1.*col indices -1"),
    "int32-wraps": (bad_entry((np.array([0]), np.array([0]), np.array([70000], np.int32))),
                    {}, r"frame 1.*uint16 will truncate"),
    "float-truncated": (bad_entry((np.array([0]), np.array([0]), np.array([1.5]))),
                        {}, r"frame 1.*fractional"),
    "duplicate-pixel": (bad_entry((np.array([2, 2]), np.array([3, 3]),
                                   np.array([1, 2], np.uint16))), {}, r"frame 1.*more than once"),
    "lengths-differ": (bad_entry((np.array([2, 3]), np.array([3]), np.array([1], np.uint16))),
                       {}, r"frame 1.*lengths differ"),
    "float-indices": (bad_entry((np.array([2.0]), np.array([3]), np.array([1], np.uint16))),
                      {}, r"frame 1.*row indices are float64"),
    "nframes-lies": (None, {"nframes": np.array(10**12)}, r"argument 'nframes'.*0 \.\. 3"),
    "nframes-negative": (None, {"nframes": np.array(-1)}, r"argument 'nframes'"),
    "nframes-float": (None, {"nframes": np.array(2.0)}, r"argument 'nframes'"),
    "shape-3d": (None, {"shape": np.array([2, 3, 4])}, r"argument 'shape'"),
    "dtype-object-name": (None, {"dtype": np.array("object")}, r"argument 'dtype'"),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_npz_frame_cache_lies_are_errors(tmp_path, case):
    frames, header, message = NPZ_CASES[case]
    path = write_npz(tmp_path / "c.npz", frames, **header)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=message) as err:
        imageseries.open(path, "frame-cache")
    assert time.perf_counter() - t0 < 2.0  # no loop over 10**12 frames, no allocation
    assert "c.npz" in str(err.value)


def test_npz_member_larger_than_its_bytes(tmp_path):
    """An npy header claiming 10**12 entries in a small member: refused before reading."""
    path = write_npz(tmp_path / "c.npz")
    import zipfile

    with zipfile.ZipFile(path, "a") as zf:
        header = np.lib.format.header_data_from_array_1_0(np.zeros(3, np.uint16))
        header["shape"] = (10**12,)
        with zf.open("0_data.npy.tmp", "w"):
            pass
    big = tmp_path / "big.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(big, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "0_data.npy":
                import io

                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, header)
                data = buf.getvalue() + data[-4:]
            if not info.filename.endswith(".tmp"):
                dst.writestr(info.filename, data)
    with pytest.raises(InputError, match=r"0_data.*declares shape"):
        imageseries.open(str(big), "frame-cache")


def _fch5(path, **change):
    data = np.array([[7], [9], [3]], np.uint16)
    indices = np.array([[0, 0], [1, 4], [5, 2]], np.uint16)
    parts = {"shape": np.array(SHAPE), "nframes": 2, "dtype": b"uint16",
             "frame_ids": np.array([0, 2, 2, 3], np.uint64), "data": data, "indices": indices}
    parts.update(change)
    with h5py.File(path, "w") as f:
        f.attrs["HEXRD_FRAMECACHE_VERSION"] = 1
        for k, v in parts.items():
            f[k] = v
        f.create_group("metadata")
    return str(path)


def test_fch5_good_and_lies(tmp_path):
    ims = imageseries.open(_fch5(tmp_path / "ok.fch5"), "frame-cache")
    want = np.zeros((2,) + SHAPE, np.uint16)
    want[0, 0, 0], want[0, 1, 4], want[1, 5, 2] = 7, 9, 3
    np.testing.assert_array_equal(ims.read_block(0, 2), want)
    for change, message in (({"frame_ids": np.array([0, 2, 2, 9], np.uint64)},
                             r"frame 1 entries \[2, 9\]"),
                            ({"frame_ids": np.array([0, 2, 3, 2], np.int64)}, r"frame 1"),
                            ({"frame_ids": np.array([0, 2], np.int64)}, r"'nframes'|frame_ids"),
                            ({"frame_ids": np.array([0.0, 2, 2, 3])}, r"frame_ids"),
                            ({"nframes": 10**12}, r"'nframes'"),
                            ({"data": np.zeros((3, 2), np.uint16)}, r"'data'")):
        with pytest.raises(InputError, match=message):
            imageseries.open(_fch5(tmp_path / "bad.fch5", **change), "frame-cache")
    # entries checked when read: under fill the frame is NaN, else an error naming it
    bad = _fch5(tmp_path / "idx.fch5", indices=np.array([[0, 0], [1, 40], [5, 2]], np.uint16))
    ims = imageseries.open(bad, "frame-cache")
    np.testing.assert_array_equal(ims[1], want[1])
    with pytest.raises(FrameReadError, match=r"idx.fch5.*frame 0.*col indices 0 .. 40"):
        ims[0]
    wraps = _fch5(tmp_path / "wrap.fch5", data=np.array([[7], [70000], [3]], np.int32))
    with pytest.raises(FrameReadError, match="frame 0.*truncate"):
        imageseries.open(wraps, "frame-cache")[0]


# -- raw-image fields are never coerced --------------------------------------------------------
RAW_CASES = {
    "signed-string": ({"scalar": {"type": "i", "bytes": 2, "signed": "no"}},
                      r"argument 'scalar.signed'"),
    "bytes-float": ({"scalar": {"type": "i", "bytes": 2.0}}, r"argument 'scalar.bytes'"),
    "bytes-odd": ({"scalar": {"type": "i", "bytes": 3}}, r"argument 'scalar.bytes'"),
    "type-unknown": ({"scalar": {"type": "q"}}, r"argument 'scalar.type'"),
    "endian-other": ({"scalar": {"type": "i", "endian": "middle"}}, r"'scalar.endian'"),
    "scalar-extra": ({"scalar": {"type": "i", "sign": True}}, r"argument 'scalar'"),
    "shape-float": ({"shape": "6.0 5"}, r"argument 'shape'"),
    "shape-list-float": ({"shape": [6.5, 5]}, r"argument 'shape'"),
    "shape-huge": ({"shape": f"{10**12} 5"}, r"argument 'shape'"),
    "shape-three": ({"shape": "6 5 1"}, r"argument 'shape'"),
    "skip-string": ({"skip": "16"}, r"argument 'skip'"),
    "skip-negative": ({"skip": -1}, r"argument 'skip'"),
    "filename-list": ({"filename": ["raw.bin"]}, r"argument 'filename'"),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_raw_image_fields_not_coerced(tmp_path, case):
    (tmp_path / "raw.bin").write_bytes(np.arange(60, dtype="<u2").tobytes())
    doc = {"filename": "raw.bin", "scalar": {"type": "i", "bytes": 2, "signed": False,
                                             "endian": "little"}, "shape": "6 5", "skip": 0}
    assert len(_open_raw(tmp_path, doc)) == 2
    change, message = RAW_CASES[case]
    with pytest.raises(InputError, match=message) as err:
        _open_raw(tmp_path, {**doc, **change})
    assert "raw.yml" in str(err.value)


def _open_raw(tmp_path, doc):
    (tmp_path / "raw.yml").write_text(yaml.safe_dump(doc))
    return imageseries.open(str(tmp_path / "raw.yml"), "raw-image")


def test_error_messages_are_bounded(tmp_path):
    huge = "7 " * 500_000
    (tmp_path / "raw.bin").write_bytes(b"\0" * 8)
    with pytest.raises(InputError) as err:
        _open_raw(tmp_path, {"filename": "raw.bin", "shape": huge})
    assert len(str(err.value)) < 600
    bomb = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")) + "image-files:\n  directory: *i\n  files: x\n"
    (tmp_path / "bomb.yml").write_text(bomb)
    t0 = time.perf_counter()
    with pytest.raises(InputError) as err:
        imageseries.open(str(tmp_path / "bomb.yml"), "image-files")
    assert time.perf_counter() - t0 < 5 and len(str(err.value)) < 600


# -- property-based: hostile bytes and YAML raise only our errors -------------------------------
FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _open_all(path, fmt, **kw):
    """Open and read every frame: InputError (ours) is the only acceptable failure."""
    try:
        ims = imageseries.open(path, fmt, **kw)
        if len(ims) < 1000 and ims.shape[0] * ims.shape[1] < 10**6:
            ims.read_block(0, len(ims))
    except InputError:
        pass


@pytest.mark.timeout(300)
@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([("x.npz", "frame-cache"),
                                                  ("x.fch5", "frame-cache"),
                                                  ("x.yml", "image-files"),
                                                  ("x.yml", "raw-image"),
                                                  ("x.yml", "frame-cache"),
                                                  ("x.h5", "eiger-stream-v1")]))
def test_arbitrary_bytes_only_our_errors(blob, target):
    name, fmt = target
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(blob)
        _open_all(path, fmt)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["raw.bin", "c.npz", "*.edf", "uint16", "6 5", "i", "big",
                                     "! load-numpy-array m.npy", "++np.array"]))
VALUES = st.recursive(SCALARS, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8) | SCALARS.filter(
        lambda v: isinstance(v, (str, int))), kids, max_size=4)), max_leaves=12)
DOCS = {
    "raw-image": st.fixed_dictionaries({}, optional={
        "filename": VALUES, "shape": VALUES, "skip": VALUES, "meta": VALUES,
        "scalar": st.fixed_dictionaries({}, optional={k: VALUES for k in
                                                      ("type", "bytes", "signed", "endian")})}),
    "image-files": st.fixed_dictionaries({"image-files": st.fixed_dictionaries(
        {}, optional={"directory": VALUES, "files": VALUES})},
        optional={"options": VALUES, "meta": VALUES}),
    "frame-cache": st.fixed_dictionaries({"data": st.fixed_dictionaries(
        {}, optional={k: VALUES for k in ("file", "nframes", "shape", "dtype")})},
        optional={"meta": VALUES}),
}


@pytest.mark.timeout(300)
@FUZZ
@given(st.sampled_from(sorted(DOCS)).flatmap(lambda f: st.tuples(st.just(f), DOCS[f])))
def test_arbitrary_yaml_only_our_errors(case):
    fmt, doc = case
    with tempfile.TemporaryDirectory() as d:
        (np.arange(60, dtype="<u2")).tofile(os.path.join(d, "raw.bin"))
        np.save(os.path.join(d, "m.npy"), np.arange(3))
        write_npz(os.path.join(d, "c.npz"))
        path = os.path.join(d, "x.yml")
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        _open_all(path, fmt)


@pytest.mark.timeout(300)
@FUZZ
@given(st.data())
def test_arbitrary_npz_fields_only_our_errors(data):
    """Valid zip/npy containers with arbitrary header values and entries."""
    ints = st.integers(-2**40, 2**40)
    arrays = st.one_of(
        st.builds(np.array, st.lists(ints, max_size=6)),
        st.builds(np.array, st.lists(st.floats(allow_nan=True), max_size=6)),
        st.builds(np.array, st.text(max_size=8)),
        st.builds(np.array, ints))
    fields = {"nframes": data.draw(arrays), "shape": data.draw(arrays),
              "dtype": data.draw(st.one_of(arrays, st.sampled_from(
                  [np.array("uint16"), np.array("float32"), np.array(b"int8")])))}
    frames = [tuple(data.draw(arrays) for _ in range(3)) for _ in range(2)]
    with tempfile.TemporaryDirectory() as d:
        try:
            path = write_npz(os.path.join(d, "c.npz"), frames, **fields)
        except (ValueError, TypeError):
            return  # numpy could not save these arrays
        _open_all(path, "frame-cache")


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name,fmt", [("f.npz", "frame-cache"), ("f.fch5", "frame-cache"),
                                      ("f.yml", "image-files"), ("f.yml", "raw-image"),
                                      ("f.h5", "hdf5"), ("f.h5", "eiger-stream-v1"),
                                      ("f.yml", None)])
def test_fifo_or_directory_is_an_error_not_a_hang(tmp_path, name, fmt):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        imageseries.open(str(fifo), fmt)
    os.remove(fifo)
    fifo.mkdir()
    with pytest.raises(InputError, match="directory"):
        imageseries.open(str(fifo), fmt)
