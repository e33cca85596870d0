"""File-list image series and their lazy dask arrays (issue 3), with real EDF/TIFF files."""
from __future__ import annotations

import gzip
import os
import pickle
import shutil

import dask
import fabio
import numpy as np
import pytest

from xrsmap_dask import imageseries
from xrsmap_dask.errors import FormatError, FrameReadError, InputError
from xrsmap_dask.lazy import auto_frames_per_chunk, frame_chunks
from xrsmap_dask.synth import write_edf

ROIS = [
    None,
    (slice(0, 7), slice(0, 5)),            # top-left corner
    (slice(41, 48), slice(33, 40)),        # bottom-right corner
    (slice(0, 48), slice(39, 40)),         # last column, all rows
    (slice(47, 48), slice(0, 40)),         # last row
    (slice(10, 30), slice(None, None)),    # band of rows
]


def _reference(paths):
    return np.stack([fabio.open(p).data for p in paths])


@pytest.mark.parametrize("roi", ROIS)
@pytest.mark.parametrize("fpc", ["auto", 5, 7, 24, 100])
def test_to_dask_equals_stack(small_scan, roi, fpc):
    ims = imageseries.from_files(small_scan.files)
    ref = _reference(small_scan.files)
    arr = ims.to_dask(roi, frames_per_chunk=fpc)
    sl = (slice(None),) + (roi if roi is not None else (slice(None), slice(None)))
    assert arr.shape == ref[sl].shape and arr.dtype == ref.dtype
    np.testing.assert_array_equal(arr.compute(), ref[sl])
    np.testing.assert_array_equal(np.stack([ims[j] for j in range(len(ims))]), ref)


def test_interface_like_hexrd(small_scan):
    ims = imageseries.from_files(small_scan.files, meta={"omega": np.zeros((24, 2))})
    assert len(ims) == 24 and ims.shape == (48, 40) and ims.dtype == np.uint16
    assert ims.metadata["omega"].shape == (24, 2)
    ref = fabio.open(small_scan.files[5]).data
    np.testing.assert_array_equal(ims[5], ref)
    np.testing.assert_array_equal(ims[-19], ref)
    np.testing.assert_array_equal(ims[(5, slice(3, 9), slice(10, 20))], ref[3:9, 10:20])
    with pytest.raises(IndexError):
        ims[24]
    # header lengths really differ between the files of the synthetic scan
    assert len({ims._offsets[j] for j in range(len(ims))}) > 1


def test_chunking_arithmetic():
    assert frame_chunks(10, 3) == (3, 3, 3, 1)
    assert frame_chunks(9, 3) == (3, 3, 3)
    assert auto_frames_per_chunk(2000, 512 * 512 * 2) == 64      # 32 MiB blocks
    assert auto_frames_per_chunk(10**5, 512 * 512 * 2) == 128    # 64 MiB: 782 tasks
    assert auto_frames_per_chunk(7, 10) == 7
    # 10,000 full 1024² uint16 frames: blocks grow to 50 MiB so the series makes 400 tasks
    fpc = auto_frames_per_chunk(10_000, 1024 * 1024 * 2)
    assert len(frame_chunks(10_000, fpc)) <= 400 and fpc * 2 * 2**20 <= 64 * 2**20
    # ... but never past 64 MiB: 10^5 such frames make more tasks rather than bigger blocks
    assert auto_frames_per_chunk(10**5, 1024 * 1024 * 2) == 32


def _write_tiny_edfs(directory, n, shape=(16, 20)):
    """n small uint16 EDF files written byte by byte (fast), frame k filled with k % 60000."""
    os.makedirs(directory, exist_ok=True)
    head_fmt = ("{{\nHeaderID = EH:000001:000000:000000 ;\nByteOrder = LowByteFirst ;\n"
                "DataType = UnsignedShort ;\nDim_1 = {c} ;\nDim_2 = {r} ;\nSize = {s} ;\n")
    paths = []
    for k in range(n):
        head = head_fmt.format(c=shape[1], r=shape[0], s=shape[0] * shape[1] * 2)
        head += "counter = " + "9" * (k % 700) + " ;\n"
        pad = 512 - (len(head) + 2) % 512
        path = os.path.join(directory, f"f{k:05d}.edf")
        with open(path, "wb") as f:
            f.write((head + " " * pad + "}\n").encode())
            f.write(np.full(shape, k % 60000, dtype="<u2").tobytes())
        paths.append(path)
    return paths


