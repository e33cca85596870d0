"""Store reliability (issue 14) with real files and real processes: bad output paths,
overlapping outputs, overwrite without loss, locks through symlinks, free space, chunk
checksums and verify, and a kill loop."""
from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import xrsmap_dask
from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.maps import MapSpec, build_maps, rings
from xrsmap_dask.scan import ScanGeometry
from xrsmap_dask.store import (OutputLock, OutputLockedError, check_output_path, read_attrs,
                               verify, write_maps, write_statistics)

NY, NX = 6, 5
SHAPE = (24, 32)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return synth.make_scan(tmp_path_factory.mktemp("rel") / "scan", npt_y=NY, npt_x=NX,
                           frame_shape=SHAPE, seed=13)


def _checksums(paths) -> dict:
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in files:
            out[str(f)] = hashlib.sha1(f.read_bytes()).hexdigest()
    return out


def _maps(scan, fpc=5):
    ims = imageseries.from_files(scan.files)
    spec = MapSpec(roi=(slice(0, 24), slice(0, 32)), binning=4,
                   rings=rings(scan.centre[0], scan.centre[1], scan.radii[:2], 2.0))
    return ims, build_maps(ims, spec, ScanGeometry(NY, NX), frames_per_chunk=fpc)


def _arrays(path) -> dict:
    g = zarr.open_group(store=str(path), mode="r")
    return {name: arr[...] for name, arr in g.arrays()}


def _same_arrays(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].tobytes() == b[name].tobytes(), name


def _unshare_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return r.returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_ok(),
                                   reason="needs unshare --mount (a private tmpfs)")


# -- bad output paths: InputError naming the path, inputs unchanged ------------------------

def _file_output(tmp, scan):
    p = tmp / "out.zarr"
    p.write_text("a file")
    return p, "is a file"


def _under_file(tmp, scan):
    (tmp / "plain").write_text("a file")
    return tmp / "plain" / "out.zarr", "under .*plain.*file"


def _output_is_input_dir(tmp, scan):
    return Path(scan.directory), "holds the input"


def _output_is_input_file(tmp, scan):
    return Path(scan.files[0]), "is a file|is the input"


def _output_through_symlink_to_inputs(tmp, scan):
    link = tmp / "link.zarr"
    link.symlink_to(scan.directory)
    return link, "holds the input"


BAD_PATHS = {"file": _file_output, "under-file": _under_file,
             "input-directory": _output_is_input_dir, "input-file": _output_is_input_file,
             "symlink-to-inputs": _output_through_symlink_to_inputs}


@pytest.mark.parametrize("case", list(BAD_PATHS))
def test_bad_output_paths(scan, tmp_path, case):
    out, pattern = BAD_PATHS[case](tmp_path, scan)
    before = _checksums([scan.directory])
    ims, maps = _maps(scan)
    with pytest.raises(InputError, match=pattern) as err:
        write_maps(maps, out, ims)
    assert err.value.argument == "output" and err.value.path == str(out)
    assert _checksums([scan.directory]) == before
    assert not (Path(scan.directory) / "zarr.json").exists()


@needs_unshare
def test_read_only_file_system_and_full_disk(scan, tmp_path):
    """A read-only tmpfs and a 64 KiB tmpfs, each in a private mount namespace."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        from xrsmap_dask import imageseries
        from xrsmap_dask.errors import InputError
        from xrsmap_dask.maps import MapSpec, build_maps
        from xrsmap_dask.scan import ScanGeometry
        from xrsmap_dask.store import write_maps
        ims = imageseries.from_files(json.loads(sys.argv[2]))
        m = build_maps(ims, MapSpec(binning=1), ScanGeometry({NY}, {NX}))
        try:
            write_maps(m, sys.argv[1], ims)
        except InputError as exc:
            print("InputError", exc.argument, exc.path, exc.reason)
    """))
    results = {}
    for name, opts in (("ro", "ro,size=1m"), ("full", "size=64k")):
        mnt = tmp_path / name
        mnt.mkdir()
        out = mnt / "out.zarr"
        cmd = (f"mount -t tmpfs -o {opts} tmpfs {mnt} && {sys.executable} {script} {out} "
               f"'{json.dumps(list(scan.files))}'")
        r = subprocess.run(["unshare", "--mount", "sh", "-c", cmd], capture_output=True,
                           text=True, timeout=120)
        assert "Traceback" not in r.stderr, r.stderr
        results[name] = r.stdout.strip()
    assert results["ro"].startswith("InputError output") and "read-only" in results["ro"]
    assert results["full"].startswith("InputError output") and "free space" in results["full"]


