"""The invalid-pixel rule on real detector-like files, through every face.

Eiger-like uint32 frames (HDF5, bitshuffle-LZ4, written with h5py + hdf5plugin) with gap
rows and a gap column at 2**32 - 1 and one more all-ones pixel that moves from frame to
frame; Pilatus-like int32 CBF files (fabio's ``cbfimage``) with -1 module gaps and -2 bad
pixels; uint16 EDF frames with saturated 65535 pixels.  References are plain numpy on the
frames as read by h5py / fabio: excluded pixels add nothing, binned pixels whose every pixel
is excluded show ``dummy``; ``none`` gives the plain sums back.
"""
from __future__ import annotations

import json
import warnings

import fabio
import fabio.cbfimage
import h5py
import hdf5plugin  # noqa: F401 - the reference reads need the filter
import numpy as np
import pytest
import zarr

from xrsmap_dask import Mapper, cli, imageseries, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.invalid import (invalid_pixels, nan_invalid, parse_invalid,
                                 resolve_invalid)
from xrsmap_dask.maps import Corrections, MapSpec, Ring, build_maps
from xrsmap_dask.scan import ScanGeometry
from xrsmap_dask.store import read_attrs

NPT_Y, NPT_X, SHAPE = 3, 4, (24, 20)
N = NPT_Y * NPT_X
ROI = (2, 4, 17, 19)                     # xrsmap inclusive: rows 4..19, cols 2..17
ROWS, COLS = slice(4, 20), slice(2, 18)
B = 2                                    # binning: gap rows 8, 9 fill binned row 2
RING = Ring(11.5, 9.5, 6.0, 3.0)
ALL32 = 2**32 - 1
MESH = ["--npt-y", str(NPT_Y), "--npt-x", str(NPT_X)]


# -- data ------------------------------------------------------------------------------------
def eiger_frames() -> np.ndarray:
    frames = synth.detector_frames(N, SHAPE, "uint32", seed=7)
    frames[:, 8:10, :] = ALL32           # a horizontal module gap (a whole binned row)
    frames[:, :, 13] = ALL32             # a vertical gap
    for i in range(N):                   # a pixel that is reserved in one frame only
        frames[i, 5, 3 + i] = ALL32
    return frames


@pytest.fixture(scope="module")
def eiger(tmp_path_factory):
    d = tmp_path_factory.mktemp("eiger")
    frames = eiger_frames()
    path = synth.write_hdf5_frames(d / "scan.h5", "/entry/data/data", frames, "bslz4")
    with h5py.File(path, "r") as f:      # the reference reads what h5py reads
        frames = f["/entry/data/data"][...]
    return {"dir": d, "input": f"{path}:/entry/data/data", "frames": frames,
            "excluded": frames == ALL32}


def write_frames(d, name: str, suffix: str, write, frame_of):
    """``frame_of(i)`` written by ``write(path, img)`` as ``d/name_{i}.suffix``; (files,
    frames as fabio reads them)."""
    files = []
    for i in range(N):
        files.append(str(d / f"{name}_{i:05d}.{suffix}"))
        write(files[-1], frame_of(i))
    return files, np.stack([fabio.open(f).data for f in files])


@pytest.fixture(scope="module")
def pilatus(tmp_path_factory):
    d = tmp_path_factory.mktemp("pilatus")
    rng = np.random.default_rng(11)

    def frame(i):
        img = rng.poisson(30, SHAPE).astype(np.int32)
        img[16:19, :] = -1               # module gap
        img[:, 6] = -1
        img[3, 4] = img[12, 15] = -2     # bad pixels
        return img

    files, frames = write_frames(d, "frame", "cbf",
                                 lambda path, img: fabio.cbfimage.CbfImage(data=img).write(path),
                                 frame)
    assert frames.dtype == np.int32
    return {"dir": d, "files": files, "input": str(d / "frame_*.cbf"), "frames": frames,
            "excluded": frames < 0}


@pytest.fixture(scope="module")
def saturated(tmp_path_factory):
    d = tmp_path_factory.mktemp("sat16")
    rng = np.random.default_rng(5)

    def frame(i):
        img = rng.integers(0, 4000, SHAPE).astype(np.uint16)
        img[10, 4 + i] = 65535           # a saturated pixel
        return img

    _, frames = write_frames(d, "sat", "edf", synth.write_edf, frame)
    return {"input": str(d / "sat_*.edf"), "frames": frames, "excluded": frames == 65535}


