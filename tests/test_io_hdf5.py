"""HDF5 reads (xrsmap_dask.io.hdf5, _h5chunks, _codecs): raw chunks decoded outside HDF5 equal
plain h5py reads for every filter, dtype and chunk shape; damaged storage found at open;
filters registered in every reading process (fresh interpreter, LocalCluster workers)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from xrsmap_dask import synth
from xrsmap_dask.errors import FrameReadError, InputError
from xrsmap_dask.imageseries.nexus import NexusImageSeries
from xrsmap_dask.io import _codecs
from xrsmap_dask.io import hdf5 as h5io
from xrsmap_dask.mapper import Mapper

FAST = ("bslz4", "lz4", "zstd", "blosc", "blosc2", "gzip", "gzip-shuffle", "none")
SHAPE = (37, 29)  # not a multiple of any chunk below: partial edge chunks everywhere
CHUNKS = [(1, 37, 29), (2, 16, 8), (3, 37, 5), (4, 10, 29)]
REGIONS = [(0, 7, slice(0, 37), slice(0, 29)), (1, 5, slice(3, 30), slice(5, 28)),
           (6, 7, slice(36, 37), slice(0, 1)), (2, 3, slice(15, 17), slice(7, 9))]


def read(src: h5io.FrameDataset, lo, hi, rows, cols) -> np.ndarray:
    out = np.empty((hi - lo, rows.stop - rows.start, cols.stop - cols.start), src.dtype)
    return h5io.read_into(src, lo, hi, rows, cols, out)


@pytest.mark.parametrize("compression", FAST + ("bzip2",))
@pytest.mark.parametrize("dtype", ["uint16", "uint32", "int32", ">f4", "float64"])
def test_reads_equal_h5py(tmp_path, compression, dtype):
    frames = synth.detector_frames(7, SHAPE, dtype, seed=len(compression))
    path = str(tmp_path / "f.h5")
    for k, chunks in enumerate(CHUNKS):
        synth.write_hdf5_frames(path, f"/d{k}", frames, compression, chunks)
    with h5py.File(path, "r") as f:
        ref = {k: f[f"/d{k}"][()] for k in range(len(CHUNKS))}
    for k in range(len(CHUNKS)):
        src = h5io.inspect_dataset(path, f"/d{k}")
        # the listed filters are decoded here; bzip2 is left to HDF5
        assert src.direct == (compression != "bzip2")
        assert not src.missing
        for lo, hi, rows, cols in REGIONS:
            got = read(src, lo, hi, rows, cols)
            assert got.dtype == np.dtype(dtype).newbyteorder("=")
            np.testing.assert_array_equal(got, ref[k][lo:hi, rows, cols])


@pytest.mark.parametrize("cname, nelems", [("lz4", 0), ("lz4", 256), ("zstd", 0),
                                           ("zstd", 512)])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "float64"])
def test_bitshuffle_partial_block_decode_equals_h5py(tmp_path, cname, nelems, dtype):
    """One-frame bitshuffle chunks: only the LZ4/zstd blocks holding the ROI rows are
    decoded; every row range (first, middle, last, short last block) equals h5py."""
    import hdf5plugin

    frames = synth.detector_frames(3, (203, 61), dtype, seed=3)
    path = str(tmp_path / "bs.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("/d", data=frames, chunks=(1, 203, 61),
                         **hdf5plugin.Bitshuffle(nelems=nelems, cname=cname))
    src = h5io.inspect_dataset(path, "/d")
    assert src.direct
    for r0, r1 in [(0, 1), (0, 100), (37, 38), (50, 170), (150, 203), (202, 203), (0, 203)]:
        for cols in (slice(0, 61), slice(13, 40)):
            np.testing.assert_array_equal(read(src, 0, 3, slice(r0, r1), cols),
                                          frames[:, r0:r1, cols])


def test_filter_labels_and_decodable_chains(tmp_path):
    path = str(tmp_path / "f.h5")
    frames = synth.detector_frames(2, (8, 8), "uint32")
    labels = {}
    for name in FAST + ("bzip2",):
        synth.write_hdf5_frames(path, f"/{name}", frames, name)
        src = h5io.inspect_dataset(path, f"/{name}")
        labels[name] = [s.label for s in src.pipeline]
        assert _codecs.chain_decodable(src.pipeline) == (name != "bzip2")
    assert labels["bslz4"] == ["bitshuffle+lz4"]
    assert labels["gzip-shuffle"] == ["shuffle", "deflate(4)"]
    assert labels["bzip2"] == ["bzip2"]


def test_skipped_filter_mask_is_honoured(tmp_path):
    """A chunk stored with its (optional) filter skipped decodes as raw bytes, as in HDF5."""
    path = str(tmp_path / "f.h5")
    frames = synth.detector_frames(3, (8, 6), "uint16")
    synth.write_hdf5_frames(path, "/d", frames, "gzip-shuffle")
    with h5py.File(path, "a") as f:
        # frame 1 stored raw with both filters marked skipped (mask bits 0 and 1)
        f["/d"].id.write_direct_chunk((1, 0, 0), frames[1].tobytes(), filter_mask=0b11)
    with h5py.File(path, "r") as f:
        ref = f["/d"][()]
    np.testing.assert_array_equal(ref, frames)
    src = h5io.inspect_dataset(path, "/d")
    np.testing.assert_array_equal(read(src, 0, 3, slice(0, 8), slice(0, 6)), frames)


def test_corrupt_chunk_names_file_dataset_and_frames(tmp_path):
    path = str(tmp_path / "f.h5")
    frames = synth.detector_frames(4, (16, 16), "uint32")
    synth.write_hdf5_frames(path, "/d", frames, "bslz4")
    with h5py.File(path, "a") as f:
        f["/d"].id.write_direct_chunk((2, 0, 0), b"\0" * 40)
    src = h5io.inspect_dataset(path, "/d")
    with pytest.raises(FrameReadError, match=r"f\.h5.*'/d', frames 2\.\.2: corrupt chunk"):
        read(src, 0, 4, slice(0, 16), slice(0, 16))
    ims = NexusImageSeries(f"{path}:/d", on_error="fill")
    block = ims.read_block(0, 4)
    assert np.isnan(block[2]).all()
    np.testing.assert_array_equal(block[[0, 1, 3]], frames[[0, 1, 3]])


# -- storage never written, truncated, external ------------------------------------------
@pytest.mark.parametrize("chunks", [(1, 12, 10), (2, 5, 10)])
def test_unwritten_chunks_found_at_open(tmp_path, chunks):
    path = str(tmp_path / "stopped.h5")
    frames = synth.detector_frames(9, (12, 10), "uint32")
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("/entry/data/data", shape=frames.shape, dtype="uint32",
                              chunks=chunks, **synth.hdf5_compression("bslz4"))
        ds[:5] = frames[:5]  # the detector stopped after frame 4 (or 5 with 2-frame chunks)
    first_missing = 5 if chunks[0] == 1 else 6
    src = h5io.inspect_dataset(path, "/entry/data/data")
    assert src.missing == ((first_missing, 9, "chunks never written"),)
    with pytest.raises(FrameReadError, match=rf"stopped\.h5.*frames {first_missing}\.\.8: "
                                             "dataset '/entry/data/data': chunks never written"):
        NexusImageSeries(path)
    ims = NexusImageSeries(path, on_error="fill")
    assert [b[0] for b in ims.bad_frames] == list(range(first_missing, 9))
    block = ims.read_block(0, 9)
    assert np.isnan(block[first_missing:]).all()
    np.testing.assert_array_equal(block[:5], frames[:5])


def test_truncated_file_is_an_error_at_open(tmp_path):
    """HDF5 records the file's end: a copy cut short fails at open, naming the file."""
    path = str(tmp_path / "cut.h5")
    frames = synth.detector_frames(6, (32, 32), "uint32")
    synth.write_hdf5_frames(path, "/data", frames, "none")
    src = h5io.inspect_dataset(path, "/data")
    with open(path, "r+b") as f:
        f.truncate(int(src.table.addr.max()) + 10)  # the last chunk cut short
    with pytest.raises(FrameReadError, match=r"cut\.h5.*truncated"):
        NexusImageSeries(f"{path}:/data", on_error="fill")