# -- overlap between outputs and inputs ---------------------------------------------------

def test_check_output_path_table(scan, tmp_path):
    store = tmp_path / "in.zarr"
    zarr.open_group(store=str(store), mode="w")
    files = list(scan.files)
    refused = [
        (scan.files[0], files, (), "is the input"),
        (scan.directory, files, (), "holds the input"),
        (store / "maps", [str(store)], (), "inside the input directory"),
        (tmp_path / "o" / "a", (), [tmp_path / "o" / "a" / "sub"], "another scan"),
        (tmp_path / "o" / "a" / "sub", (), [tmp_path / "o" / "a"], "another scan"),
        (tmp_path / "o" / "b", (), [tmp_path / "o" / "b"], "another scan"),
    ]
    for out, inputs, others, pattern in refused:
        with pytest.raises(InputError, match=pattern) as err:
            check_output_path(out, inputs, others)
        assert err.value.argument == "output"
    ok = [(Path(scan.directory) / "maps.zarr", files, ()),        # beside its frames
          (tmp_path / "o" / "a", (), [tmp_path / "o" / "ab", tmp_path / "o" / "b"])]
    for out, inputs, others in ok:
        assert check_output_path(out, inputs, others) == os.path.realpath(out)
    # a symlink to an input is the input
    link = tmp_path / "alias.edf"
    link.symlink_to(scan.files[0])
    with pytest.raises(InputError, match="is the input"):
        check_output_path(scan.files[0], [link])


# -- overwrite keeps the old output until the new one is complete -------------------------