def test_ten_thousand_frames_few_tasks_small_graph(tmp_path):
    import io

    from xrsmap_dask.cluster import text_counter

    paths = _write_tiny_edfs(tmp_path / "many", 10_000)
    calls = []
    ims = imageseries.from_files(paths, progress=lambda done, total: calls.append((done, total)))
    assert len(ims) == 10_000
    # header reads report progress in steps, ending with all files
    assert len(calls) > 3 and calls[-1] == (10_000, 10_000)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    stream = io.StringIO()
    text_counter("reading headers", stream=stream)(10_000, 10_000)
    assert stream.getvalue() == "\rreading headers: 10000/10000\n"
    assert text_counter("x", quiet=True) is None
    arr = ims.to_dask((slice(2, 14), slice(3, 19)))
    graph = dict(arr.__dask_graph__())
    assert len(graph) <= 400
    assert all(str(k[0]).startswith("read-roi-") for k in graph)
    assert len(pickle.dumps(graph)) < 5 * 2**20
    sums = arr.sum(axis=(1, 2)).compute()
    np.testing.assert_array_equal(sums, (np.arange(10_000) % 60000) * 12 * 16)


def test_block_source_pickles_small(small_scan):
    ims = imageseries.from_files(small_scan.files)
    blob = pickle.dumps(ims.block_source(0, 6))
    assert len(blob) < 4000
    again = pickle.loads(blob)
    roi = (slice(1, 5), slice(2, 30))
    np.testing.assert_array_equal(again.read(roi), ims.read_block(0, 6, roi))


def test_threads_and_local_cluster_identical(small_scan, cluster_client):
    ims = imageseries.from_files(small_scan.files)
    arr = ims.to_dask((slice(5, 45), slice(3, 37)), frames_per_chunk=5)
    with dask.config.set(scheduler="threads"):
        threaded = arr.sum(axis=0).compute()
        frames = arr.compute()
    on_cluster = cluster_client.compute(arr.sum(axis=0)).result()
    frames_cluster = cluster_client.compute(arr).result()
    np.testing.assert_array_equal(threaded, on_cluster)
    np.testing.assert_array_equal(frames, frames_cluster)
    np.testing.assert_array_equal(frames, _reference(small_scan.files)[:, 5:45, 3:37])


def test_varying_header_lengths_read_right_and_rewrite_detected(tmp_path):
    data = [np.full((20, 30), v, dtype="u2") + np.arange(30, dtype="u2") for v in (1, 2, 3)]
    paths = []
    for k, a in enumerate(data):
        p = str(tmp_path / f"h{k}.edf")
        write_edf(p, a, {"pad": "q" * (k * 900)})
        paths.append(p)
    ims = imageseries.from_files(paths)
    assert len(set(ims._offsets)) == 3
    np.testing.assert_array_equal(ims.to_dask().compute(), np.stack(data))
    # rewritten after open with a longer header: detected, never garbage or zeros
    write_edf(paths[1], data[1], {"pad": "q" * 3000})
    with pytest.raises(FrameReadError, match=r"h1\.edf.*frame 1.*changed"):
        ims.to_dask().compute()


def test_truncated_and_missing_raise_naming_file(small_scan, tmp_path):
    paths = [shutil.copy(f, tmp_path) for f in small_scan.files[:6]]
    with open(paths[3], "r+b") as f:
        f.truncate(os.path.getsize(paths[3]) - 10)
    with pytest.raises(FrameReadError, match=r"scan_00003\.edf.*frame 3.*truncated"):
        imageseries.from_files(paths)
    os.remove(paths[3])
    with pytest.raises(FrameReadError, match=r"scan_00003\.edf.*not found"):
        imageseries.from_files(paths)


def test_on_error_fill_marks_bad_frames_nan(small_scan, tmp_path):
    paths = [shutil.copy(f, tmp_path) for f in small_scan.files[:8]]
    with open(paths[2], "r+b") as f:
        f.truncate(700)
    os.remove(paths[5])
    ims = imageseries.from_files(paths, on_error="fill")
    assert [b[0] for b in ims.bad_frames] == [2, 5]
    assert "truncated" in ims.bad_frames[0][2] and "not found" in ims.bad_frames[1][2]
    arr = ims.to_dask((slice(0, 10), slice(0, 10)), frames_per_chunk=3)
    assert arr.dtype == np.float32
    got = arr.compute()
    ref = _reference(small_scan.files[:8])[:, :10, :10].astype(np.float32)
    bad = np.isnan(got).all(axis=(1, 2))
    assert list(np.flatnonzero(bad)) == [2, 5]
    np.testing.assert_array_equal(got[~bad], ref[~bad])


