"""The settings layer: each rule lives in one parse function, and every face (CLI, YAML job
spec, ``Mapper``) reports the same reason for the same bad value, in its own words for the
field names."""
from __future__ import annotations

import re

import numpy as np
import pytest

from xrsmap_dask import cli, mapper, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.jobs import load_job
from xrsmap_dask.mapper import Mapper
from xrsmap_dask.roi import check_binning, check_xrsmap_roi
from xrsmap_dask.settings import (OPTIONS, BackgroundSpec, XrsmapRoi, parse_background_method,
                                  parse_on_error, parse_values, relabel)
from xrsmap_dask.settings.fields import parse_binning
from xrsmap_dask.settings.options import JOB, MAPPER, MAPS

NPT_Y, NPT_X, SHAPE = 2, 3, (32, 40)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return synth.make_scan(tmp_path_factory.mktemp("settings"), NPT_Y, NPT_X, SHAPE,
                           n_background=2, seed=2)


def _raw(func, *args):
    """The error of the one function that checks a rule."""
    with pytest.raises(InputError) as err:
        func(*args)
    return err.value


#: rule -> (the one checking function and its arguments, CLI extra argv, YAML scan keys,
#: Mapper constructor kw, Mapper call kw)
RULES = {
    "roi-order": ((check_xrsmap_roi, (9, 8, 5, 20)), ["--roi", "9", "8", "5", "20"],
                  "roi: [9, 8, 5, 20]", {}, {"roi": (9, 8, 5, 20)}),
    "binning-divides": ((check_binning, (32, 32), 5),
                        ["--roi", "0", "0", "31", "31", "--binning", "5"],
                        "roi: [0, 0, 31, 31]\n    binning: 5", {},
                        {"roi": (0, 0, 31, 31), "binning": 5}),
    "background-method": ((BackgroundSpec, (), "median"), ["--background-method", "median"],
                          "corrections: {background_method: median}",
                          {"background": "median"}, {}),
    "background-pct": ((parse_background_method, "percentile", None),
                       ["--background-method", "percentile"],
                       "corrections: {background_method: percentile}",
                       {"background": "percentile"}, {}),
    "on-error": ((parse_on_error, "ignore"), ["--on-error", "ignore"], "on_error: ignore",
                 {"on_error": "ignore"}, {}),
    "binning-positive": ((parse_binning, 0), ["--binning", "0"], "binning: 0", {},
                         {"binning": 0}),
}


def _cli_reason(scan, argv, capsys, tmp_path) -> str:
    code = cli.main(["composite", *scan.files, "--npt-y", str(NPT_Y), "--npt-x", str(NPT_X),
                     "-o", str(tmp_path / "o.zarr"), "-q", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    m = re.match(r"xrsmap-dask: error: argument '([^']*)'(?:, file '[^']*')?: (.*)", err.strip(),
                 re.S)
    assert m, err
    return m.group(1), m.group(2)


def _job_reason(scan, keys, tmp_path):
    spec = tmp_path / "job.yaml"
    files = "".join(f"\n      - {f}" for f in scan.files)
    spec.write_text(f"output: {tmp_path / 'o.zarr'}\nscans:\n  - name: a\n    inputs:{files}"
                    f"\n    mesh: [{NPT_Y}, {NPT_X}]\n    {keys}\n")
    with pytest.raises(InputError) as err:
        load_job(spec)
    return err.value.argument, err.value.reason


def _mapper_reason(scan, init, call):
    with pytest.raises(InputError) as err:
        Mapper(NPT_X, NPT_Y, **init).composite_map(scan.files, **call)
    return err.value.argument, err.value.reason


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_face_gives_the_same_reason(scan, tmp_path, capsys, rule):
    """Each face's message is the one checking function's, with field names in the face's
    words (the same bad value gives the same reason everywhere)."""
    (func, *args), argv, keys, init, call = RULES[rule]
    raw = _raw(func, *args)
    (cli_arg, cli_reason) = _cli_reason(scan, argv, capsys, tmp_path)
    (job_arg, job_reason) = _job_reason(scan, keys, tmp_path)
    (map_arg, map_reason) = _mapper_reason(scan, init, call)
    assert cli_reason == relabel(raw, MAPS, aliases=cli.ALIASES).reason
    assert job_reason == relabel(raw, JOB).reason
    assert map_reason == relabel(raw, MAPPER, aliases=mapper.ALIASES).reason
    # each face names the field its own way
    assert cli_arg.startswith("--")
    assert job_arg.startswith("scan 'a', key '")
    assert not map_arg.startswith(("--", "scan"))


def test_one_function_per_rule():
    """The rules are checked by one function each: the settings objects, the ROI helper and
    the CLI all reach the same code (same message for the same value)."""
    with pytest.raises(InputError) as a:
        check_xrsmap_roi((9, 8, 5, 20))
    with pytest.raises(InputError) as b:
        XrsmapRoi(9, 8, 5, 20)
    assert a.value.reason == b.value.reason
    with pytest.raises(InputError) as a:
        check_binning((32, 32), 5)
    with pytest.raises(InputError) as b:
        XrsmapRoi(0, 0, 31, 31).check_binning(5)
    assert a.value.reason == b.value.reason


def test_relabel_spells_fields_per_face():
    exc = InputError("needs @{background} frames", argument="background_pct")
    assert relabel(exc, MAPS).argument == "--background-pct"
    assert "needs --background frames" in str(relabel(exc, MAPS))
    job = relabel(exc, JOB, where=lambda k: f"scan 'x', key {k!r}", path="/j.yaml")
    assert job.argument == "scan 'x', key 'corrections.background_pct'"
    assert job.path == "/j.yaml" and "corrections.background frames" in job.reason
    assert relabel(exc, MAPPER).reason == "needs back_files frames"


def test_option_table_is_consistent():
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    flags = [f for o in OPTIONS for f in o.flags]
    assert len(flags) == len(set(flags))
    parser = cli.build_parser()
    helps = parser._subparsers._group_actions[0].choices["composite"].format_help()
    for o in OPTIONS:
        if MAPS in o.faces and o.flags:
            assert o.flags[0] in helps, o.flags[0]


def test_parse_values_defaults_and_text():
    got = parse_values({"binning": "4", "roi": ["0", "0", "7", "7"]}, MAPS, from_text=True)
    assert got["binning"] == 4 and got["roi"] == (0, 0, 7, 7)
    assert got["on_error"] == "raise" and got["frames_per_chunk"] == "auto"
    only = parse_values({"dummy": 1}, MAPPER, defaults=False)
    assert only == {"dummy": 1.0}
    with pytest.raises(InputError, match="positive int"):
        parse_values({"frames_per_chunk": 0}, JOB)
    with pytest.raises(InputError) as err:
        parse_values({"mask": np.zeros(3)}, MAPPER)
    assert err.value.argument == "mask"