OVERWRITE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from dask.callbacks import Callback
    from xrsmap_dask import imageseries
    from xrsmap_dask.maps import MapSpec, build_maps
    from xrsmap_dask.scan import ScanGeometry
    from xrsmap_dask.store import write_maps

    files, out, marker, ny, nx = json.loads(sys.argv[1])

    class Stop(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            name = key[0] if isinstance(key, tuple) else key
            if str(name).startswith("map-reduce-write-"):
                open(marker, "w").close()
                time.sleep(600)

    ims = imageseries.from_files(files)
    m = build_maps(ims, MapSpec(binning=2), ScanGeometry(ny, nx), frames_per_chunk=5)
    with Stop():
        write_maps(m, out, ims, overwrite=True, scheduler="synchronous")
""")


def _run_until_marker(script: Path, args: list, marker: Path):
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(args)])
    try:
        t0 = time.time()
        while not marker.exists():
            assert proc.poll() is None, "the job ended before the marker"
            assert time.time() - t0 < 120
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


def test_overwrite_killed_keeps_old_output_and_foreign_entries(scan, tmp_path):
    ims, maps = _maps(scan)
    out = tmp_path / "out.zarr"
    write_maps(maps, out, ims)
    old = _arrays(out)
    (out / "notes.txt").write_text("mine")                       # not ours: stays
    zarr.open_group(store=str(out / "sub"), mode="w").attrs["owner"] = "another scan"
    script = tmp_path / "ow.py"
    script.write_text(OVERWRITE_SCRIPT)
    _run_until_marker(script, [list(scan.files), str(out), str(tmp_path / "m"), NY, NX],
                      tmp_path / "m")
    # killed while writing the new output: the old one is untouched, complete and whole
    _same_arrays(_arrays(out), old | {})
    assert read_attrs(str(out))["complete"] is True
    assert verify(out).ok
    assert (tmp_path / ".out.zarr.xrsmap-new").is_dir()          # the new one, partial
    # rerun: the overwrite resumes and swaps; other entries survive
    res = write_maps(build_maps(ims, MapSpec(binning=2), ScanGeometry(NY, NX),
                                frames_per_chunk=5), out, ims, overwrite=True)
    assert 0 < len(res.computed_chunks) < res.nchunks
    new = _arrays(out)
    assert new["composite"].shape == (NY, NX, 12, 16) and "annulus_sum" not in new
    assert (out / "notes.txt").read_text() == "mine"
    assert zarr.open_group(store=str(out / "sub"), mode="r").attrs["owner"] == "another scan"
    assert not (tmp_path / ".out.zarr.xrsmap-new").exists()
    assert not (tmp_path / ".out.zarr.xrsmap-old").exists()
    assert verify(out).ok


def test_overwrite_refuses_what_is_not_ours(scan, tmp_path):
    ims, maps = _maps(scan)
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "frame.edf").write_bytes(b"precious")
    other = tmp_path / "other.zarr"
    zarr.open_group(store=str(other), mode="w").attrs["owner"] = "someone"
    for path in (foreign, other):
        before = _checksums([path])
        with pytest.raises(InputError, match="not replaced|not written by xrsmap"):
            write_maps(maps, path, ims, overwrite=True)
        assert _checksums([path]) == before


def test_killed_while_zarr_wrote_the_group_metadata_is_resumed(scan, tmp_path):
    """A kill while zarr writes the group's zarr.json (atomically: a temporary
    ``zarr.<hex>.partial`` renamed into place) leaves only that file: the rerun writes the
    output; a directory holding anything else is still refused."""
    ims, maps = _maps(scan)
    out = tmp_path / "maps.zarr"
    out.mkdir()
    (out / f"zarr.{'0123456789abcdef' * 2}.partial").write_bytes(b'{"zarr_for')
    write_maps(maps, out, ims)
    assert read_attrs(str(out))["complete"] is True
    assert not list(out.glob("*.partial"))
    ref = tmp_path / "ref.zarr"
    write_maps(maps, ref, ims)
    _same_arrays(_arrays(out), _arrays(ref))
    other = tmp_path / "other.zarr"
    other.mkdir()
    (other / "zarr.notes.partial").write_text("mine")
    with pytest.raises(InputError, match="not a zarr group"):
        write_maps(maps, other, ims)
    assert (other / "zarr.notes.partial").read_text() == "mine"


# -- locks ---------------------------------------------------------------------------------

def test_lock_is_on_the_real_path(scan, tmp_path):
    real = tmp_path / "real.zarr"
    real.mkdir()
    link = tmp_path / "alias.zarr"
    link.symlink_to(real)
    with OutputLock(str(real)):
        with pytest.raises(OutputLockedError):
            OutputLock(str(link)).acquire()
        ims, maps = _maps(scan)
        with pytest.raises(OutputLockedError):
            write_maps(maps, link, ims)
    assert not os.path.exists(str(real) + ".lock")
    assert write_maps(maps, link, ims).nchunks == maps.plan.nchunks
    assert verify(real).ok


# -- checksums, verify, repair --------------------------------------------------------------

def _chunk_files(out: Path, name: str):
    return sorted(p for p in (out / name / "c").rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["delete", "bitflip"])
def test_verify_fails_and_rerun_rewrites_the_chunk(scan, tmp_path, damage):
    ims, maps = _maps(scan)
    out = tmp_path / "out.zarr"
    write_maps(maps, out, ims)
    good = _arrays(out)
    report = verify(out)
    assert report.ok and report.outputs[0].checked_chunks == maps.plan.nchunks
    victim = _chunk_files(out, "composite")[2]
    if damage == "delete":
        victim.unlink()
    else:
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x10
        victim.write_bytes(bytes(data))
    report = verify(out)
    assert not report.ok
    assert any("composite" in p for p in report.outputs[0].problems), report.lines()
    res = write_maps(maps, out, ims)                 # same job: the damaged unit is redone
    assert not res.skipped and len(res.computed_chunks) == 1 == len(res.repaired)
    assert verify(out).ok
    _same_arrays(_arrays(out), good)


def test_missing_chunk_of_a_done_unit_is_recomputed_not_nan(scan, tmp_path):
    ims, maps = _maps(scan)
    out = tmp_path / "out.zarr"
    write_maps(maps, out, ims)
    good = _arrays(out)
    zarr.open_group(store=str(out), mode="r+").attrs["complete"] = False   # as if killed
    _chunk_files(out, "roi_sum")[0].unlink()
    res = write_maps(maps, out, ims)
    assert res.computed_chunks == [0]
    _same_arrays(_arrays(out), good)
    assert not np.isnan(_arrays(out)["roi_sum"]).any()


def test_verify_reports_every_output_below_a_path(scan, tmp_path):
    ims, maps = _maps(scan)
    root = tmp_path / "survey.zarr"
    zarr.open_group(store=str(root), mode="w")
    write_maps(maps, root / "s1", ims)
    write_statistics(ims, root / "s1" / "stats", ["max"])
    write_maps(maps, root / "s2", ims)
    report = verify(root)
    assert report.ok and [Path(o.path).name for o in report.outputs] == ["s1", "stats", "s2"]
    assert [o.kind for o in report.outputs] == ["maps", "stats", "maps"]
    assert not verify(tmp_path / "nothing").ok
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not verify(empty).ok


# -- the store writes what it is given ------------------------------------------------------

def test_store_imports_nothing_from_maps():
    store_dir = Path(xrsmap_dask.__file__).parent / "store"
    for path in store_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert "maps" not in module.split("."), (path.name, module)
            elif isinstance(node, ast.Import):
                assert not any("maps" in a.name.split(".") for a in node.names), path.name
    code = ("import sys, xrsmap_dask.store; "
            "sys.exit(any(m.startswith('xrsmap_dask.maps') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- kill loop -------------------------------------------------------------------------------

KILL_LOOP_SCRIPT = textwrap.dedent("""
    import json, sys
    from xrsmap_dask import imageseries
    from xrsmap_dask.maps import MapSpec, build_maps, rings
    from xrsmap_dask.scan import ScanGeometry
    from xrsmap_dask.store import write_maps, write_statistics

    files, out, ny, nx, centre, radii = json.loads(sys.argv[1])
    ims = imageseries.from_files(files)
    spec = MapSpec(roi=(slice(0, 64), slice(0, 64)), binning=8,
                   rings=rings(centre[0], centre[1], radii, 3.0))
    m = build_maps(ims, spec, ScanGeometry(ny, nx), frames_per_chunk=12)
    print("started", flush=True)
    write_maps(m, out + "/maps.zarr", ims, scheduler="threads")
    write_statistics(ims, out + "/stats.zarr", ["median", "max"], [10], scheduler="threads",
                     memory_budget=2**20)
    print("finished", flush=True)