def test_frame_shape_mismatch_raises(small_scan, tmp_path):
    odd = str(tmp_path / "odd.edf")
    write_edf(odd, np.zeros((48, 41), dtype="u2"))
    with pytest.raises(FrameReadError, match=r"odd\.edf.*differs"):
        imageseries.from_files(small_scan.files[:3] + [odd])
    wrong_dtype = str(tmp_path / "float.edf")
    write_edf(wrong_dtype, np.zeros((48, 40), dtype="f4"))
    with pytest.raises(FrameReadError, match=r"float\.edf.*float32"):
        imageseries.from_files(small_scan.files[:3] + [wrong_dtype])


def test_roi_outside_frame_and_unknown_format(small_scan):
    ims = imageseries.from_files(small_scan.files[:3])
    for roi in [(slice(0, 49), slice(0, 10)), (slice(5, 5), slice(0, 10)),
                (slice(-1, 4), slice(0, 10)), (slice(0, 4), slice(30, 41))]:
        with pytest.raises(InputError, match="roi.*outside the frame of shape 48 x 40"):
            ims.to_dask(roi)
    with pytest.raises(InputError, match="frames_per_chunk"):
        ims.to_dask(None, frames_per_chunk=0)
    with pytest.raises(FormatError, match="'nope'.*known:.*array"):
        imageseries.open(small_scan.files[0], "nope")