# -- references ------------------------------------------------------------------------------
def ring_pixels():
    yy, xx = np.indices(SHAPE, dtype=np.float64)
    d = np.hypot(yy - RING.cen_y, xx - RING.cen_x)
    return (d >= RING.inner) & (d <= RING.outer)


def reference(frames, excluded, dummy=0.0):
    """(roi_sum, composite, ring sum), maps shaped; ``excluded`` (frames, rows, cols)."""
    x = frames.astype(np.float64)
    x[excluded] = 0
    roi = x[:, ROWS, COLS]
    n, h, w = roi.shape
    comp = roi.reshape(n, h // B, B, w // B, B).sum(axis=(2, 4))
    dead = excluded[:, ROWS, COLS].reshape(n, h // B, B, w // B, B).all(axis=(2, 4))
    comp[dead] = dummy
    ring = x[:, ring_pixels()].sum(axis=1)
    return (roi.sum(axis=(1, 2)).reshape(NPT_Y, NPT_X),
            comp.reshape(NPT_Y, NPT_X, h // B, w // B), ring.reshape(NPT_Y, NPT_X))


def box_counts(excluded, rows=ROWS, cols=COLS):
    """Excluded pixels per frame in the read box ``rows x cols``."""
    return excluded[:, rows, cols].reshape(len(excluded), -1).sum(axis=1)


def check_maps(got: dict, frames, excluded, dummy=0.0):
    sums, comp, ring = reference(frames, excluded, dummy)
    np.testing.assert_array_equal(got["roi_sum"], sums)
    np.testing.assert_allclose(got["composite"], comp, rtol=1e-6)
    if "annulus_sum" in got:
        np.testing.assert_array_equal(got["annulus_sum"][0], ring)


def zarr_maps(path) -> tuple[dict, dict]:
    g = zarr.open_group(str(path), mode="r")
    attrs = read_attrs(str(path))                 # structured attrs are JSON strings
    assert attrs["complete"] is True
    return {k: g[k][...] for k in ("roi_sum", "composite", "annulus_sum", "invalid_pixels")
            if k in g}, attrs


# -- the rule --------------------------------------------------------------------------------
def test_rule_resolution_by_dtype():
    r = resolve_invalid("auto", "uint32")
    assert (r.values, r.negative) == ((ALL32,), False)
    assert r.description == "auto: uint32 all-ones (4294967295)"
    assert resolve_invalid("auto", "uint16").values == (65535,)
    assert resolve_invalid("auto", ">u2").values == (65535,)       # byte order is no matter
    signed = resolve_invalid("auto", "int32")
    assert signed.negative and not signed.values
    assert not resolve_invalid("auto", "float32").active
    assert not resolve_invalid("none", "uint32").active
    explicit = resolve_invalid([-1, -2, 65535, 1.5], "uint16")
    assert explicit.values == (65535,)                              # what uint16 can hold
    assert "-1, -2, 1.5 cannot occur" in explicit.description
    assert resolve_invalid(-2, "int32").values == (-2,)
    assert parse_invalid(np.array([3, 3, 4.0])) == (3, 4)


@pytest.mark.parametrize("bad", ["all", [], [True], [float("nan")], ["x"], None, 10**400])
def test_bad_settings_refused(bad):
    with pytest.raises(InputError) as exc:
        parse_invalid(bad)
    assert exc.value.argument == "invalid"


def test_same_error_on_every_face(eiger, tmp_path, capsys):
    assert cli.main(["composite", eiger["input"], *MESH, "-o", str(tmp_path / "x.zarr"),
                     "--invalid", "sometimes", "-q"]) == 2
    assert "--invalid" in capsys.readouterr().err
    with pytest.raises(InputError, match="invalid.*must be auto, none or numbers"):
        Mapper(NPT_X, NPT_Y, invalid="sometimes")
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"output: {tmp_path / 'o.zarr'}\nscans:\n  - name: a\n"
                    f"    inputs: '{eiger['input']}'\n    mesh: [{NPT_Y}, {NPT_X}]\n"
                    "    invalid: sometimes\n")
    assert cli.main(["run", str(spec), "--check"]) == 2
    err = capsys.readouterr().err
    assert "invalid" in err and "must be auto, none or numbers" in err


def test_comparison_is_exact_in_the_fill_dtype():
    """uint32 all-ones is exact in float64 (the fill dtype of 32-bit data), not float32:
    a float64 block matches 2**32 - 1 only; a float32 one cannot tell it from 2**32 - 2,
    so the rule refuses to compare there."""
    block = np.array([[[ALL32, ALL32 - 1, 7]]], np.uint32)
    rule = resolve_invalid("auto", "uint32", "float64")
    assert invalid_pixels(block, rule).tolist() == [[[True, False, False]]]
    assert invalid_pixels(block.astype(np.float64), rule).tolist() == [[[True, False, False]]]
    assert np.float32(ALL32) == np.float32(ALL32 - 1)        # why float32 is refused
    assert not resolve_invalid("auto", "uint32", "float32").active
    nan = nan_invalid(block, rule)
    assert nan.dtype == np.float64 and np.isnan(nan[0, 0, 0]) and nan[0, 0, 1] == ALL32 - 1
    # a block without excluded values costs nothing and is handed back as it is
    assert invalid_pixels(np.zeros((2, 3, 3), np.uint32), rule) is None
    clean = np.ones((1, 2, 2), np.int32)
    assert nan_invalid(clean, resolve_invalid("auto", "int32")) is clean


# -- Eiger-like uint32 HDF5 ------------------------------------------------------------------
def test_eiger_cli_excludes_all_ones_and_records_counts(eiger, tmp_path):
    out = tmp_path / "maps.zarr"
    assert cli.main(["composite", eiger["input"], *MESH, "--roi", *map(str, ROI),
                     "--binning", str(B), "--dummy", "-5", "-o", str(out), "-q"]) == 0
    got, attrs = zarr_maps(out)
    check_maps(got, eiger["frames"], eiger["excluded"], dummy=-5)
    assert (got["composite"][:, :, 2, :] == -5).all()          # the gap rows' binned row
    counts = box_counts(eiger["excluded"])
    np.testing.assert_array_equal(got["invalid_pixels"].ravel(), counts)
    inv = attrs["invalid"]
    assert inv["rule"] == "auto: uint32 all-ones (4294967295)"
    assert inv["excluded_values"] == [ALL32]
    assert inv["excluded_pixel_frames"] == int(counts.sum())
    assert inv["frames_with_excluded"] == N
    assert inv["excluded_per_frame"] == [int(counts.min()), int(counts.max())]
    distinct = int(eiger["excluded"][:, ROWS, COLS].any(axis=0).sum())
    if inv["excluded_positions"] is None:        # units saw different moving pixels
        lo, hi = inv["excluded_positions_range"]
        assert lo <= distinct <= hi
    else:
        assert inv["excluded_positions"] == distinct
    json.dumps(attrs)                             # plain JSON for xarray / netCDF readers


def test_eiger_invalid_none_gives_the_plain_sums(eiger, tmp_path):
    out = tmp_path / "none.zarr"
    assert cli.main(["composite", eiger["input"], *MESH, "--roi", *map(str, ROI),
                     "--binning", str(B), "-o", str(out), "-q", "--invalid", "none"]) == 0
    got, attrs = zarr_maps(out)
    nothing = np.zeros_like(eiger["excluded"])
    check_maps(got, eiger["frames"], nothing)
    assert got["roi_sum"].max() > ALL32           # the gaps are summed in again
    assert "invalid_pixels" not in got
    assert attrs["invalid"]["rule"] == "none"
    assert attrs["invalid"]["excluded_pixel_frames"] == 0


def test_eiger_job_spec_default_explicit_and_none(eiger, tmp_path):
    spec = tmp_path / "job.yaml"
    common = (f"    inputs: '{eiger['input']}'\n    mesh: [{NPT_Y}, {NPT_X}]\n"
              f"    roi: {list(ROI)}\n    binning: {B}\n"
              f"    rings: [{{cen_y: {RING.cen_y}, cen_x: {RING.cen_x}, radius: {RING.radius},"
              f" width: {RING.width}}}]\n")
    spec.write_text(f"output: {tmp_path / 'survey.zarr'}\nscans:\n"
                    f"  - name: auto\n{common}"
                    f"  - name: explicit\n{common}    invalid: [{ALL32}]\n"
                    f"  - name: plain\n{common}    invalid: none\n")
    assert cli.main(["run", str(spec), "-q"]) == 0
    for name, excluded in (("auto", eiger["excluded"]), ("explicit", eiger["excluded"]),
                           ("plain", np.zeros_like(eiger["excluded"]))):
        got, attrs = zarr_maps(tmp_path / "survey.zarr" / name)
        check_maps(got, eiger["frames"], excluded)
    _, attrs = zarr_maps(tmp_path / "survey.zarr" / "explicit")
    assert attrs["invalid"]["rule"] == f"values {ALL32}"
    # counts are over the read box (the union of the ROI and the ring's bounding box: here
    # the ROI itself)
    assert attrs["invalid"]["excluded_pixel_frames"] == int(box_counts(eiger["excluded"]).sum())


@pytest.mark.parametrize("on_error", ["raise", "fill"])
def test_eiger_mapper(eiger, on_error):
    """Under on_error='fill' uint32 blocks are float64: the comparison stays exact."""
    m = Mapper(NPT_X, NPT_Y, dummy=-1, on_error=on_error)
    comp, sums = m.composite_map(eiger["input"], roi=ROI, binning=B)
    ring = m.circle_map(eiger["input"], RING.cen_x, RING.cen_y, RING.radius, RING.width)
    ref_sums, ref_comp, ref_ring = reference(eiger["frames"], eiger["excluded"], dummy=-1)
    np.testing.assert_array_equal(sums, ref_sums)
    from xrsmap_dask.maps import mosaic

    np.testing.assert_allclose(comp, mosaic(ref_comp), rtol=1e-6)
    np.testing.assert_array_equal(ring, ref_ring)
    assert m.invalid["rule"] == "auto: uint32 all-ones (4294967295)"
    assert m.invalid["frames_with_excluded"] == N


def test_eiger_mapper_none_and_explicit_and_output(eiger, tmp_path):
    plain = Mapper(NPT_X, NPT_Y, invalid="none").maps(eiger["input"], roi=ROI, binning=B,
                                                       rings=[RING])
    check_maps(plain, eiger["frames"], np.zeros_like(eiger["excluded"]))
    m = Mapper(NPT_X, NPT_Y, invalid=[ALL32], output=str(tmp_path / "m.zarr"))
    got = m.maps(eiger["input"], roi=ROI, binning=B, rings=[RING])
    check_maps(got, eiger["frames"], eiger["excluded"])
    assert m.invalid["excluded_pixel_frames"] == \
        int(box_counts(eiger["excluded"]).sum())


def test_eiger_on_a_local_cluster(eiger, cluster_client):
    """The rule travels to worker processes with the kernel parameters."""
    m = Mapper(NPT_X, NPT_Y, client=cluster_client)
    got = m.maps(eiger["input"], roi=ROI, binning=B, rings=[RING])
    check_maps(got, eiger["frames"], eiger["excluded"])
    assert m.invalid["excluded_pixel_frames"] == int(box_counts(eiger["excluded"]).sum())


def test_binning_one_shows_dummy_only_where_and_when_excluded(eiger):
    ims = imageseries.open(None, "array", data=eiger["frames"].copy())
    spec = MapSpec(roi=(ROWS, COLS), binning=1, composite=True, roi_sum=True)
    out = build_maps(ims, spec, ScanGeometry(NPT_Y, NPT_X), Corrections(dummy=-3)).compute()
    comp = out["composite"].reshape(N, 16, 16)
    exc = eiger["excluded"][:, ROWS, COLS]
    np.testing.assert_array_equal(comp[exc], -3)
    np.testing.assert_array_equal(comp[~exc], eiger["frames"][:, ROWS, COLS][~exc])


def test_array_input_not_modified(eiger):
    data = eiger["frames"].copy()
    ims = imageseries.open(None, "array", data=data)
    spec = MapSpec(roi=(ROWS, COLS), binning=B, rings=(RING,))
    for fuse in (True, False):
        build_maps(ims, spec, ScanGeometry(NPT_Y, NPT_X), fuse_reads=fuse).compute()
        np.testing.assert_array_equal(data, eiger["frames"])


# -- Pilatus-like int32 CBF ------------------------------------------------------------------
def test_pilatus_cbf_cli_and_exact_positions(pilatus, tmp_path):
    out = tmp_path / "p.zarr"
    assert cli.main(["composite", pilatus["input"], *MESH, "--roi", *map(str, ROI),
                     "--binning", str(B), "-o", str(out), "-q"]) == 0
    got, attrs = zarr_maps(out)
    check_maps(got, pilatus["frames"], pilatus["excluded"])
    inv = attrs["invalid"]
    assert inv["rule"] == "auto: int32 negative values"
    assert inv["excluded_values"] == "negative"
    exc = pilatus["excluded"][:, ROWS, COLS]
    assert inv["excluded_pixel_frames"] == int(exc.sum())
    assert inv["excluded_positions"] == int(exc.any(axis=0).sum())   # listed: exact
    # the whole frame: more positions than a unit lists, the same in every unit: exact too
    out = tmp_path / "whole.zarr"
    assert cli.main(["composite", pilatus["input"], *MESH, "-o", str(out), "-q",
                     "--frames-per-chunk", "3"]) == 0
    _, attrs = zarr_maps(out)
    static = pilatus["excluded"].any(axis=0).sum()
    assert static > 64 and attrs["invalid"]["excluded_positions"] == static
    assert attrs["invalid"]["excluded_pixel_frames"] == pilatus["excluded"].sum()


def test_pilatus_explicit_value_excludes_only_it(pilatus, tmp_path):
    out = tmp_path / "m2.zarr"
    assert cli.main(["composite", pilatus["input"], *MESH, "--roi", *map(str, ROI),
                     "--binning", str(B), "-o", str(out), "-q", "--invalid", "-2"]) == 0
    got, attrs = zarr_maps(out)
    check_maps(got, pilatus["frames"], pilatus["frames"] == -2)
    assert attrs["invalid"]["excluded_values"] == [-2]
    out = tmp_path / "none.zarr"
    assert cli.main(["annulus", pilatus["input"], *MESH, "--cen-y", str(RING.cen_y),
                     "--cen-x", str(RING.cen_x), "--radius", str(RING.radius), "--width",
                     str(RING.width), "-o", str(out), "-q", "--invalid", "none"]) == 0
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(
        g["annulus_sum"][0], reference(pilatus["frames"], np.zeros_like(pilatus["excluded"]))[2])


def test_pilatus_mapper_with_mask_and_rings(pilatus):
    mask = np.zeros(SHAPE, np.uint8)
    mask[10, 2:6] = 1
    m = Mapper(NPT_X, NPT_Y, mask=mask)
    got = m.maps(pilatus["files"], roi=ROI, binning=B, rings=[RING])
    check_maps(got, pilatus["frames"], pilatus["excluded"] | (mask != 0)[None])


# -- uint16 saturation -----------------------------------------------------------------------
def test_saturated_uint16_excluded_by_default_kept_with_none(saturated, tmp_path):
    for setting, excluded in (([], saturated["excluded"]),
                              (["--invalid", "none"], np.zeros_like(saturated["excluded"]))):
        out = tmp_path / f"s{len(setting)}.zarr"
        assert cli.main(["composite", saturated["input"], *MESH, "--roi", *map(str, ROI),
                         "--binning", str(B), "-o", str(out), "-q", *setting]) == 0
        got, attrs = zarr_maps(out)
        check_maps(got, saturated["frames"], excluded)
    # few moving positions per unit: listed, so the distinct count is exact
    assert attrs["invalid"]["rule"] == "none"
    out = tmp_path / "fine.zarr"
    assert cli.main(["composite", saturated["input"], *MESH, "-o", str(out), "-q",
                     "--frames-per-chunk", "4"]) == 0
    _, attrs = zarr_maps(out)
    assert attrs["invalid"]["excluded_positions"] == \
        int(saturated["excluded"].any(axis=0).sum()) == N
    assert attrs["invalid"]["excluded_pixel_frames"] == N


# -- statistics ------------------------------------------------------------------------------
def nan_reference(frames, excluded):
    x = frames.astype(np.float64)
    x[excluded] = np.nan
    return x


def test_stats_cli_skip_excluded_pixels(pilatus, tmp_path):
    out = tmp_path / "st.zarr"
    assert cli.main(["stats", pilatus["input"], "--stat", "median", "max", "min", "mean",
                     "--percentile", "90", "-o", str(out), "-q"]) == 0
    g = zarr.open_group(str(out), mode="r")
    x = nan_reference(pilatus["frames"], pilatus["excluded"])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        refs = {"median": np.nanmedian(x, axis=0), "max": np.nanmax(x, axis=0),
                "min": np.nanmin(x, axis=0), "mean": np.nanmean(x, axis=0),
                "percentile_90": np.nanpercentile(x, 90, axis=0)}
    for label, ref in refs.items():
        np.testing.assert_allclose(g[label][...], ref, rtol=1e-12, err_msg=label)
        assert np.isnan(g[label][16, 0])              # excluded in every frame
    assert g["max"].dtype == np.float64
    assert read_attrs(str(out))["invalid"]["rule"] == "auto: int32 negative values"
    # none: the plain statistics of the int32 data (the -1 / -2 included)
    out = tmp_path / "plain.edf"
    assert cli.main(["stats", pilatus["input"], "--stat", "min", "-o", str(out), "-q",
                     "--invalid", "none"]) == 0
    np.testing.assert_array_equal(fabio.open(str(out)).data, pilatus["frames"].min(axis=0))


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # gap pixels, threads
def test_job_spec_stats_and_fill(eiger, tmp_path):
    """Job-spec statistics (written tile by tile) skip the excluded pixels; under
    on_error='fill' a frame whose tile lies wholly in a gap is not taken for unreadable."""
    spec = tmp_path / "st.yaml"
    spec.write_text(f"output: {tmp_path / 'o.zarr'}\nscans:\n  - name: s\n"
                    f"    inputs: '{eiger['input']}'\n    mesh: [{NPT_Y}, {NPT_X}]\n"
                    "    composite: false\n    roi_sum: false\n    on_error: fill\n"
                    "    stats: [median, max]\n")
    assert cli.main(["run", str(spec), "-q"]) == 0
    g = zarr.open_group(str(tmp_path / "o.zarr" / "s"), mode="r")
    x = nan_reference(eiger["frames"], eiger["excluded"])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        np.testing.assert_array_equal(g["stats/median"][...], np.nanmedian(x, axis=0))
        np.testing.assert_array_equal(g["stats/max"][...], np.nanmax(x, axis=0))
    scan, stats = (read_attrs(str(tmp_path / "o.zarr" / "s" / p)) for p in ("", "stats"))
    assert scan["bad_frames"] == [] and stats["bad_frames"] == []
    assert stats["invalid"]["rule"] == "auto: uint32 all-ones (4294967295)"

    from xrsmap_dask._graph import compute_request
    from xrsmap_dask._stats_output import stats_output
    from xrsmap_dask.inputs import open_series

    ims = open_series(eiger["input"], on_error="fill")
    rule = resolve_invalid("auto", ims.dtype, ims.block_dtype())
    res = compute_request(stats_output(ims, ["max"], tile_shape=(2, SHAPE[1]),
                                       invalid=rule))
    assert not res["frame_unreadable"].any()        # tile 4 is rows 8-9: all gap
    assert np.isnan(res["max"][8:10]).all()


def test_lazy_statistics_take_the_rule(pilatus):
    """The library's lazy statistics (``stats.median(..., invalid=rule)`` and friends) on the
    series and on a dask array: NaN-skipping statistics of the valid values."""
    from xrsmap_dask import stats
    from xrsmap_dask.inputs import open_series

    ims = open_series(pilatus["files"])
    rule = resolve_invalid("auto", ims.dtype)
    x = nan_reference(pilatus["frames"], pilatus["excluded"])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        refs = {"median": np.nanmedian(x, axis=0), "max": np.nanmax(x, axis=0),
                "mean": np.nanmean(x, axis=0), "percentile_25": np.nanpercentile(x, 25, 0)}
    for data in (ims, ims.to_dask(frames_per_chunk=5)):
        lazy = stats.lazy_stats(data, ["median", "max", "mean"], [25], invalid=rule,
                                memory_budget=2**20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN pixels (gaps)
            got = {k: v.compute(scheduler="sync") for k, v in lazy.items()}
        for label, ref in refs.items():
            np.testing.assert_allclose(got[label], ref, rtol=1e-12, err_msg=label)
            assert got[label].dtype == np.float64
