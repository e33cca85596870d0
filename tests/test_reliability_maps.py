"""Bad map arguments (issue 7): ROI, binning, correction shapes, frame counts, rings.

The table exercises the ROI and binning rules (``roi``), ``maps``' graph builders, ``Mapper``,
the CLI map commands and the job spec's ``binning`` key, each fed the same bad values; every
case is refused before one dask task runs.  The harness is in ``_reliability.py``.
"""
from __future__ import annotations

import re
import textwrap

import numpy as np

import _reliability
from _reliability import (NX, NY, SHAPE, CaseTable, bad_input_test, cli_maps, divisors, jobs,
                          mapper_out, p)
from xrsmap_dask import imageseries, maps, stats
from xrsmap_dask.mapper import Mapper
from xrsmap_dask.scan import ScanGeometry

# the harness fixtures these tests take (pytest finds fixtures by name in the module)
env, scan = _reliability.env, _reliability.scan

CASES = CaseTable()
case = CASES.case


# -- ROI outside the frame / empty ---------------------------------------------------------
@case("roi-outside/mapper", output=True)
def _(env):
    # inclusive x1 = 40 is one column past the 40-column frame
    return (lambda: mapper_out(env).composite_map(env.files, roi=(0, 0, 40, 31)),
            r"argument 'roi'.*outside the frame of shape 32 x 40")


@case("roi-negative/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files, roi=(-4, 0, 7, 7)),
            r"argument 'roi'.*outside the frame")


@case("roi-outside/build")
def _(env):
    ims = imageseries.from_files(env.files)
    spec = maps.MapSpec(roi=(slice(0, 33), slice(0, 40)))
    return (lambda: maps.build_maps(ims, spec, ScanGeometry(NY, NX)),
            r"argument 'roi'.*rows 0:33.*32 x 40")


@case("roi-outside/cli", output=True, cli=True)
def _(env):
    return (cli_maps(env, "composite", env.files, "--roi", "0", "30", "39", "40"),
            r"roi.*32 x 40")


@case("roi-outside/stats-median")
def _(env):
    ims = imageseries.from_files(env.files)
    return (lambda: stats.median(ims, roi=(slice(0, 50), slice(0, 10))),
            r"argument 'roi'.*rows 0:50.*32 x 40")


@case("roi-empty/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files, roi=(5, 5, 4, 10)),
            r"argument 'roi'.*x1 < x0")


@case("roi-empty/build")
def _(env):
    ims = imageseries.from_files(env.files)
    spec = maps.MapSpec(roi=(slice(5, 5), slice(0, 40)))
    return (lambda: maps.build_maps(ims, spec, ScanGeometry(NY, NX)),
            r"argument 'roi'.*rows 5:5.*empty")


@case("roi-empty/to_dask")
def _(env):
    ims = imageseries.from_files(env.files)
    return lambda: ims.to_dask(roi=(slice(0, 8), slice(12, 12))), r"argument 'roi'.*12:12"


