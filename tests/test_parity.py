"""One scan through the three faces — the CLI, a YAML job spec and ``Mapper`` — with every
option they share: identical arrays and job attributes.

The scan (4 x 5 points of 32 x 40 uint16 EDF frames) has one truncated frame and runs under
``on_error: fill``; corrections are a mask, a dark, a flat, a background (mean, median and
a percentile of background frames) and a per-frame norm; maps are the composite (ROI,
binning), the ROI sum and two rings; statistics are max and the median (finite under fill:
the unreadable frame is skipped).
"""
from __future__ import annotations

import numpy as np
import pytest
import zarr

from xrsmap_dask import cli, synth
from xrsmap_dask.cluster import execution
from xrsmap_dask.jobs import load_job, run_survey
from xrsmap_dask.layout import decode_attrs
from xrsmap_dask.mapper import Mapper
from xrsmap_dask.maps import Ring

NPT_Y, NPT_X, SHAPE = 4, 5, (32, 40)
ROI, BINNING = (4, 0, 35, 31), 4          # xrsmap (x0, y0, x1, y1), inclusive: 32 x 32
RINGS = [(14.0, 3.0), (9.0, 3.0)]         # (radius, width) around the synthetic centre
BAD = 7                                   # the truncated frame
#: attributes that name the run rather than the job
RUN_ATTRS = {"date", "scan_name", "job_digest", "xrsmap_dask_version", "first_file",
             "last_file"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("parity")
    s = synth.make_scan(d, NPT_Y, NPT_X, SHAPE, n_background=4, seed=5)
    with open(s.files[BAD], "rb") as f:
        good = f.read()
    with open(s.files[BAD], "wb") as f:
        f.write(good[:-200])                       # truncated: unreadable, listed under fill
    rng = np.random.default_rng(1)
    dark = (2 + rng.integers(0, 3, SHAPE)).astype(np.uint16)
    flat = (0.9 + 0.2 * rng.random(SHAPE)).astype(np.float32)
    synth.write_edf(str(d / "dark.edf"), dark)
    synth.write_edf(str(d / "flat.edf"), flat)
    norm = np.linspace(1.0, 2.0, NPT_Y * NPT_X)
    np.save(d / "norm.npy", norm)
    return {"dir": d, "scan": s, "dark": str(d / "dark.edf"), "flat": str(d / "flat.edf"),
            "norm": str(d / "norm.npy"), "norm_values": norm}


BACKGROUNDS = {"mean": ([], "mean"), "median": (["--background-method", "median"], "median"),
               "pct": (["--background-method", "percentile", "--background-pct", "25"],
                       ("percentile", 25))}


def _yaml_background(kind: str) -> str:
    return {"mean": "", "median": ", background_method: median",
            "pct": ", background_method: percentile, background_pct: 25"}[kind]


def _cli(data, out, kind, mode):
    s = data["scan"]
    common = ["--npt-y", str(NPT_Y), "--npt-x", str(NPT_X), "--on-error", "fill",
              "--mask", s.mask_file, "--dark", data["dark"], "--flat", data["flat"],
              "--norm", data["norm"], "--background", *s.background_files,
              *BACKGROUNDS[kind][0], "-o", str(out), "-q"]
    cy, cx = s.centre
    if mode == "composite":
        argv = ["composite", *s.files, *common, "--roi", *map(str, ROI), "--binning",
                str(BINNING)]
    else:
        argv = ["annulus", *s.files, *common, "--cen-y", str(cy), "--cen-x", str(cx),
                "--radius", *(str(r) for r, _ in RINGS), "--width", str(RINGS[0][1])]
    assert cli.main(argv) == 0
    return zarr.open_group(str(out), mode="r")


def _job(data, tmp, kind):
    s = data["scan"]
    cy, cx = s.centre
    files = "\n".join(f"      - {f}" for f in s.files)
    bkg = ", ".join(s.background_files)
    spec = tmp / f"job_{kind}.yaml"
    spec.write_text(f"""\
output: {tmp / f'survey_{kind}.zarr'}
scans:
  - name: s
    inputs:
{files}
    mesh: [{NPT_Y}, {NPT_X}]
    roi: {list(ROI)}
    binning: {BINNING}
    rings: [{{cen_y: {cy}, cen_x: {cx}, radii: {[r for r, _ in RINGS]}, width: {RINGS[0][1]}}}]
    stats: [max, median]
    on_error: fill
    corrections: {{mask: {s.mask_file}, dark: {data['dark']}, flat: {data['flat']},
                   norm: {data['norm']}, background: [{bkg}]{_yaml_background(kind)}}}
""")
    with execution(quiet=True) as ex:
        (result,) = run_survey(load_job(spec), ex)
    assert result.status == "done", result.message
    return zarr.open_group(str(tmp / f"survey_{kind}.zarr" / "s"), mode="r")


def _mapper(data, tmp, kind):
    s = data["scan"]
    cy, cx = s.centre
    m = Mapper(NPT_X, NPT_Y, mask=s.mask_file, dark=data["dark"], flat=data["flat"],
               back_files=s.background_files, background=BACKGROUNDS[kind][1],
               norm=data["norm_values"], on_error="fill")
    out = tmp / f"mapper_{kind}.zarr"
    rings = [Ring(cy, cx, r, w) for r, w in RINGS]
    m.maps(s.files, roi=ROI, binning=BINNING, rings=rings, output=str(out))
    return zarr.open_group(str(out), mode="r")


def _job_attrs(group) -> dict:
    return {k: v for k, v in group.attrs.items() if k not in RUN_ATTRS}


@pytest.mark.parametrize("kind", ["mean", "median", "pct"])
def test_cli_job_mapper_identical(data, tmp_path, kind):
    comp = _cli(data, tmp_path / "cli_comp.zarr", kind, "composite")
    ann = _cli(data, tmp_path / "cli_ann.zarr", kind, "annulus")
    job = _job(data, tmp_path, kind)
    mapper = _mapper(data, tmp_path, kind)
    for name, cli_group in (("composite", comp), ("roi_sum", comp), ("annulus_sum", ann)):
        want = cli_group[name][...]
        np.testing.assert_array_equal(job[name][...], want, err_msg=f"job {name}")
        np.testing.assert_array_equal(mapper[name][...], want, err_msg=f"Mapper {name}")
    # the truncated frame is NaN in the sums (listed), every other point is finite
    sums = comp["roi_sum"][...]
    assert np.isnan(sums.ravel()[BAD]) and np.isfinite(np.delete(sums.ravel(), BAD)).all()
    for group in (comp, ann, job, mapper):
        assert [b[0] for b in decode_attrs(group.attrs)["bad_frames"]] == [BAD]
    # same job description (attrs) from the job spec and Mapper (same maps asked for)
    assert _job_attrs(job) == _job_attrs(mapper)
    for key in ("roi", "binning", "scan", "corrections", "on_error", "nframes"):
        assert comp.attrs[key] == job.attrs[key], key


def test_stats_cli_and_job_identical_and_finite_under_fill(data, tmp_path):
    s = data["scan"]
    out = tmp_path / "stats.zarr"
    assert cli.main(["stats", *s.files, "--stat", "max", "median", "--on-error", "fill",
                     "--mask", s.mask_file, "-o", str(out), "-q"]) == 0
    job = _job(data, tmp_path, "mean")      # its corrections' mask applies to its stats
    stats_cli = zarr.open_group(str(out), mode="r")
    stats_job = job["stats"]
    import fabio

    masked = fabio.open(s.mask_file).data != 0
    assert masked.any()
    for label in ("max", "median"):
        got = stats_job[label][...]
        np.testing.assert_array_equal(got, stats_cli[label][...], err_msg=label)
        assert np.isnan(got[masked]).all(), f"{label} not NaN at masked pixels"
        assert np.isfinite(got[~masked]).all(), f"{label} has NaN under fill"
    # the median equals numpy's over the readable frames, masked pixels NaN
    frames = np.stack([fabio.open(f).data for i, f in enumerate(s.files) if i != BAD])
    ref = np.median(frames, axis=0)
    ref[masked] = np.nan
    np.testing.assert_array_equal(stats_job["median"][...], ref)