""")


def test_kill_loop_then_rerun_is_byte_identical(tmp_path):
    s = synth.make_scan(tmp_path / "scan", npt_y=12, npt_x=12, frame_shape=(64, 64), seed=4)
    script = tmp_path / "job.py"
    script.write_text(KILL_LOOP_SCRIPT)

    def run(out: Path, kill_after: float | None):
        args = json.dumps([list(s.files), str(out), 12, 12, list(s.centre), list(s.radii)])
        proc = subprocess.Popen([sys.executable, str(script), args], stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout.readline().strip() == "started"
            t0 = time.perf_counter()
            if kill_after is None:
                assert proc.wait(300) == 0
                return time.perf_counter() - t0
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
            return None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    ref = tmp_path / "ref"
    duration = run(ref, None)
    out = tmp_path / "out"
    rng = random.Random(7)
    interrupted = 0
    for _ in range(10):             # each run gets on a little, then is killed
        run(out, rng.uniform(0, duration / 3))
        states = [(out / n / "zarr.json").exists() and
                  read_attrs(str(out / n)).get("complete") is not True
                  for n in ("maps.zarr", "stats.zarr")]
        interrupted += any(states)
    assert interrupted >= 3        # most kills landed while an output was being written
    run(out, None)
    for name in ("maps.zarr", "stats.zarr"):
        _same_arrays(_arrays(out / name), _arrays(ref / name))
        assert read_attrs(str(out / name))["complete"] is True
    report = verify(out)
    assert report.ok and len(report.outputs) == 2, report.lines()


def test_check_writable_for_files_and_directories(tmp_path):
    from xrsmap_dask.store import check_writable

    (tmp_path / "f.h5").write_bytes(b"old")
    (tmp_path / "d").mkdir()
    assert check_writable(tmp_path / "new" / "out.zarr") == str(tmp_path / "new" / "out.zarr")
    assert check_writable(tmp_path / "f.h5", directory=False) == str(tmp_path / "f.h5")
    for path, directory, pattern in ((tmp_path / "f.h5", True, "is a file"),
                                     (tmp_path / "d", False, "is a directory"),
                                     (tmp_path / "f.h5" / "x.h5", False, "under"),
                                     (tmp_path / "f.h5" / "x.zarr", True, "under")):
        with pytest.raises(InputError, match=pattern) as err:
            check_writable(path, directory=directory, argument="--output")
        assert err.value.argument == "--output" and err.value.path == str(path)
    assert (tmp_path / "f.h5").read_bytes() == b"old"