def test_multiframe_and_non_edf_files(tmp_path):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 5000, (5, 24, 18)).astype("u2")
    multi = str(tmp_path / "multi.edf")
    img = fabio.edfimage.EdfImage(data=frames[0])
    for k in range(1, 3):
        img.append_frame(data=frames[k])
    img.write(multi)
    tif = str(tmp_path / "one.tif")
    fabio.tifimage.TifImage(data=frames[3]).write(tif)
    single = str(tmp_path / "single.edf")
    write_edf(single, frames[4])
    gz = single + ".gz"
    with open(single, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    ims = imageseries.from_files([multi, tif, gz])
    assert len(ims) == 5
    np.testing.assert_array_equal(ims.to_dask(frames_per_chunk=2).compute(), frames)
    np.testing.assert_array_equal(ims.to_dask((slice(3, 20), slice(0, 5))).compute(),
                                  frames[:, 3:20, 0:5])
    # hexrd image-files options
    skipped = imageseries.from_files([multi, tif], empty_frames=1)
    np.testing.assert_array_equal(np.stack(list(skipped)), frames[1:3])
    capped = imageseries.from_files([multi, tif, gz], max_file_frames=2, max_total_frames=3)
    np.testing.assert_array_equal(np.stack(list(capped)), frames[[0, 1, 3]])
    as_float = imageseries.from_files([gz], dtype="float32")
    assert as_float.to_dask().compute().dtype == np.float32


def test_odd_first_file_is_the_one_blamed(small_scan, tmp_path):
    odd = str(tmp_path / "odd_first.edf")
    write_edf(odd, np.zeros((30, 40), dtype="u2"))
    with pytest.raises(FrameReadError, match=r"odd_first\.edf.*frame 0\b.*30 x 40.*48 x 40"):
        imageseries.from_files([odd] + small_scan.files[:5])
    ims = imageseries.from_files([odd] + small_scan.files[:5], on_error="fill")
    assert ims.shape == (48, 40) and [b[0] for b in ims.bad_frames] == [0]


def test_read_image_checks_edf(small_scan, tmp_path):
    from xrsmap_dask.imageseries import read_image

    np.testing.assert_array_equal(read_image(small_scan.mask_file), fabio.open(small_scan.mask_file).data)
    cut = shutil.copy(small_scan.mask_file, tmp_path / "cut_mask.edf")
    with open(cut, "r+b") as f:
        f.truncate(os.path.getsize(cut) - 50)
    with pytest.raises(InputError, match=r"argument 'mask', file .*cut_mask\.edf.*truncated"):
        read_image(cut, "mask")


def test_threaded_header_probe_same_as_sequential(tmp_path, monkeypatch):
    from xrsmap_dask.imageseries import filelist

    paths = _write_tiny_edfs(tmp_path / "probe", 300)
    seq = imageseries.from_files(paths)
    monkeypatch.setattr(filelist, "SLOW_PROBE_SECONDS", 0.0)  # take the file system as slow
    monkeypatch.setattr(filelist, "PROBE_BATCH", 16)
    pooled = imageseries.from_files(paths)
    assert pooled.token == seq.token and pooled.filenames == paths
    np.testing.assert_array_equal(pooled.to_dask().compute(), seq.to_dask().compute())


def _multiframe_files(directory, nfiles=3, per_file=3):
    """nfiles EDF files of per_file 4 x 5 frames; series frame k is filled with 10 * k."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for k in range(nfiles):
        frames = [np.full((4, 5), 10 * (per_file * k + i), np.uint16) for i in range(per_file)]
        img = fabio.edfimage.EdfImage(data=frames[0])
        for f in frames[1:]:
            img.append_frame(data=f)
        path = os.path.join(directory, f"m{k}.edf")
        img.write(path)
        paths.append(path)
    return paths


def test_fill_keeps_good_frames_of_a_damaged_multiframe_file(tmp_path):
    paths = _multiframe_files(tmp_path / "mf")
    with open(paths[1], "r+b") as f:               # cut the last block of the middle file
        f.truncate(os.path.getsize(paths[1]) - 4)
    with pytest.raises(FrameReadError, match=r"m1\.edf', frame 5\b.*truncated"):
        imageseries.from_files(paths)
    ims = imageseries.from_files(paths, on_error="fill")
    assert len(ims) == 9 and [b[0] for b in ims.bad_frames] == [5]
    values = ims.to_dask(frames_per_chunk=4).compute()[:, 0, 0]
    expected = 10.0 * np.arange(9)
    expected[5] = np.nan
    np.testing.assert_array_equal(values, expected.astype(np.float32))
    # a missing file counts as many frames as the others hold, so later frames stay in place
    os.remove(paths[1])
    ims = imageseries.from_files(paths, on_error="fill")
    assert len(ims) == 9 and [b[0] for b in ims.bad_frames] == [3, 4, 5]
    assert "counted as 3 frames" in ims.bad_frames[0][2]
    np.testing.assert_array_equal(ims.to_dask().compute()[[0, 6, 8], 0, 0], [0, 60, 80])


def test_error_frame_index_counts_series_frames_with_empty_frames(tmp_path):
    paths = _multiframe_files(tmp_path / "mf")
    with open(paths[1], "r+b") as f:
        f.truncate(os.path.getsize(paths[1]) - 4)
    # empty-frames=1: files give frames 1-2 each; file 1's bad block (in-file 2) is series 3
    with pytest.raises(FrameReadError, match=r"m1\.edf', frame 3\b"):
        imageseries.from_files(paths, empty_frames=1)
    ims = imageseries.from_files(paths, empty_frames=1, on_error="fill")
    assert [b[0] for b in ims.bad_frames] == [3]


def test_fill_with_cast_dtype_declares_what_it_returns(small_scan, tmp_path):
    paths = [shutil.copy(f, tmp_path) for f in small_scan.files[:4]]
    os.remove(paths[1])
    ims = imageseries.from_files(paths, dtype="float64", on_error="fill")
    arr = ims.to_dask((slice(0, 4), slice(0, 4)))
    got = arr.compute()
    assert arr.dtype == got.dtype == np.float64 and np.isnan(got[1]).all()


def test_xrsmap_roi_conventions():
    from xrsmap_dask.roi import xrsmap_roi_to_slices

    # the README example: inclusive bounds, 1248 x 1248
    rows, cols = xrsmap_roi_to_slices((536, 306, 1783, 1553), (2048, 2048))
    assert (rows, cols) == (slice(306, 1554), slice(536, 1784))
    assert xrsmap_roi_to_slices((0, 0, 3, 1), (10, 8), origin="lower") == (slice(8, 10), slice(0, 4))
    for bad in [(0, 0, 3.5, 4), (0, 0, 3), "0 0 3 3", (0, 5, 3, 2)]:
        with pytest.raises(InputError, match="roi"):
            xrsmap_roi_to_slices(bad, (10, 8))
    with pytest.raises(InputError, match="outside the frame"):
        xrsmap_roi_to_slices((0, 0, 8, 3), (10, 8))