@case("roi-empty/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files, "--roi", "5", "5", "4", "10"), r"roi.*x1 < x0"


# -- binning <= 0 --------------------------------------------------------------------------
for _b in (0, -2, 2.5):
    def _make(b):
        def setup(env):
            return (lambda: mapper_out(env).composite_map(env.files, binning=b),
                    rf"argument 'binning'.*positive int, got {re.escape(repr(b))}")
        return setup
    case(f"binning-{_b}/mapper", output=True)(_make(_b))


@case("binning-0/build")
def _(env):
    return lambda: maps.MapSpec(binning=0), r"argument 'binning'.*got 0"


@case("binning-0/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files, "--binning", "0"), r"--binning.*>= 1.*0"


# -- binning not dividing the ROI: the message lists the binnings that work ---------------
@case("binning-not-dividing/mapper", output=True)
def _(env):
    # (0, 0, 9, 9) is 10 x 10
    works = re.escape(str(divisors(10, 10)))
    return (lambda: mapper_out(env).composite_map(env.files, roi=(0, 0, 9, 9), binning=3),
            rf"argument 'binning'.*3 does not divide the 10 x 10 ROI.*work: {works}")


@case("binning-not-dividing-frame/mapper", output=True)
def _(env):
    works = re.escape(str(divisors(*SHAPE)))
    return (lambda: mapper_out(env).composite_map(env.files, binning=3),
            rf"argument 'binning'.*32 x 40.*work: {works}")


@case("binning-not-dividing/build")
def _(env):
    ims = imageseries.from_files(env.files)
    spec = maps.MapSpec(roi=(slice(0, 30), slice(0, 40)), binning=4)
    works = re.escape(str(divisors(30, 40)))
    return (lambda: maps.build_maps(ims, spec, ScanGeometry(NY, NX)),
            rf"argument 'binning'.*30 x 40.*work: {works}")


@case("binning-not-dividing/cli-names-argument", output=True, cli=True)
def _(env):
    return (cli_maps(env, "composite", env.files, "--roi", "0", "0", "9", "9", "--binning", "3"),
            r"binning.*3 does not divide")


@case("binning-not-dividing/cli-lists-binnings", output=True, cli=True)
def _(env):
    works = re.escape(str(divisors(10, 10)))
    return (cli_maps(env, "composite", env.files, "--roi", "0", "0", "9", "9", "--binning", "3"),
            rf"binning.*3 does not divide.*{works}")


@case("binning-not-dividing-frame/cli", output=True, cli=True)
def _(env):
    works = re.escape(str(divisors(*SHAPE)))
    return cli_maps(env, "composite", env.files, "--binning", "3"), rf"binning.*work: {works}"


def _job_binning(env) -> str:
    return env.write("job.yaml", textwrap.dedent(f"""\
        output: {env.out}
        scans:
          - name: s1
            inputs: {env.scan.directory}/scan_*.edf
            mesh: [{NY}, {NX}]
            roi: [0, 0, 9, 9]
            binning: 3
        """))


@case("binning-not-dividing/job-names-key", jobs=True)
def _(env):
    spec = _job_binning(env)
    return lambda: jobs.load_job(spec), rf"(?=.*{p(spec)})(?=.*key 'binning').*3 does not divide"


@case("binning-not-dividing/job-lists-binnings", jobs=True)
def _(env):
    spec = _job_binning(env)
    return lambda: jobs.load_job(spec), rf"3 does not divide.*{re.escape(str(divisors(10, 10)))}"


# -- mask / dark / flat / background shape mismatch: the message names which -------------
for _which in ("mask", "dark", "flat", "background"):
    def _make(which):
        def setup(env):
            img = np.ones((10, 12), np.float32)
            return (lambda: mapper_out(env, **{which: img}).composite_map(env.files),
                    rf"argument '{which}'.*10 x 12.*32 x 40")
        return setup
    case(f"{_which}-shape/mapper", output=True)(_make(_which))


@case("mask-file-shape/mapper", output=True)
def _(env):
    mask = env.edf("mask_small.edf", np.zeros((16, 40), np.uint8))
    return (lambda: mapper_out(env, mask=mask).composite_map(env.files),
            r"argument 'mask'.*16 x 40.*32 x 40")


@case("back-files-shape/mapper", output=True)
def _(env):
    bkg = [env.edf(f"bkg_small_{k}.edf", np.full((16, 20), 3, np.uint16)) for k in range(2)]
    m = mapper_out(env, back_files=bkg)   # built outside the watch: the background is computed
    return lambda: m.composite_map(env.files), r"argument 'back_files'.*16 x 20.*32 x 40"


@case("dark-vs-flat-shape/mapper")
def _(env):
    return (lambda: Mapper(NX, NY, dark=np.zeros((10, 10)), flat=np.ones(SHAPE)),
            r"argument 'dark/flat'.*dark 10 x 10.*flat 32 x 40")


@case("norm-length/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env, norm=np.ones(5)).composite_map(env.files),
            r"argument 'norm'.*5 values for 12 frames")


for _which in ("mask", "dark", "flat"):
    def _make(which):
        def setup(env):
            img = env.edf(f"{which}_small.edf", np.ones((16, 40), np.uint16))
            return (cli_maps(env, "composite", env.files, f"--{which}", img),
                    rf"'--{which}'.*16 x 40.*32 x 40")
        return setup
    case(f"{_which}-shape/cli", output=True, cli=True)(_make(_which))


@case("background-shape/cli", output=True, cli=True)
def _(env):
    bkg = [env.edf(f"bkg_small_{k}.edf", np.full((16, 20), 3, np.uint16)) for k in range(2)]
    return (cli_maps(env, "composite", env.files, "--background", *bkg),
            r"'--background'.*16 x 20.*32 x 40")


# -- fewer / more files than scan points ---------------------------------------------------
@case("fewer-files/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files[:-1]),
            r"argument 'in_files'.*11 frames for a 3 x 4 scan")


@case("more-files/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files + env.files[:1]),
            r"argument 'in_files'.*13 frames for a 3 x 4 scan")


@case("fewer-files/circle-map", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files[:-2], 20, 15, 6, 2),
            r"argument 'in_files'.*10 frames for a 3 x 4 scan")


@case("more-files/build")
def _(env):
    ims = imageseries.from_files(env.files)
    return (lambda: maps.roi_sum(ims, ScanGeometry(2, 4)),
            r"argument 'in_files'.*12 frames for a 2 x 4 scan")


@case("fewer-files/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files[:-1]), r"11 frames for a 3 x 4 scan"


@case("fewer-files/cli-names-cli-options", output=True, cli=True)
def _(env):
    return (cli_maps(env, "composite", env.files[:-1]),
            r"^(?!.*allow_incomplete=True)(?=.*(INPUT|inputs))(?=.*--npt).*11 frames")


@case("more-files/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files + env.files[:2]), r"14 frames for a 3 x 4 scan"


# -- ring outside the frame ----------------------------------------------------------------
@case("ring-outside/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files, cen_x=500, cen_y=500, radius=10,
                                               width=2),
            r"argument 'rings'.*ring 0.*no pixel inside the 32 x 40 frame")


@case("ring-larger-than-frame/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files, cen_x=20, cen_y=16, radius=[5, 300],
                                               width=2),
            r"argument 'rings'.*ring 1 .*radius 300.*no pixel inside")


@case("ring-negative-radius/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files, 20, 16, -5, 2),
            r"argument 'radius'.*>= 0")


@case("ring-outside/build")
def _(env):
    ims = imageseries.from_files(env.files)
    return (lambda: maps.annulus_sum(ims, ScanGeometry(NY, NX), -100, 20, 10, 2),
            r"argument 'rings'.*no pixel inside the 32 x 40 frame")


@case("ring-outside/cli", output=True, cli=True)
def _(env):
    return (cli_maps(env, "annulus", env.files, "--cen-y", "500", "--cen-x", "500",
                     "--radius", "5", "--width", "2"),
            r"--radius.*no pixel inside the 32 x 40 frame")


test_bad_input = bad_input_test(CASES)
