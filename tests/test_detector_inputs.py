"""Beamline HDF5 inputs through every face: an Eiger master (3 external-link data files,
bitshuffle-LZ4) opens by its master path alone and by dataset path, from the CLI, a job spec
and ``Mapper``; its pixel_mask is applied by default (``--no-detector-mask`` turns it off);
``--mask file.h5:/path`` reads a mask from HDF5; stats take the masks (NaN there); ``info``
shows datasets, chunks and filters.  References are plain numpy on h5py reads."""
from __future__ import annotations

import json

import h5py
import hdf5plugin  # noqa: F401 - the reference reads need the filter
import numpy as np
import pytest
import zarr

from xrsmap_dask import Mapper, cli, synth

NPT_Y, NPT_X, SHAPE = 3, 4, (24, 20)
ROI = (2, 4, 17, 19)   # xrsmap inclusive: rows 4..19, cols 2..17 (16 x 16)


@pytest.fixture(scope="module")
def eiger(tmp_path_factory):
    d = tmp_path_factory.mktemp("eiger")
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 5000, (NPT_Y * NPT_X,) + SHAPE).astype(np.uint32)
    pixel_mask = np.zeros(SHAPE, np.uint32)
    pixel_mask[5, 3:9] = 1
    pixel_mask[10:12, 10] = 4
    master, data_files = synth.write_eiger_master(d, frames, 5, pixel_mask=pixel_mask)
    user = np.zeros(SHAPE, np.uint8)
    user[15:17, 4:6] = 1
    with h5py.File(d / "masks.h5", "w") as f:
        f["/user/mask"] = user
    return {"dir": d, "master": master, "frames": frames, "pixel_mask": pixel_mask != 0,
            "user": user != 0, "mask_h5": f"{d / 'masks.h5'}:/user/mask"}


def reference(frames, excluded):
    x = frames.astype(np.float64)
    x[:, excluded] = 0
    roi = x[:, 4:20, 2:18]
    return roi.sum((1, 2)).reshape(NPT_Y, NPT_X), \
        roi.reshape(-1, 4, 4, 4, 4).sum((2, 4)).reshape(NPT_Y, NPT_X, 4, 4)


@pytest.mark.parametrize("source", ["master", "dataset"])
def test_cli_maps_master_with_its_pixel_mask(eiger, tmp_path, source):
    inp = eiger["master"] if source == "master" else f"{eiger['master']}:/entry/data"
    out = tmp_path / "maps.zarr"
    assert cli.main(["composite", inp, "--npt-y", str(NPT_Y), "--npt-x", str(NPT_X),
                     "--roi", *map(str, ROI), "--binning", "4", "-o", str(out), "-q"]) == 0
    g = zarr.open_group(str(out), mode="r")
    sums, comp = reference(eiger["frames"], eiger["pixel_mask"])
    np.testing.assert_array_equal(g["roi_sum"][...], sums)
    np.testing.assert_allclose(g["composite"][...], comp, rtol=1e-6)


def test_no_detector_mask_and_hdf5_user_mask(eiger, tmp_path):
    out = tmp_path / "nomask.zarr"
    assert cli.main(["composite", eiger["master"], "--npt-y", str(NPT_Y), "--npt-x",
                     str(NPT_X), "--roi", *map(str, ROI), "--binning", "4",
                     "--no-detector-mask", "-o", str(out), "-q"]) == 0
    sums, _ = reference(eiger["frames"], np.zeros(SHAPE, bool))
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["roi_sum"][...], sums)
    out = tmp_path / "both.zarr"
    assert cli.main(["composite", eiger["master"], "--npt-y", str(NPT_Y), "--npt-x",
                     str(NPT_X), "--roi", *map(str, ROI), "--mask", eiger["mask_h5"],
                     "-o", str(out), "-q"]) == 0
    sums, _ = reference(eiger["frames"], eiger["pixel_mask"] | eiger["user"])
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["roi_sum"][...], sums)


def test_mapper_and_job_spec_on_the_master(eiger, tmp_path):
    sums, comp = reference(eiger["frames"], eiger["pixel_mask"])
    m = Mapper(NPT_X, NPT_Y)
    for inp in (eiger["master"], f"{eiger['master']}:/entry/data"):
        got_comp, got_sums = m.composite_map(inp, roi=ROI, binning=4)
        np.testing.assert_array_equal(got_sums, sums)
    spec = tmp_path / "job.yaml"
    spec.write_text(f"output: {tmp_path / 's.zarr'}\nscans:\n  - name: e\n    inputs: "
                    f"{eiger['master']}\n    mesh: [{NPT_Y}, {NPT_X}]\n    roi: {list(ROI)}\n"
                    f"    binning: 4\n")
    assert cli.main(["run", str(spec), "-q"]) == 0
    g = zarr.open_group(str(tmp_path / "s.zarr" / "e"), mode="r")
    np.testing.assert_array_equal(g["roi_sum"][...], sums)