def test_external_raw_file_short(tmp_path):
    frames = synth.detector_frames(5, (8, 6), ">f4")
    raw = tmp_path / "frames.raw"
    raw.write_bytes(frames.tobytes()[: 3 * 8 * 6 * 4 + 7])  # 3 frames and a bit
    path = str(tmp_path / "ext.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("/x", shape=frames.shape, dtype=">f4",
                         external=[(str(raw), 0, frames.nbytes)])
    src = h5io.inspect_dataset(path, "/x")
    assert src.layout == "external" and src.missing[0][:2] == (3, 5)
    with pytest.raises(FrameReadError, match=r"frames 3\.\.4: dataset '/x': raw data file .*frames\.raw"):
        NexusImageSeries(f"{path}:/x")
    ims = NexusImageSeries(f"{path}:/x", on_error="fill")
    block = ims.read_block(0, 5, (slice(1, 7), slice(2, 5)))
    np.testing.assert_array_equal(block[:3], frames[:3, 1:7, 2:5])
    assert np.isnan(block[3:]).all()


def test_contiguous_reads_and_unallocated(tmp_path):
    path = str(tmp_path / "c.h5")
    frames = synth.detector_frames(4, (9, 7), "uint16")
    with h5py.File(path, "w") as f:
        f["/c"] = frames
        f.create_dataset("/never", shape=(3, 9, 7), dtype="uint16")
    src = h5io.inspect_dataset(path, "/c")
    assert src.layout == "contiguous" and not src.missing
    np.testing.assert_array_equal(read(src, 1, 4, slice(2, 9), slice(0, 3)),
                                  frames[1:4, 2:9, 0:3])
    never = h5io.inspect_dataset(path, "/never")
    assert never.missing == ((0, 3, "storage never written (no data allocated)"),)


