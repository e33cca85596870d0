"""Bad image-series sources (issue 7): unknown formats, HDF5 without the dataset, invalid YAML,
YAML with Python tags, npz/npy holding pickled objects.

The table exercises the ``imageseries`` format registry and its readers (``open``/``write``,
hdf5, image-files, frame-cache, raw-image), and the correction/norm arrays read by ``inputs``
through the CLI; nothing unsafe may run.  Then: series YAML resolve their paths against the
YAML's directory.  The harness is in ``_reliability.py``.
"""
from __future__ import annotations

import os
import shutil
import textwrap

import numpy as np

import _reliability
from _reliability import (BAD, INVALID_YAML, NX, NY, SHAPE, CaseTable, Evil, bad_input_test,
                          cli, cli_maps, evil_npy, evil_npz, mapper_out, p, python_tag_yaml)
from xrsmap_dask import imageseries
from xrsmap_dask.errors import FormatError, FrameReadError, UnsafeInputError

# the harness fixtures these tests take (pytest finds fixtures by name in the module)
env, scan, stack = _reliability.env, _reliability.scan, _reliability.stack

CASES = CaseTable()
case = CASES.case


# -- unknown format ------------------------------------------------------------------------
@case("unknown-format/open", FormatError)
def _(env):
    return lambda: imageseries.open(env.files[0], "nosuch-format"), r"nosuch-format.*unknown"


@case("unknown-format/guess", FormatError)
def _(env):
    path = env.write("frames.xyz", b"\0" * 64)
    return lambda: imageseries.open(path), rf"{p(path)}.*format"


@case("unknown-format/write", FormatError)
def _(env):
    ims = imageseries.from_files(env.files)
    return lambda: imageseries.write(ims, str(env.tmp / "x.bin"), "bogus"), r"bogus"


@case("unknown-image-type/mapper", FrameReadError, output=True)
def _(env):
    bad = env.write("scan_notes.xyz", "these are not pixels\n")
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}")


@case("unknown-format/cli-convert", cli=True)
def _(env):
    argv = ["convert", *env.files, "-o", str(env.tmp / "x.bin"), "--format", "bogus", "-q"]
    return lambda: cli.main(argv), r"--format.*bogus"


# -- HDF5 file without the dataset ---------------------------------------------------------
def _h5_elsewhere(env) -> str:
    import h5py

    path = str(env.tmp / "stack.h5")
    with h5py.File(path, "w") as f:
        f["entry/data"] = np.zeros((NY * NX,) + SHAPE, np.uint16)
    return path


@case("hdf5-no-dataset/open")
def _(env):
    path = _h5_elsewhere(env)
    return (lambda: imageseries.open(path, "hdf5", path="/imageseries"),
            rf"{p(path)}.*no dataset '/imageseries/images'")


@case("hdf5-no-dataset/open-default")
def _(env):
    path = _h5_elsewhere(env)
    return lambda: imageseries.open(path, "hdf5"), rf"{p(path)}.*no dataset '/images'"


@case("hdf5-no-dataset/mapper", output=True)
def _(env):
    path = _h5_elsewhere(env)
    return lambda: mapper_out(env).composite_map(path), rf"{p(path)}.*no dataset '/images'"


@case("hdf5-not-hdf5/open", FrameReadError)
def _(env):
    path = env.write("fake.h5", b"this is not an HDF5 file" * 8)
    return lambda: imageseries.open(path, "hdf5"), rf"{p(path)}.*HDF5"


@case("hdf5-no-dataset/cli", output=True, cli=True)
def _(env):
    path = _h5_elsewhere(env)
    return (cli_maps(env, "composite", [f"{path}:/imageseries/images"]),
            rf"{p(path)}.*no dataset '/imageseries/images'")


# -- YAML that is not valid YAML -----------------------------------------------------------
for _fmt in ("image-files", "frame-cache", "raw-image", None):
    def _make(fmt):
        def setup(env):
            path = env.write("series.yml", INVALID_YAML)
            return lambda: imageseries.open(path, fmt), rf"{p(path)}.*invalid YAML"
        return setup
    case(f"yaml-invalid/open-{_fmt or 'guess'}")(_make(_fmt))


# -- YAML with a Python tag (nothing may run) ----------------------------------------------
for _fmt, _key in (("image-files", "image-files"), ("frame-cache", "data"),
                   ("raw-image", "filename"), (None, "image-files")):
    def _make(fmt, key):
        def setup(env):
            path = env.write("series.yml", python_tag_yaml(env, key))
            return lambda: imageseries.open(path, fmt), rf"{p(path)}.*python/object"
        return setup
    case(f"yaml-python-tag/open-{_fmt or 'guess'}", UnsafeInputError)(_make(_fmt, _key))