def test_stats_mask_gives_nan(eiger, tmp_path):
    out = tmp_path / "stats.zarr"
    assert cli.main(["stats", eiger["master"], "--stat", "max", "median", "--mask",
                     eiger["mask_h5"], "-o", str(out), "-q"]) == 0
    g = zarr.open_group(str(out), mode="r")
    excluded = eiger["pixel_mask"] | eiger["user"]
    for label, ref in (("max", eiger["frames"].max(0)),
                       ("median", np.median(eiger["frames"], 0))):
        got = g[label][...]
        assert np.isnan(got[excluded]).all()
        np.testing.assert_array_equal(got[~excluded], ref[~excluded])


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
def test_job_spec_stats_take_the_detector_mask(eiger, tmp_path):
    """A job spec's statistics exclude the master's pixel_mask (and ``mask:``) as the CLI
    ``stats`` does; ``detector_mask: false`` keeps the pixel_mask's pixels."""
    spec = tmp_path / "job.yaml"
    spec.write_text(f"output: {tmp_path / 's.zarr'}\nscans:\n"
                    f"  - {{name: d, inputs: '{eiger['master']}', mesh: [{NPT_Y}, {NPT_X}], "
                    "composite: false, roi_sum: false, stats: [median, max]}\n"
                    f"  - {{name: u, inputs: '{eiger['master']}', mesh: [{NPT_Y}, {NPT_X}], "
                    "composite: false, roi_sum: false, stats: [median, max], "
                    f"corrections: {{mask: '{eiger['mask_h5']}', detector_mask: false}}}}\n")
    assert cli.main(["run", str(spec), "-q"]) == 0
    cli_out = tmp_path / "cli.zarr"
    assert cli.main(["stats", eiger["master"], "--stat", "median", "max", "-o",
                     str(cli_out), "-q"]) == 0
    for name, excluded in (("d", eiger["pixel_mask"]), ("u", eiger["user"])):
        g = zarr.open_group(str(tmp_path / "s.zarr" / name / "stats"), mode="r")
        x = eiger["frames"].astype(np.float64)
        x[:, excluded] = np.nan
        np.testing.assert_array_equal(g["median"][...], np.nanmedian(x, 0))
        np.testing.assert_array_equal(g["max"][...], np.nanmax(x, 0))
        if name == "d":
            ref = zarr.open_group(str(cli_out), mode="r")
            for label in ("median", "max"):
                np.testing.assert_array_equal(g[label][...], ref[label][...])


def test_info_shows_datasets_filters_and_mask(eiger, capsys):
    assert cli.main(["info", eiger["master"], "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["frames"] == NPT_Y * NPT_X and d["kind"] == "nexus"
    h5 = d["hdf5"]
    assert len(h5["datasets"]) == 3 and all(x["chunks"][0] == 1 for x in h5["datasets"])
    assert any("bitshuffle" in f.lower() or "32008" in f for f in h5["datasets"][0]["filters"])
    assert h5["detector_mask"]["excluded"] == int(eiger["pixel_mask"].sum())
    assert cli.main(["info", eiger["master"]]) == 0
    text = capsys.readouterr().out
    assert "detector mask" in text and "filters" in text


def _digests(directory) -> dict:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


def test_outputs_never_overwrite_the_linked_data_files(eiger, tmp_path, capsys):
    """The data files behind the master's external links are inputs too: a NeXus map
    output, a convert output or a zarr output there is refused (exit 2) before anything is
    computed, and every file of the scan is unchanged; so is a user's file that is not an
    xrsmap-dask NeXus file, unless --overwrite."""
    before = _digests(eiger["dir"])
    data = sorted(p for p in eiger["dir"].iterdir() if "data" in p.name)
    assert len(data) == 3
    maps = ["composite", eiger["master"], "--npt-y", str(NPT_Y), "--npt-x", str(NPT_X), "-q"]
    for argv in (maps + ["-o", str(data[1])], maps + ["-o", str(data[0]), "--overwrite"],
                 ["convert", eiger["master"], "-o", str(data[2]), "--format", "hdf5",
                  "--path", "/x", "--overwrite", "-q"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "input" in err and str(data[0].parent) in err, err
    assert _digests(eiger["dir"]) == before
    assert not [p for p in eiger["dir"].iterdir() if "xrsmap-old" in p.name]
    notes = tmp_path / "notes.h5"
    notes.write_text("precious")
    assert cli.main(maps + ["-o", str(notes)]) == 2
    assert "not a NeXus file written by xrsmap-dask" in capsys.readouterr().err
    assert notes.read_text() == "precious"
    assert cli.main(maps + ["-o", str(notes), "--overwrite"]) == 0
    with h5py.File(notes, "r") as f:
        assert f.attrs["creator"].startswith("xrsmap-dask")
    assert cli.main(maps + ["-o", str(notes)]) == 0       # ours now: rewritten when recomputed
    capsys.readouterr()


def test_preview_never_replaces_what_is_not_a_png(eiger, tmp_path, capsys):
    out = tmp_path / "m.zarr"
    maps = ["composite", eiger["master"], "--npt-y", str(NPT_Y), "--npt-x", str(NPT_X), "-q"]
    assert cli.main(maps + ["-o", str(out)]) == 0
    frame = tmp_path / "frame.edf"
    frame.write_bytes(b"{\nDim_1 = 1 ;\n}\n\0\0")
    before = frame.read_bytes()
    assert cli.main(["preview", str(out), "-o", str(frame)]) == 2
    assert cli.main(maps + ["-o", str(out), "--preview", str(frame)]) == 2
    assert "not a PNG image" in capsys.readouterr().err
    assert frame.read_bytes() == before
    png = tmp_path / "p.png"
    for _ in range(2):                                    # a previous preview is replaced
        assert cli.main(["preview", str(out), "-o", str(png), "-q"]) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if ".part-" in p.name]
