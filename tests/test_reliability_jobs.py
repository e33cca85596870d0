"""Bad job specs (issue 7): scan names and groups escaping the store, invalid or unsafe YAML,
paths relative to the YAML and never executed, an unsafe series YAML as a scan's input.

The table exercises ``jobs.load_job`` and ``xrsmap-dask run``.  The harness is in
``_reliability.py``.
"""
from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import zarr

import _reliability
from _reliability import (INVALID_YAML, NX, NY, CaseTable, assert_not_complete, bad_input_test,
                          cli, jobs, needs_cli, needs_jobs, p, python_tag_yaml)
from xrsmap_dask.errors import InputError, UnsafeInputError
from xrsmap_dask.layout import decode_attrs

# the harness fixtures these tests take (pytest finds fixtures by name in the module)
env, scan = _reliability.env, _reliability.scan

CASES = CaseTable()
case = CASES.case


# -- scan names and groups escaping the output store --------------------------------------
def _job_with(env, name: str, group: str | None = None) -> str:
    extra = f"\n    group: '{group}'" if group is not None else ""
    return env.write("job.yaml", f"output: {env.out}\nscans:\n  - name: '{name}'\n"
                                 f"    inputs: {env.scan.directory}/scan_*.edf\n"
                                 f"    mesh: [{NY}, {NX}]{extra}\n")


for _name, _group in (("s1", "."), ("s1", "../../elsewhere"), ("s1", "a/../.."), ("..", None)):
    def _make(name, group):
        def setup(env):
            spec = _job_with(env, name, group)
            return (lambda: jobs.load_job(spec),
                    rf"(?=.*{p(spec)}).*key '(group|name)'")
        return setup
    case(f"job-{'group' if _group else 'name'}-{_group or _name}/escapes-store", jobs=True)(_make(_name, _group))


@needs_jobs
@needs_cli
def test_job_group_cannot_replace_the_survey_store(env, capfd):
    first = _job_with(env, "s1")
    assert cli.main(["run", first, "-q"]) == 0, capfd.readouterr().err
    assert zarr.open_group(store=os.path.join(env.out, "s1"), mode="r").attrs["complete"]
    second = env.write("job2.yaml", Path(_job_with(env, "s2", ".")).read_text())
    code = cli.main(["run", second, "-q", "--overwrite"])
    assert os.path.exists(os.path.join(env.out, "s1", "zarr.json")), \
        "scan s1's output was deleted by another scan's job"
    assert code == cli.EXIT_USAGE


# -- job YAML that is not valid YAML ------------------------------------------------------
@case("yaml-invalid/job", jobs=True)
def _(env):
    path = env.write("job.yaml", INVALID_YAML)
    return lambda: jobs.load_job(path), rf"{p(path)}.*invalid YAML"


@case("yaml-invalid/cli-run", cli=True)
def _(env):
    path = env.write("job.yaml", INVALID_YAML)
    return lambda: cli.main(["run", path, "-q"]), rf"{p(path)}.*invalid YAML"


# -- job YAML with a Python tag (nothing may run) -----------------------------------------
@case("yaml-python-tag/job", UnsafeInputError, jobs=True)
def _(env):
    path = env.write("job.yaml", python_tag_yaml(env, "scans"))
    return lambda: jobs.load_job(path), rf"{p(path)}.*python/object"


@case("yaml-python-tag/cli-run", cli=True)
def _(env):
    path = env.write("job.yaml", python_tag_yaml(env, "output"))
    return lambda: cli.main(["run", path, "-q"]), rf"{p(path)}.*python/object"


test_bad_input = bad_input_test(CASES)


# -- paths in a job spec ------------------------------------------------------------------
@needs_jobs
def test_job_paths_relative_to_yaml_and_never_executed(env, tmp_path, monkeypatch, capfd):
    jobdir = tmp_path / "jobdir"
    jobdir.mkdir()
    os.symlink(env.scan.directory, jobdir / "frames")
    # a decoy with the same relative names where the process runs
    cwd = tmp_path / "elsewhere"
    (cwd / "frames").mkdir(parents=True)
    for f in env.files[:2]:
        shutil.copy(f, cwd / "frames")
    shutil.copy(env.scan.mask_file, cwd / "frames")
    (cwd / "only_here").mkdir()
    shutil.copy(env.files[0], cwd / "only_here")
    monkeypatch.chdir(cwd)

    spec = jobdir / "job.yaml"
    spec.write_text(textwrap.dedent(f"""\
        output: maps.zarr
        summary: summary.csv
        defaults: {{mesh: [{NY}, {NX}], roi: [0, 0, 39, 31], binning: 8}}
        scans:
          - name: s1
            inputs: frames/scan_*.edf
            corrections: {{mask: frames/mask.edf}}
        """))
    job = jobs.load_job(spec)
    (s1,) = job.scans
    assert s1.inputs.paths == tuple(str(jobdir / "frames" / os.path.basename(f))
                                    for f in env.files)
    assert s1.corrections.mask == str(jobdir / "frames" / "mask.edf")
    assert s1.output == str(jobdir / "maps.zarr")
    assert job.summary == str(jobdir / "summary.csv")
    if cli is not None:
        assert cli.main(["run", str(spec), "-q"]) == 0, capfd.readouterr().err
        assert decode_attrs(zarr.open_group(store=str(jobdir / "maps.zarr" / "s1"),
                                            mode="r").attrs)["complete"] is True
        assert sorted(os.listdir(cwd)) == ["frames", "only_here"]

    # a path that exists only relative to the working directory is not found
    spec.write_text("output: maps.zarr\n"
                    "scans: [{name: s2, inputs: only_here/*.edf, mesh: [1, 1]}]\n")
    with pytest.raises(InputError, match=re.escape(str(jobdir / "only_here"))):
        jobs.load_job(spec)

    # paths are names, never commands
    marker = tmp_path / "PWNED"
    for inputs in (f"$(touch {marker})", f"`touch {marker}`", f"x.edf; touch {marker}",
                   f"| touch {marker}"):
        spec.write_text(f"output: maps.zarr\nscans: [{{name: s3, inputs: '{inputs}', "
                        f"mesh: [1, 1]}}]\n")
        with pytest.raises(InputError, match=r"not found|no file matches"):
            jobs.load_job(spec)
        if cli is not None:
            assert cli.main(["run", str(spec), "-q"]) == 2
    assert not marker.exists()


@needs_jobs
@needs_cli
def test_cli_run_unsafe_series_yaml_fails_scan(env, capfd):
    """A job whose scan input is an imageseries YAML with a Python tag: that scan fails with
    the YAML named, nothing runs, and its output is not marked complete."""
    evil = env.write("series.yml", python_tag_yaml(env, "image-files"))
    spec = env.write("job.yaml", f"output: {env.out}\nscans: [{{name: s1, inputs: {evil}, "
                                 f"mesh: [{NY}, {NX}]}}]\n")
    code = cli.main(["run", spec, "-q"])
    assert code == cli.EXIT_ERROR
    summary = Path(jobs.load_job(spec).summary).read_text()
    assert "failed" in summary and evil in summary
    assert_not_complete(os.path.join(env.out, "s1"))
    assert not env.marker().exists()
    assert "hacked" not in capfd.readouterr().out
