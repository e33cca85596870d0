"""zarr inputs on real stores: a chunk never written is an error or a listed NaN frame, never
the fill value; our writer marks a store complete last, so a writer killed half way leaves a
store that opens as an error (issue 14)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from xrsmap_dask import cli, imageseries, synth
from xrsmap_dask.errors import FrameReadError, InputError
from xrsmap_dask.imageseries.zarrchunks import format_ranges, frame_ranges

NFRAMES, SHAPE = 6, (8, 10)


def _stack() -> np.ndarray:
    return (np.arange(NFRAMES * SHAPE[0] * SHAPE[1]).reshape((NFRAMES,) + SHAPE) % 900 + 1
            ).astype("u2")


@pytest.fixture
def store(tmp_path) -> str:
    """Our writer's store, one frame per chunk, with metadata."""
    path = str(tmp_path / "frames.zarr")
    ims = imageseries.open(None, "array", data=_stack(), meta={"omega": np.arange(NFRAMES) * .5})
    imageseries.write(ims, path, "zarr", frames_per_chunk=1)
    return path


def _edf_files(tmp_path) -> list[str]:
    """The frames of :func:`_stack` as one EDF file each (written with fabio)."""
    paths = [str(tmp_path / f"f_{k}.edf") for k in range(NFRAMES)]
    for path, frame in zip(paths, _stack()):
        synth.write_edf(path, frame)
    return paths


def _chunk(store: str, k: int, *rest: int) -> str:
    return os.path.join(store, "images", "c", str(k), *(str(r) for r in rest or (0, 0)))


def test_round_trip_is_complete(store):
    assert zarr.open_array(store, path="images", mode="r").attrs["complete"] is True
    ims = imageseries.open(store)
    assert ims.bad_frames == []
    np.testing.assert_array_equal(ims.read_block(0, NFRAMES), _stack())
    np.testing.assert_array_equal(ims.metadata["omega"], np.arange(NFRAMES) * .5)


def test_zero_frames_and_metadata_are_written(tmp_path):
    """Our writer stores all-zero chunks too (zarr skips them by default), so a zero frame is
    present data, not a missing chunk."""
    data = _stack()
    data[2] = 0
    path = str(tmp_path / "zeros.zarr")
    imageseries.write(imageseries.open(None, "array", data=data,
                                       meta={"z": np.zeros(3), "s": np.float64(0)}),
                      path, "zarr", frames_per_chunk=1)
    ims = imageseries.open(path)
    np.testing.assert_array_equal(ims.read_block(0, NFRAMES), data)
    np.testing.assert_array_equal(ims.metadata["z"], np.zeros(3))