@case("yaml-python-tag/open-yaml-text", UnsafeInputError)
def _(env):
    text = python_tag_yaml(env, "image-files")
    return lambda: imageseries.open(text, "image-files"), r"yaml text.*python/object"


# -- npz (and npy) holding pickled objects (nothing may run) -------------------------------
@case("npz-pickle/open", UnsafeInputError)
def _(env):
    path = evil_npz(env)
    return lambda: imageseries.open(path, "frame-cache"), rf"{p(path)}.*pickle"


@case("npz-pickle-in-frame/open", UnsafeInputError)
def _(env):
    path = str(env.tmp / "evil_frame.npz")
    np.savez(path, nframes=np.array(1), shape=np.array(SHAPE), dtype=np.array("uint16"),
             **{"0_row": np.zeros(1, np.uint16), "0_col": np.zeros(1, np.uint16),
                "0_data": np.array([Evil(env.marker())], dtype=object)})
    return lambda: imageseries.open(path, "frame-cache"), rf"{p(path)}.*pickle"


@case("npz-pickle/open-guess", UnsafeInputError)
def _(env):
    path = evil_npz(env)
    return lambda: imageseries.open(path), rf"{p(path)}.*pickle"


@case("npz-pickle/frame-cache-yaml", UnsafeInputError)
def _(env):
    npz = evil_npz(env)
    path = env.write("cache.yml", f"data: {{file: {os.path.basename(npz)}, nframes: 1}}\n"
                                  "meta: {}\n")
    return lambda: imageseries.open(path, "frame-cache"), rf"{p(npz)}.*pickle"


@case("npy-pickle/image-files-meta", UnsafeInputError)
def _(env):
    npy = evil_npy(env)
    path = env.write("series.yml", textwrap.dedent(f"""\
        image-files: {{directory: {env.scan.directory}, files: "scan_*.edf"}}
        options: {{}}
        meta: {{omega: "! load-numpy-array {os.path.basename(npy)}"}}
        """))
    return lambda: imageseries.open(path, "image-files"), rf"{p(npy)}.*pickle"


@case("npy-pickle/cli-mask", output=True, cli=True)
def _(env):
    npy = evil_npy(env)
    return cli_maps(env, "composite", env.files, "--mask", npy), rf"{p(npy)}.*(pickle|Object)"


@case("npy-pickle/cli-norm", output=True, cli=True)
def _(env):
    npy = evil_npy(env)
    return cli_maps(env, "composite", env.files, "--norm", npy), rf"{p(npy)}.*(pickle|Object)"


test_bad_input = bad_input_test(CASES)


# ---------------------------------------------------------------------------------------
# paths in a series YAML


def test_series_yaml_paths_relative_to_yaml(env, stack, tmp_path, monkeypatch):
    """image-files ``directory``, frame-cache ``file`` and raw-image ``filename`` are taken
    relative to the YAML's directory, not the working directory (which holds decoys)."""
    ydir = tmp_path / "ydir"
    ydir.mkdir()
    os.symlink(env.scan.directory, ydir / "frames")
    ims = imageseries.from_files(env.files)
    imageseries.write(ims, str(ydir / "cache.npz"), "frame-cache", threshold=-1)
    (ydir / "raw.bin").write_bytes(stack.astype("<u2").tobytes())
    decoy = tmp_path / "cwd"
    (decoy / "frames").mkdir(parents=True)
    shutil.copy(env.files[0], decoy / "frames")
    imageseries.write(imageseries.from_files(env.files[:2]), str(decoy / "cache.npz"),
                      "frame-cache", threshold=-1)
    (decoy / "raw.bin").write_bytes(stack[:2].astype("<u2").tobytes())
    monkeypatch.chdir(decoy)

    docs = {
        "image-files": 'image-files: {directory: frames, files: "scan_*.edf"}\noptions: {}\n',
        "frame-cache": f"data: {{file: cache.npz, nframes: {NY * NX}, shape: [{SHAPE[0]}, "
                       f"{SHAPE[1]}], dtype: uint16}}\nmeta: {{}}\n",
        "raw-image": f"filename: raw.bin\nscalar: {{type: i, bytes: 2, signed: false, "
                     f"endian: little}}\nshape: \"{SHAPE[0]} {SHAPE[1]}\"\nskip: 0\n",
    }
    for fmt, text in docs.items():
        yml = ydir / f"{fmt}.yml"
        yml.write_text(text)
        series = imageseries.open(str(yml), fmt)
        assert len(series) == NY * NX, fmt
        np.testing.assert_array_equal(series[7], stack[7], err_msg=fmt)
        if fmt == "image-files":
            assert all(f.startswith(str(ydir / "frames")) for f in series.filenames)
