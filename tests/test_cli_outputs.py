"""Outputs never destroy inputs (issue 14): ``convert``, ``stats``, the map commands and
``Mapper`` refuse an output that is, holds or lies inside an input; ``--overwrite`` replaces
an output only once the new one is whole; bad output paths exit 2 naming the argument;
``verify`` checks outputs.  Every destructive case checks every input file's checksum."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from xrsmap_dask import Mapper, cli, synth
from xrsmap_dask.errors import InputError

NPT_Y, NPT_X, SHAPE = 2, 3, (24, 20)


def _checksums(root: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def scan(tmp_path):
    s = synth.make_scan(tmp_path / "scan", NPT_Y, NPT_X, SHAPE, hdf5=True, seed=1)
    return s, tmp_path


MAPS = ["--npt-y", str(NPT_Y), "--npt-x", str(NPT_X), "-q"]


def _cases(s, tmp):
    edf = os.path.join(s.directory, "scan_*.edf")
    return {
        "convert-h5-onto-itself": ["convert", s.hdf5_file, "-o", s.hdf5_file, "--format",
                                   "hdf5", "--path", "/copy", "--overwrite", "-q"],
        "convert-onto-input-dir": ["convert", edf, "-o", s.directory, "--format",
                                   "image-files", "--overwrite", "-q"],
        "stats-onto-a-frame": ["stats", edf, "--stat", "max", "-o", s.files[0],
                               "--overwrite", "-q"],
        "composite-holding-inputs": ["composite", edf, *MAPS, "-o", s.directory,
                                     "--overwrite"],
        "composite-onto-h5": ["composite", f"{s.hdf5_file}:/imageseries/images", *MAPS,
                              "-o", s.hdf5_file, "--overwrite"],
    }


CASES = ["convert-h5-onto-itself", "convert-onto-input-dir", "stats-onto-a-frame",
         "composite-holding-inputs", "composite-onto-h5"]


@pytest.mark.parametrize("name", CASES)
def test_outputs_never_destroy_inputs(scan, capsys, name):
    s, tmp = scan
    before = _checksums(tmp)
    code = cli.main(_cases(s, tmp)[name])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "input" in err and "--output" in err and "Traceback" not in err
    assert _checksums(tmp) == before


def test_mapper_refuses_an_output_that_is_its_input(scan):
    s, tmp = scan
    before = _checksums(tmp)
    with pytest.raises(InputError, match="is the input") as err:
        Mapper(NPT_X, NPT_Y, output=s.hdf5_file, overwrite=True).composite_map(
            f"{s.hdf5_file}:/imageseries/images")
    assert err.value.argument == "output"
    assert _checksums(tmp) == before


def test_overwrite_replaces_only_when_the_new_output_is_whole(scan, capsys):
    s, tmp = scan
    out = tmp / "copy.h5"
    assert cli.main(["convert", os.path.join(s.directory, "scan_*.edf"), "-o", str(out),
                     "--format", "hdf5", "--path", "/imageseries", "-q"]) == 0
    good = _checksums(tmp)
    # an input whose frame turns out unreadable while converting: the old output stays
    bad = tmp / "bad"
    bad.mkdir()
    for k, f in enumerate(s.files):
        data = Path(f).read_bytes()
        (bad / f"f_{k:02d}.edf").write_bytes(data[:-300] if k == 3 else data)
    assert cli.main(["convert", str(bad / "f_*.edf"), "-o", str(out), "--format", "hdf5",
                     "--path", "/imageseries", "--overwrite", "-q"]) == 2
    assert {k: v for k, v in _checksums(tmp).items() if "/bad/" not in k} == good
    assert not [p for p in tmp.iterdir() if "xrsmap-old" in p.name]
    capsys.readouterr()


def test_another_jobs_output_names_the_flag(scan, capsys):
    """An output holding another job is refused (exit 2) with the flag to pass, not the
    library's keyword; with the flag it is replaced."""
    s, tmp = scan
    edf = os.path.join(s.directory, "scan_*.edf")
    out = str(tmp / "maps.zarr")
    assert cli.main(["composite", edf, *MAPS, "-o", out]) == 0
    capsys.readouterr()
    assert cli.main(["composite", edf, *MAPS, "--binning", "2", "-o", out]) == 2
    err = capsys.readouterr().err
    assert "different job" in err and "--overwrite" in err and "overwrite=True" not in err
    assert "differs in: binning" in err                   # what changed, not just that
    assert cli.main(["composite", edf, *MAPS, "--binning", "2", "-o", out,
                     "--overwrite"]) == 0
    assert zarr.open_group(out, mode="r")["composite"].shape[2:] == (SHAPE[0] // 2,
                                                                     SHAPE[1] // 2)


def test_convert_and_image_stats_take_the_output_lock(scan, capsys):
    """Like maps and zarr statistics, ``convert`` and a statistics image refuse an output
    another writer holds (exit 2, naming the holder), and leave its file alone."""
    from xrsmap_dask.store import OutputLock

    s, tmp = scan
    edf = os.path.join(s.directory, "scan_*.edf")
    for argv, out in ((["convert", edf, "--format", "hdf5"], tmp / "c.h5"),
                      (["stats", edf, "--stat", "max"], tmp / "max.edf")):
        out.write_bytes(b"theirs")
        with OutputLock(str(out)):
            assert cli.main(argv + ["-o", str(out), "--overwrite", "-q"]) == 2
            assert "another job is writing" in capsys.readouterr().err
        assert out.read_bytes() == b"theirs"
        assert cli.main(argv + ["-o", str(out), "--overwrite", "-q"]) == 0
        assert out.read_bytes() != b"theirs"


def test_bad_output_paths_exit_2(scan, capsys, tmp_path):
    s, tmp = scan
    afile = tmp / "afile"
    afile.write_text("x")
    edf = os.path.join(s.directory, "scan_*.edf")
    for out in (str(afile), str(afile / "under.zarr")):
        assert cli.main(["composite", edf, *MAPS, "-o", out]) == 2
        err = capsys.readouterr().err
        assert "--output" in err and "Traceback" not in err
    assert cli.main(["convert", edf, "-o", str(afile / "x.h5"), "--format", "hdf5",
                     "-q"]) == 2
    assert "--output" in capsys.readouterr().err


def test_verify_command(scan, capsys):
    s, tmp = scan
    out = tmp / "maps.zarr"
    assert cli.main(["composite", os.path.join(s.directory, "scan_*.edf"), *MAPS, "--roi",
                     "0", "0", "15", "15", "--binning", "4", "-o", str(out)]) == 0
    assert cli.main(["verify", str(out)]) == 0
    capsys.readouterr()
    # flip one byte of a data chunk
    chunk = next(p for p in sorted((out / "roi_sum").rglob("*"))
                 if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert cli.main(["verify", str(out)]) == 1
    report = capsys.readouterr().out
    assert "roi_sum" in report
    # a rerun rewrites the damaged chunk; verify passes again
    assert cli.main(["composite", os.path.join(s.directory, "scan_*.edf"), *MAPS, "--roi",
                     "0", "0", "15", "15", "--binning", "4", "-o", str(out)]) == 0
    assert cli.main(["verify", str(out)]) == 0
    g = zarr.open_group(str(out), mode="r")
    assert np.isfinite(g["roi_sum"][...]).all()


def _unshare_ok() -> bool:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_ok(), reason="needs unshare --mount (a private tmpfs)")
@pytest.mark.parametrize("gzip", ["0", "1"])
def test_convert_on_a_full_disk_exits_2_and_leaves_nothing(scan, gzip):
    """A 64 KiB tmpfs in a private mount namespace: ``convert`` exits 2 naming --output,
    leaves no partial file (a rerun is not blocked) and the inputs are unchanged."""
    import subprocess
    import sys

    s, tmp = scan
    big = tmp / "big"
    synth.make_scan(big, 4, 4, (128, 128), seed=2)
    before = _checksums(tmp)
    mnt = tmp / "small"
    mnt.mkdir()
    out = mnt / "x.h5"
    cmd = (f"mount -t tmpfs -o size=64k tmpfs {mnt} && {sys.executable} -m xrsmap_dask.cli "
           f"convert '{big}/scan_*.edf' -o {out} --format hdf5 --gzip {gzip} -q; "
           f"echo EXIT=$?; ls -A {mnt}")
    r = subprocess.run(["unshare", "--mount", "sh", "-c", cmd], capture_output=True,
                       text=True, timeout=300)
    assert "EXIT=2" in r.stdout, r.stdout + r.stderr
    assert "--output" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout.strip().endswith("EXIT=2"), f"left behind: {r.stdout}"
    assert _checksums(tmp) == before
