"""NeXus / Eiger master / LIMA / VDS / several-file inputs (xrsmap_dask.io.nexus, io.h5info,
imageseries.nexus): one series each, maps equal a numpy reference from plain h5py reads (with
the master's pixel mask), damage found at open (raise) or NaN frames listed (fill)."""
from __future__ import annotations

import glob
import os

import h5py
import numpy as np
import pytest

from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import FrameReadError, InputError
from xrsmap_dask.imageseries.nexus import NexusImageSeries
from xrsmap_dask.io import h5info
from xrsmap_dask.mapper import Mapper

NPT_Y, NPT_X = 3, 4
SHAPE = (40, 36)
ROI = (3, 2, 30, 37)  # x0, y0, x1, y1 inclusive: 28 x 36
RING = (18.0, 17.0, 9.0, 4.0)  # cen_x, cen_y, radius, width


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """An Eiger master + 3 data files, a LIMA file and a VDS over the data files."""
    d = tmp_path_factory.mktemp("nexus")
    frames = synth.detector_frames(NPT_Y * NPT_X, SHAPE, "uint32", seed=7)
    mask = np.zeros(SHAPE, np.uint32)
    mask[10, 5:9] = 1    # gap
    mask[20, 20] = 2     # dead
    mask[31, 3] = 16     # noisy
    master, data_files = synth.write_eiger_master(d / "eiger", frames, 5, pixel_mask=mask)
    lima = synth.write_lima(str(d / "lima_0000.h5"), frames, "gzip-shuffle")
    vds = synth.write_vds(str(d / "eiger" / "scan_vds.h5"), data_files)
    return dict(dir=d, frames=frames, mask=mask, master=master, data_files=data_files,
                lima=lima, vds=vds)


def h5py_frames(files, dataset="/entry/data/data") -> np.ndarray:
    """The reference: plain h5py reads, file after file."""
    out = []
    for path in files:
        with h5py.File(path, "r") as f:
            out.append(f[dataset][()])
    return np.concatenate(out).astype(np.float64)