# -- dtypes ---------------------------------------------------------------------------------
def test_big_endian_float_maps_with_binning(tmp_path):
    frames = synth.detector_frames(6, (8, 8), "float32").astype(">f4")
    path = str(tmp_path / "be.h5")
    synth.write_hdf5_frames(path, "/d", frames, "zstd", chunks=(1, 4, 8))
    ims = NexusImageSeries(f"{path}:/d")
    assert ims.dtype == np.dtype("float32") and ims.dtype.isnative
    comp, sums = Mapper(3, 2).composite_map(ims, roi=(0, 0, 7, 7), binning=2)
    ref = frames.astype(np.float64)
    np.testing.assert_allclose(sums.ravel(), ref.sum(axis=(1, 2)), rtol=1e-6)
    tile = ref[4].reshape(4, 2, 4, 2).sum(axis=(1, 3))
    np.testing.assert_allclose(comp[4:8, 4:8], tile, rtol=1e-6)


@pytest.mark.parametrize("dtype, word", [
    (np.dtype([("a", "u2"), ("b", "f4")]), "non-numeric"),
    (h5py.string_dtype(), "non-numeric"),
    (np.dtype("S4"), "non-numeric"),
    (np.dtype("complex64"), "complex"),
])
def test_non_numeric_and_complex_refused_at_open(tmp_path, dtype, word):
    path = str(tmp_path / "odd.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/odd", shape=(2, 3, 4), dtype=dtype)
    with pytest.raises(InputError, match=rf"odd\.h5.*'/entry/odd' holds {word} data"):
        NexusImageSeries(f"{path}:/entry/odd")


def test_unavailable_filter_is_an_error_at_open(tmp_path):
    """A filter nobody provides (an optional one, so HDF5 lets us write the file)."""
    path = str(tmp_path / "odd_filter.h5")
    with h5py.File(path, "w") as f:
        space = h5py.h5s.create_simple((2, 4, 4))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1, 4, 4))
        dcpl.set_filter(40123, h5py.h5z.FLAG_OPTIONAL, (1,))
        h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_UINT16, space, dcpl=dcpl)
    with pytest.raises(InputError, match=r"odd_filter\.h5.*'/data' needs HDF5 filter 40123"):
        NexusImageSeries(f"{path}:/data")


# -- filters in every process ---------------------------------------------------------------
ROI = (2, 3, 17, 20)  # x0, y0, x1, y1 inclusive: 18 rows x 16 cols
RING = (9.5, 11.0, 6.0, 3.0)  # cen_x, cen_y, radius, width


@pytest.fixture(scope="module")
def plugin_files(tmp_path_factory):
    """The same frames with every filter we decode and one only HDF5 decodes (bzip2)."""
    d = tmp_path_factory.mktemp("plugins")
    frames = synth.detector_frames(12, (24, 20), "uint32", seed=5)
    files = {}
    for name in FAST + ("bzip2",):
        files[name] = synth.write_hdf5_frames(str(d / f"{name}.h5"), "/entry/data/data",
                                              frames, name)
    return frames, files