def test_missing_chunk_at_open(store):
    os.remove(_chunk(store, 3))
    with pytest.raises(FrameReadError, match=r"frames.zarr.*frame 3.*frames 3\b.*never written"):
        imageseries.open(store)
    ims = imageseries.open(store, on_error="fill")
    assert [(j, p) for j, p, _ in ims.bad_frames] == [(3, os.path.abspath(store))]
    block = ims.read_block(0, NFRAMES)
    assert np.isnan(block[3]).all()
    keep = [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(block[keep], _stack()[keep])


def test_chunk_lost_after_open(store):
    ims = imageseries.open(store)
    fill = imageseries.open(store, on_error="fill")
    os.remove(_chunk(store, 4))
    os.remove(_chunk(store, 5))
    with pytest.raises(FrameReadError, match=r"frames.zarr.*frames 4\.\.5"):
        ims.read_block(2, NFRAMES)
    np.testing.assert_array_equal(ims.read_block(0, 4), _stack()[:4])
    block = fill.read_block(0, NFRAMES, (slice(1, 5), slice(2, 9)))
    assert np.isnan(block[4:]).all() and not np.isnan(block[:4]).any()
    with pytest.raises(FrameReadError, match="frames.zarr"):
        ims.to_dask().compute()


def _foreign(tmp_path, name, **kw):
    """A store written with plain zarr (another tool), frames at the root array 'images'."""
    path = str(tmp_path / name)
    root = zarr.open_group(path, mode="w", zarr_format=kw.pop("zarr_format", 3))
    arr = root.create_array("images", shape=(NFRAMES,) + SHAPE, dtype="u2", **kw)
    arr[:] = _stack()
    return path, arr


@pytest.mark.parametrize("kw, remove", [
    (dict(chunks=(2, 4, 5)), "c/1/1/0"),                       # spatial chunks
    (dict(chunks=(1, 8, 10), zarr_format=2), "3.0.0"),          # zarr v2, '.' keys
    (dict(chunks=(1, 8, 10), shards=(2, 8, 10)), "c/1/0/0"),  # sharded: a missing shard
    (dict(chunks=(3, 8, 10), chunk_key_encoding={"name": "v2", "separator": "/"}), "1/0/0"),
])
def test_foreign_layouts(tmp_path, kw, remove):
    path, arr = _foreign(tmp_path, "other.zarr", **kw)
    np.testing.assert_array_equal(imageseries.open(path).read_block(0, NFRAMES), _stack())
    os.remove(os.path.join(path, "images", *remove.split("/")))
    with pytest.raises(FrameReadError, match="other.zarr.*never written"):
        imageseries.open(path)
    fill = imageseries.open(path, on_error="fill")
    bad = [j for j, _, _ in fill.bad_frames]
    block = fill.read_block(0, NFRAMES)
    assert bad and np.isnan(block[bad]).all()
    good = [j for j in range(NFRAMES) if j not in bad]
    np.testing.assert_array_equal(block[good], _stack()[good])


def test_store_written_without_empty_chunks(tmp_path):
    """zarr's default skips all-fill-value chunks: a zero frame is then missing.  It is an
    error unless the caller says missing chunks mean the fill value."""
    path, arr = _foreign(tmp_path, "sparse.zarr", chunks=(1, 8, 10))
    arr[1] = 0  # zarr deletes the chunk of an all-fill-value frame
    assert not os.path.exists(os.path.join(path, "images", "c", "1", "0", "0"))
    with pytest.raises(FrameReadError, match="sparse.zarr.*frame 1.*missing_chunks='fill-value'"):
        imageseries.open(path)
    ims = imageseries.open(path, missing_chunks="fill-value")
    assert (ims[1] == 0).all() and ims.bad_frames == []
    with pytest.raises(InputError, match="missing_chunks"):
        imageseries.open(path, missing_chunks="zeros")


def test_missing_metadata_chunk(store):
    shutil.rmtree(os.path.join(store, "metadata", "omega", "c"))
    with pytest.raises(InputError, match="frames.zarr.*omega.*never written"):
        imageseries.open(store)


def test_writer_failing_half_way_leaves_an_incomplete_store(tmp_path):
    # a series of EDF files, one truncated after the series was opened: the writer fails
    paths = _edf_files(tmp_path)
    ims = imageseries.from_files(paths)
    with open(paths[4], "r+b") as f:
        f.truncate(os.path.getsize(paths[4]) - 20)
    out = str(tmp_path / "half.zarr")
    with pytest.raises(FrameReadError, match="f_4.edf"):
        imageseries.write(ims, out, "zarr", frames_per_chunk=1)
    with pytest.raises(InputError, match="half.zarr.*incomplete"):
        imageseries.open(out)
    with pytest.raises(InputError, match="half.zarr.*incomplete"):
        imageseries.open(out, on_error="fill")


@pytest.mark.timeout(60)
def test_writer_killed_half_way(tmp_path):
    """A real process writing a store is SIGKILLed mid-write: the store opens as incomplete;
    and were the mark lost, its missing chunks would still be refused."""
    out = str(tmp_path / "killed.zarr")
    script = f"""
import time, numpy as np
from xrsmap_dask import imageseries
from xrsmap_dask.imageseries.array import ArrayImageSeries

class Slow(ArrayImageSeries):
    def read_block(self, start, stop, roi=None):
        if start >= 4:  # the writer reads 4 frames of 8 MiB per step
            time.sleep(600)
        return super().read_block(start, stop, roi)

data = np.ones((8, 1024, 2048), 'u4') * np.arange(1, 9, dtype='u4')[:, None, None]
imageseries.write(Slow(data), {out!r}, 'zarr', frames_per_chunk=1)
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 50
        while not os.path.exists(_chunk(out, 3)) and time.monotonic() < deadline:
            assert proc.poll() is None, "the writer ended early"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.path.exists(_chunk(out, 3)) and not os.path.exists(_chunk(out, 4))
    with pytest.raises(InputError, match="killed.zarr.*incomplete"):
        imageseries.open(out)
    arr = zarr.open_array(out, path="images", mode="r+")
    del arr.attrs["complete"]  # as a foreign store without the mark
    with pytest.raises(FrameReadError, match=r"killed.zarr.*frames 4\.\.7"):
        imageseries.open(out)


def test_convert_to_zarr_is_complete(tmp_path):
    paths = _edf_files(tmp_path)
    out = str(tmp_path / "conv.zarr")
    assert cli.main(["convert", *paths, "-o", out, "--format", "zarr", "-q"]) == 0
    assert zarr.open_array(out, path="images", mode="r").attrs["complete"] is True
    np.testing.assert_array_equal(imageseries.open(out).read_block(0, NFRAMES), _stack())


def test_fill_series_with_bad_frames_is_stored_as_nan(tmp_path):
    paths = _edf_files(tmp_path)
    os.remove(paths[2])
    ims = imageseries.from_files(paths, on_error="fill")
    out = str(tmp_path / "nan.zarr")
    imageseries.write(ims, out, "zarr")
    back = imageseries.open(out)
    assert back.dtype.kind == "f"
    got = back.read_block(0, NFRAMES)
    assert np.isnan(got[2]).all()
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5]], _stack()[[0, 1, 3, 4, 5]])


def test_frame_ranges():
    assert frame_ranges([0, 1, 2, 7]) == "0..2, 7"
    assert frame_ranges(list(range(0, 40, 2)), limit=2) == "0, 2, ... (20 frames in all)"
    assert format_ranges([(0, 3), (5, 6), (9, 10**12)], limit=2) == \
        f"0..2, 5, ... ({3 + 1 + 10**12 - 9} frames in all)"


def _set_shape(store: str, shape) -> None:
    path = os.path.join(store, "images", "zarr.json")
    with open(path) as f:
        meta = json.load(f)
    meta["shape"] = list(shape)
    with open(path, "w") as f:
        json.dump(meta, f)


@pytest.mark.timeout(30)
def test_lying_shapes(store):
    """Metadata claiming 10**12 frames, or huge frames: a quick error, no allocation."""
    _set_shape(store, (10**12,) + SHAPE)
    with pytest.raises(FrameReadError, match=rf"frames.zarr.*frames {NFRAMES}\.\.{10**12 - 1}"):
        imageseries.open(store)
    with pytest.raises(InputError, match="frames.zarr.*more than the 100000"):
        imageseries.open(store, on_error="fill")
    for shape in [(NFRAMES, 2**21, 4), (NFRAMES, 2**20, 2**20), (NFRAMES, 0, 5)]:
        _set_shape(store, shape)
        with pytest.raises(InputError, match="frames.zarr.*declares frames"):
            imageseries.open(store, on_error="fill")


def test_maps_of_a_store_with_a_missing_chunk(store, tmp_path):
    """The issue's case: maps of a zarr input with missing chunks were zeros, complete, with
    no bad frames.  Now: an error (default), or NaN at that scan point, listed."""
    from xrsmap_dask import Mapper

    os.remove(_chunk(store, 3))
    roi = (0, 0, SHAPE[1] - 1, SHAPE[0] - 1)  # xrsmap ROI, inclusive: the whole frame
    with pytest.raises(FrameReadError, match="frames.zarr.*frame 3"):
        Mapper(3, 2, output=str(tmp_path / "a.zarr")).composite_map(
            imageseries.open(store, missing_chunks="error"), roi=roi, binning=1)
    mapper = Mapper(3, 2, output=str(tmp_path / "b.zarr"))
    _, sums = mapper.composite_map(imageseries.open(store, on_error="fill"), roi=roi, binning=1)
    expected = _stack().reshape(NFRAMES, -1).sum(axis=1).astype(float).reshape(2, 3)
    expected[1, 0] = np.nan  # frame 3 = map row 1, column 0
    np.testing.assert_array_equal(sums, expected)
    assert [b[0] for b in mapper.bad_frames] == [3]