def reference(frames, mask=None):
    """ROI sum, composite tiles (binning 2) and annulus sum, excluded pixels set to 0."""
    x = frames.copy()
    if mask is not None:
        x[:, mask] = 0
    x0, y0, x1, y1 = ROI
    r = x[:, y0:y1 + 1, x0:x1 + 1]
    sums = r.sum(axis=(1, 2)).reshape(NPT_Y, NPT_X)
    tiles = r.reshape(len(r), r.shape[1] // 2, 2, r.shape[2] // 2, 2).sum(axis=(2, 4))
    cx, cy, radius, width = RING
    yy, xx = np.indices(SHAPE, dtype=np.float64)
    dist = np.hypot(yy - cy, xx - cx)
    ring = (dist >= radius - width / 2) & (dist <= radius + width / 2)
    ann = x[:, ring].sum(axis=1).reshape(NPT_Y, NPT_X)
    return sums, tiles.reshape(NPT_Y, NPT_X, *tiles.shape[1:]), ann


def run_maps(ims, mask=None, client=None, **kw):
    """The xrsmap calls: composite_map (mosaic and ROI sum) and circle_map."""
    mapper = Mapper(NPT_X, NPT_Y, mask=mask, client=client, frames_per_chunk=3, **kw)
    comp, sums = mapper.composite_map(ims, roi=ROI, binning=2)
    ann = mapper.circle_map(ims, *RING)
    fy, fx = comp.shape[0] // NPT_Y, comp.shape[1] // NPT_X
    tiles = comp.reshape(NPT_Y, fy, NPT_X, fx).transpose(0, 2, 1, 3)
    return {"roi_sum": sums, "composite": tiles, "annulus_sum": ann[None]}


def check_maps(out, frames, mask):
    sums, tiles, ann = reference(frames, mask)
    np.testing.assert_array_equal(out["roi_sum"], sums)
    np.testing.assert_array_equal(out["composite"], tiles)
    np.testing.assert_array_equal(out["annulus_sum"][0], ann)


# -- one series per layout ------------------------------------------------------------------
@pytest.mark.parametrize("how", ["master", "master:/entry/data", "lima", "lima:measurement",
                                 "lima:instrument", "vds", "vds:path", "glob", "list"])
def test_layouts_open_as_one_series_with_maps_equal_reference(scan, how):
    kind, _, inner = how.partition(":")
    name = {"master": scan["master"], "lima": scan["lima"], "vds": scan["vds"],
            "glob": os.path.join(os.path.dirname(scan["master"]), "scan_data_*.h5"),
            "list": scan["data_files"]}[kind]
    inner = {"": None, "/entry/data": "/entry/data",
             "measurement": "/entry_0000/measurement/data",
             "instrument": "/entry_0000/ESRF-ID11/eiger/data",
             "path": "/entry/instrument/detector/data"}[inner]
    if kind in ("glob", "list"):
        ims = imageseries.open(name, "nexus")
    else:  # the format is guessed from the file (the registry's 'nexus' entry)
        ims = imageseries.open(f"{name}:{inner}" if inner else name)
        assert imageseries.guess_format(name) == "nexus"
    assert len(ims) == NPT_Y * NPT_X and ims.shape == SHAPE and ims.dtype == np.uint32
    ref = h5py_frames(scan["data_files"])
    np.testing.assert_array_equal(ims.read_block(0, len(ims)), ref)
    mask = ims.detector_mask
    assert (mask is not None) == (kind == "master")
    if mask is not None:
        np.testing.assert_array_equal(mask, scan["mask"] != 0)
    check_maps(run_maps(ims, mask=mask), ref, mask)


def test_hexrd_files_stay_with_the_hdf5_format(scan, tmp_path):
    path = str(tmp_path / "hexrd.h5")
    ims = imageseries.open(scan["master"])
    imageseries.write(ims, path, "hdf5", path="/imageseries")
    assert imageseries.guess_format(path) == "hdf5"
    back = imageseries.open(f"{path}:/imageseries/images")
    assert type(back).__name__ == "HDF5ImageSeries"
    np.testing.assert_array_equal(back.read_block(0, len(back)), scan["frames"])
    with pytest.raises(InputError, match="accepted: direct_chunks, on_error, path"):
        imageseries.open(scan["master"], dataname="x")
    # a file in no detector layout is guessed 'hdf5'; format='nexus' takes its one 3-D dataset
    plain = synth.write_hdf5_frames(str(tmp_path / "plain.h5"), "/x/frames", scan["frames"])
    assert imageseries.guess_format(plain) == "hdf5"
    np.testing.assert_array_equal(imageseries.open(plain, "nexus").read_block(0, 3),
                                  scan["frames"][:3])


def test_master_links_followed_in_order_with_frame_counts(scan):
    ims = NexusImageSeries(scan["master"])
    assert [s.data.filename for s in ims.segments] == scan["data_files"]
    assert [s.nframes for s in ims.segments] == [5, 5, 2]
    one = NexusImageSeries(scan["master"] + ":/entry/data/data_000002")
    np.testing.assert_array_equal(one.read_block(0, 5), scan["frames"][5:10])


def test_vds_read_from_its_sources(scan):
    ims = NexusImageSeries(scan["vds"])
    assert [s.data.filename for s in ims.segments] == scan["data_files"]
    assert all(s.data.direct for s in ims.segments)


def test_maps_on_a_localcluster(scan, client):
    ims = NexusImageSeries(scan["master"])
    ref = h5py_frames(scan["data_files"])
    check_maps(run_maps(ims, mask=ims.detector_mask, client=client), ref, ims.detector_mask)
    lima = NexusImageSeries(scan["lima"])
    check_maps(run_maps(lima, client=client), ref, None)


# -- damage ---------------------------------------------------------------------------------
@pytest.fixture
def damaged(tmp_path):
    frames = synth.detector_frames(NPT_Y * NPT_X, SHAPE, "uint16", seed=2)
    master, files = synth.write_eiger_master(tmp_path, frames, 4, compression="lz4")
    vds = synth.write_vds(str(tmp_path / "v.h5"), files)
    return frames, master, files, vds


@pytest.mark.parametrize("which, frames_lost", [(1, (4, 8)), (2, (8, 12))])
@pytest.mark.parametrize("entry", ["master", "vds"])
def test_missing_data_file(damaged, which, frames_lost, entry):
    frames, master, files, vds = damaged
    os.remove(files[which])
    lo, hi = frames_lost
    name = master if entry == "master" else vds
    with pytest.raises(FrameReadError, match=rf"{os.path.basename(files[which])}.*frames "
                                             rf"{lo}\.\.{hi - 1}:.*not found"):
        NexusImageSeries(name)
    ims = NexusImageSeries(name, on_error="fill")
    assert len(ims) == len(frames)
    assert [b[0] for b in ims.bad_frames] == list(range(lo, hi))
    assert all(b[1] == files[which] for b in ims.bad_frames)
    out = run_maps(ims, on_error="fill")
    sums = out["roi_sum"].ravel()
    assert np.isnan(sums[lo:hi]).all()
    good = np.r_[0:lo, hi:len(frames)]
    ref, _, _ = reference(frames.astype(np.float64))
    np.testing.assert_array_equal(sums[good], ref.ravel()[good])


def test_truncated_data_file_named_with_its_frames(damaged):
    frames, master, files, _ = damaged
    with open(files[1], "r+b") as f:
        f.truncate(os.path.getsize(files[1]) // 2)
    with pytest.raises(FrameReadError, match=r"scan_data_000002\.h5.*frames 4\.\.7: not a "
                                             r"readable HDF5 file.*truncated"):
        NexusImageSeries(master)
    ims = NexusImageSeries(master, on_error="fill")
    assert [b[0] for b in ims.bad_frames] == [4, 5, 6, 7]


def test_unwritten_chunks_in_a_data_file(tmp_path):
    """The detector stopped: the last data file's dataset has frames never written."""
    frames = synth.detector_frames(10, SHAPE, "uint32", seed=4)
    master, files = synth.write_eiger_master(tmp_path, frames[:8], 4)
    with h5py.File(files[1], "a") as f:
        del f["/entry/data/data"]
        new = f.create_dataset("/entry/data/data", shape=(6,) + SHAPE, dtype="uint32",
                               chunks=(1,) + SHAPE, **synth.hdf5_compression("bslz4"))
        new[:4] = frames[4:8]
    with pytest.raises(FrameReadError, match=r"scan_data_000002\.h5.*frames 8\.\.9: .*never"):
        NexusImageSeries(master)
    ims = NexusImageSeries(master, on_error="fill")
    block = ims.read_block(0, 10)
    assert np.isnan(block[8:]).all() and [b[0] for b in ims.bad_frames] == [8, 9]
    np.testing.assert_array_equal(block[:8], frames[:8])


def test_missing_paths_name_file_and_path(scan, tmp_path):
    with pytest.raises(InputError, match=r"scan_master\.h5.*no dataset or group '/nope'"):
        NexusImageSeries(scan["master"] + ":/nope")
    with pytest.raises(FrameReadError, match=r"absent\.h5.*file not found"):
        NexusImageSeries(str(tmp_path / "absent.h5"))
    with pytest.raises(FrameReadError, match=r"no file matches"):
        NexusImageSeries(str(tmp_path / "none_*.h5"))
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f["a"] = np.zeros((3, 4, 4))
        f["b"] = np.zeros((3, 4, 4))
    with pytest.raises(InputError, match=r"several 3-D datasets \(/a, /b\)"):
        NexusImageSeries(str(empty))


def test_files_of_different_frame_shapes_refused(scan, tmp_path):
    other = synth.write_hdf5_frames(str(tmp_path / "other.h5"), "/entry/data/data",
                                    synth.detector_frames(2, (8, 8), "uint32"), "bslz4")
    with pytest.raises(InputError, match=r"other\.h5.*\(8, 8\) uint32 frames"):
        NexusImageSeries([scan["data_files"][0], other])


# -- detector mask, mask images, info -------------------------------------------------------
def test_read_mask_image(scan, tmp_path):
    path = "/entry/instrument/detector/detectorSpecific/pixel_mask"
    np.testing.assert_array_equal(h5info.read_mask_image(f"{scan['master']}:{path}"),
                                  scan["mask"])
    np.testing.assert_array_equal(h5info.read_mask_image(scan["master"]), scan["mask"])
    with pytest.raises(InputError, match=r"argument 'mask'.*scan_master\.h5.*'/entry/nope'"):
        h5info.read_mask_image(f"{scan['master']}:/entry/nope", argument="mask")
    with pytest.raises(InputError, match=r"lima_0000\.h5.*no detector pixel mask"):
        h5info.read_mask_image(scan["lima"], argument="mask")
    with pytest.raises(InputError, match=r"is not one 2-D image"):
        h5info.read_mask_image(f"{scan['data_files'][0]}:/entry/data/data")


def test_mask_of_the_wrong_shape_refused(tmp_path):
    frames = synth.detector_frames(2, (8, 8), "uint32")
    master, _ = synth.write_eiger_master(tmp_path, frames, 2,
                                         pixel_mask=np.zeros((8, 9), np.uint32))
    with pytest.raises(InputError, match=r"scan_master\.h5.*pixel_mask' is \(8, 9\)"):
        NexusImageSeries(master)


def test_describe_hdf5(scan):
    info = h5info.describe_hdf5(scan["master"])
    assert info["path"] == "/entry/data" and info["frames"] == 12
    assert [d["frames"] for d in info["datasets"]] == [5, 5, 2]
    assert all(d["filters"] == ["bitshuffle+lz4"] and d["chunks"] == (1,) + SHAPE
               and d["decode"] == "parallel" for d in info["datasets"])
    mask = info["detector_mask"]
    assert mask["excluded"] == 6 and mask["bits"] == {0: 4, 1: 1, 4: 1}
    text = "\n".join(h5info.format_description(info))
    assert "scan_data_000002.h5:/entry/data/data: 5 frames" in text
    assert "6 pixels excluded" in text
    lima = h5info.describe_hdf5(scan["lima"])
    assert lima["datasets"][0]["filters"] == ["shuffle", "deflate(4)"]
    assert lima["detector_mask"] is None


def test_describe_lists_missing_files(damaged):
    frames, master, files, _ = damaged
    os.remove(files[0])
    info = h5info.describe_hdf5(master)
    assert info["datasets"][0]["error"] == "data file not found"
    assert info["missing"] == [f"frames 0..3: data file not found ({files[0]})"]
    assert glob.glob(os.path.join(os.path.dirname(master), "*.h5"))