def reference_maps(frames, npt_x=4, binning=2):
    """ROI sums, composite mosaic and annulus sums written out with numpy."""
    x0, y0, x1, y1 = ROI
    x = frames.astype(np.float64)
    r = x[:, y0:y1 + 1, x0:x1 + 1]
    sums = r.sum(axis=(1, 2)).reshape(-1, npt_x)
    b = binning
    tiles = r.reshape(len(r), r.shape[1] // b, b, r.shape[2] // b, b).sum(axis=(2, 4))
    npt_y, fy, fx = len(r) // npt_x, tiles.shape[1], tiles.shape[2]
    mosaic = tiles.reshape(npt_y, npt_x, fy, fx).transpose(0, 2, 1, 3).reshape(npt_y * fy, -1)
    cx, cy, radius, width = RING
    yy, xx = np.indices(frames.shape[1:], dtype=np.float64)
    d = np.hypot(yy - cy, xx - cx)
    ring = (d >= radius - width / 2) & (d <= radius + width / 2)
    return sums, mosaic, x[:, ring].sum(axis=1).reshape(-1, npt_x)


MAPS_SCRIPT = """
import json, sys
from xrsmap_dask.imageseries.nexus import NexusImageSeries
from xrsmap_dask.mapper import Mapper
assert "fabio" not in sys.modules
out = {}
for name, path in FILES.items():
    ims = NexusImageSeries(path)
    mapper = Mapper(4, 3, frames_per_chunk=5)
    comp, sums = mapper.composite_map(ims, roi=ROI, binning=2)
    ann = mapper.circle_map(ims, *RING)
    out[name] = [sums.tolist(), comp.tolist(), ann.tolist()]
print(json.dumps([out, "fabio" in sys.modules]))
"""


def test_fresh_interpreter_without_fabio(plugin_files):
    """Every filter's maps in a new interpreter that never imports fabio (hdf5plugin comes
    with our HDF5 reader, nothing else)."""
    import json

    frames, files = plugin_files
    script = f"FILES = {files!r}\nROI = {ROI!r}\nRING = {RING!r}\n" + MAPS_SCRIPT
    env = {k: v for k, v in os.environ.items() if k != "HDF5_PLUGIN_PATH"}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=240)
    assert res.returncode == 0, res.stderr
    maps, fabio_loaded = json.loads(res.stdout.strip().splitlines()[-1])
    assert not fabio_loaded
    ref = reference_maps(frames)
    for name in files:
        for got, want in zip(maps[name], ref):
            np.testing.assert_array_equal(np.array(got), want)


def test_processes_scheduler_reads_every_filter(plugin_files):
    """dask's process pool (fresh spawned interpreters) reads HDF5-only and our filters."""
    frames, files = plugin_files
    for path in (files["bslz4"], files["bzip2"]):  # decoded by us / by HDF5's plugin
        lazy = NexusImageSeries(path).to_dask(roi=(slice(2, 20), slice(1, 19)),
                                              frames_per_chunk=5)
        got = lazy.sum(axis=(1, 2), dtype=np.float64).compute(scheduler="processes",
                                                              num_workers=2)
        np.testing.assert_array_equal(got, frames[:, 2:20, 1:19].sum(axis=(1, 2)))


def test_localcluster_workers_register_filters(plugin_files):
    """Fresh worker processes have no hdf5plugin until they unpickle a read task; then every
    filter's maps equal the numpy reference."""
    from distributed import Client, LocalCluster

    frames, files = plugin_files
    probe = "'hdf5plugin' in __import__('sys').modules"
    ref = reference_maps(frames)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", host="127.0.0.1") as cluster, \
            Client(cluster, set_as_default=False) as client:
        assert not any(client.run(eval, probe).values())
        for name, path in files.items():
            ims = NexusImageSeries(path)
            mapper = Mapper(4, 3, client=client, frames_per_chunk=2)
            comp, sums = mapper.composite_map(ims, roi=ROI, binning=2)
            ann = mapper.circle_map(ims, *RING)
            for got, want in zip((sums, comp, ann), ref):
                np.testing.assert_array_equal(got, want, err_msg=name)
        assert all(client.run(eval, probe).values())
