"""Radial-bin maps (1-D integration maps): ours vs a numpy bincount loop vs pyFAI's loop.

The 41 x 41 mesh of 1024 x 1024 uint16 EDF frames (``bench_data/mesh41``, written once with
``xrsmap_dask.synth``, shared with bench_maps), a tilted PONI file for a 1024 x 1024 detector
of 75 um pixels (``geometry.poni`` beside the frames), the mesh's mask.  100 bins in
``q_nm^-1`` over pyFAI's default range (min..max of the unmasked pixels), no corrections, no
pixel splitting.  Three cases, each end to end from the file list to the (1681, 100) mean
profiles, each in its own process (peak RSS its own), warm page cache, several rounds:

* ``ours``: the real map pipeline, as a user runs it: ``build_maps`` with a
  :class:`~xrsmap_dask.maps.RadialSpec` (the PONI file, 100 bins) and the mask, then
  ``Maps.compute()`` on dask's threaded scheduler -- per round the headers are read and the
  bin table is built (:func:`xrsmap_dask.radial.make_radial_bins`; the baselines get their
  bin index for free, outside the timing), then one task per write unit reads its frames a
  few at a time into a reused buffer and reduces each piece while it is in the CPU cache
  with the run-table kernel (:func:`~xrsmap_dask.radial.run_sums`: one reduceat over the
  frame's runs of consecutive same-bin pixels, thread-parallel);
* ``bincount``: one thread; per file ``io.edf.read_edf_headers`` for the data offset, one
  ``os.pread`` of the frame, ``np.bincount(bin_index, weights=frame)`` with the same bins
  and mask, divided by the per-bin pixel count;
* ``pyfai``: per file the same pread, then ``AzimuthalIntegrator.integrate1d(frame, 100,
  unit='q_nm^-1', mask=mask, radial_range=..., correctSolidAngle=False)`` with pyFAI's
  fastest no-splitting CPU method here (csr, lut or histogram, chosen by a short trial;
  pyFAI's OpenMP uses every core).

Results are checked: ours equal to the bincount loop (1e-9 relative), and to pyFAI within
1e-6 relative on every populated bin.  Targets (2 cores): ours >= 1.5x the bincount loop
and >= 4x pyFAI's loop.

    python benchmarks/bench_radial.py            # full run (mesh written once, ~3.4 GB)
    python benchmarks/bench_radial.py --small    # smoke run: 11 x 11 mesh of 256^2 frames
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, emit, ensure_mesh, run_case, table  # noqa: E402

NBINS = 100
UNIT = "q_nm^-1"
PYFAI_METHODS = (("no", "csr", "cython"), ("no", "lut", "cython"),
                 ("no", "histogram", "cython"))


def ensure_poni(scan) -> str:
    from xrsmap_dask import synth

    path = os.path.join(scan.directory, "geometry.poni")
    if not os.path.exists(path):
        synth.write_poni(path, dist=0.1, rot1=0.02, rot2=-0.015, rot3=0.1,
                         pixel_size=75e-6, shape=scan.frame_shape)
    return path


def _setup(scan, poni):
    """The bins every case uses: (geometry, mask, bin table)."""
    from xrsmap_dask import geometry, radial
    from xrsmap_dask.imageseries import read_image

    geo = geometry.load_poni(poni)
    mask = read_image(scan.mask_file) != 0
    bins = radial.make_radial_bins(geo, scan.frame_shape, NBINS, UNIT, mask=mask)
    return geo, mask, bins


def _warm(files):
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass


def _rounds(func, rounds):
    times, value = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        value = func()
        times.append(time.perf_counter() - t0)
    return times, value


def case_ours(scan, poni, rounds, out):
    from xrsmap_dask import geometry, imageseries
    from xrsmap_dask.imageseries import read_image
    from xrsmap_dask.maps import Corrections, MapSpec, RadialSpec, build_maps
    from xrsmap_dask.scan import ScanGeometry

    geo = geometry.load_poni(poni)
    mask = read_image(scan.mask_file) != 0
    _warm(scan.files)
    info = {}

    def run():
        ims = imageseries.from_files(scan.files)
        spec = MapSpec(composite=False, roi_sum=False,
                       radial=RadialSpec(geo, UNIT, bins=NBINS))
        maps = build_maps(ims, spec, ScanGeometry(scan.npt_y, scan.npt_x),
                          Corrections(mask=mask))
        info["tasks"] = maps.plan.nchunks
        return maps.compute(scheduler="threads")["radial"].reshape(NBINS, -1).T

    times, means = _rounds(run, rounds)
    np.save(out, means)
    emit({"times": times, "tasks": info["tasks"]})


def _pread_frames(files):
    """Generator of frames read with one header parse and one pread each."""
    from xrsmap_dask.io.edf import read_edf_headers

    for f in files:
        info = read_edf_headers(f)[0]
        nbytes = info.shape[0] * info.shape[1] * info.dtype.itemsize
        fd = os.open(f, os.O_RDONLY)
        try:
            buf = os.pread(fd, nbytes, info.offset)
        finally:
            os.close(fd)
        yield np.frombuffer(buf, info.dtype).reshape(info.shape)


def case_bincount(scan, poni, rounds, out):
    from xrsmap_dask import radial

    geo, mask, bins = _setup(scan, poni)
    q = geo.radial(UNIT, scan.frame_shape)
    index = radial.radial_bin_index(q, NBINS, *bins.radial_range)
    index[mask | (index < 0)] = NBINS                    # the dump bin
    index = index.ravel()
    count = np.bincount(index, minlength=NBINS + 1)[:NBINS]
    _warm(scan.files)

    def run():
        res = np.empty((len(scan.files), NBINS))
        for i, frame in enumerate(_pread_frames(scan.files)):
            res[i] = np.bincount(index, weights=frame.ravel(), minlength=NBINS + 1)[:NBINS]
        with np.errstate(invalid="ignore", divide="ignore"):
            return res / count

    times, means = _rounds(run, rounds)
    np.save(out, means)
    emit({"times": times})


def case_pyfai(scan, poni, rounds, out):
    import pyFAI

    _, mask, bins = _setup(scan, poni)
    ai = pyFAI.load(poni)
    _warm(scan.files)

    def integrate(method, frames):
        return [ai.integrate1d(f, NBINS, unit=UNIT, method=method, mask=mask,
                               radial_range=bins.radial_range,
                               correctSolidAngle=False).intensity for f in frames]

    trial = list(_pread_frames(scan.files[:20]))
    speed = {}
    for method in PYFAI_METHODS:
        integrate(method, trial[:2])                     # builds the method's tables
        t0 = time.perf_counter()
        integrate(method, trial)
        speed[method] = time.perf_counter() - t0
    best = min(speed, key=speed.get)
    times, means = _rounds(lambda: np.array(integrate(best, _pread_frames(scan.files))), rounds)
    np.save(out, means)
    emit({"times": times, "method": "/".join(best)})


CASES = {"ours": case_ours, "bincount": case_bincount, "pyfai": case_pyfai}


def _compare(res, count) -> list[str]:
    problems = []
    ours, loop, fai = res["ours"], res["bincount"], res["pyfai"]
    full = count > 0
    if not np.allclose(ours[:, full], loop[:, full], rtol=1e-9, atol=0):
        problems.append("ours != bincount loop")
    rel = np.abs(ours[:, full] / fai[:, full] - 1).max()
    if not rel <= 1e-6:
        problems.append(f"ours != pyFAI (max relative difference {rel:.2g})")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None,
                   help="mesh directory (default bench_data/mesh41, or mesh11 with --small)")
    p.add_argument("--small", action="store_true", help="smoke run: 11 x 11 of 256 x 256")
    p.add_argument("--npt", type=int, help="other mesh size: npt x npt points (own data dir)")
    p.add_argument("--size", type=int, help="other frame side in pixels (with --npt)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per case")
    p.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    npt, shape = (11, (256, 256)) if a.small else (41, (1024, 1024))
    name = "mesh11" if a.small else "mesh41"
    if a.npt:
        npt, shape = a.npt, (a.size or shape[0],) * 2
        name = f"mesh{npt}_{shape[0]}"
    data = a.data or str(DEFAULT_DATA / name)
    scan = ensure_mesh(data, npt, npt, shape)
    poni = ensure_poni(scan)
    if a.case:
        CASES[a.case](scan, poni, a.rounds, a.out)
        return 0
    from xrsmap_dask.imageseries import read_image

    first = read_image(scan.files[0])
    _, _, bins = _setup(scan, poni)
    print(f"{npt} x {npt} mesh of {shape[0]} x {shape[1]} {first.dtype} EDF frames in {data} "
          f"(first frame values {first.min()}..{first.max()}); {NBINS} bins in {UNIT} over "
          f"{bins.radial_range[0]:.4g}..{bins.radial_range[1]:.4g}, mask {scan.mask_file}; "
          f"{a.rounds} rounds; warm page cache; {os.cpu_count()} CPUs", flush=True)
    res, info = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("ours", "bincount", "pyfai"):
            out = os.path.join(tmp, f"{case}.npy")
            t0 = time.perf_counter()
            size = ["--npt", str(npt), "--size", str(shape[0])]
            info[case] = run_case(os.path.abspath(__file__), case,
                                  ["--data", data, "--rounds", str(a.rounds), "--out", out] +
                                  size)
            res[case] = np.load(out, allow_pickle=False)
            t = info[case]["times"]
            print(f"  {case}: median {statistics.median(t):.3f} s, min {min(t):.3f} s "
                  f"(case wall {time.perf_counter() - t0:.1f} s)", flush=True)
    problems = _compare(res, bins.groups.count)
    for msg in problems:
        print("MISMATCH:", msg)
    ours = statistics.median(info["ours"]["times"])
    rows = []
    for name, case in (("xrsmap-dask (ours)", "ours"), ("numpy bincount loop", "bincount"),
                       (f"pyFAI integrate1d loop ({info['pyfai']['method']})", "pyfai")):
        t = info[case]["times"]
        rows.append((name, f"{statistics.median(t):.3f}", f"{min(t):.3f}",
                     f"{statistics.median(t) / ours:.2f}x", f"{info[case]['peak_mb']:.0f}"))
    print(table(f"radial-bin maps, {NBINS} bins, {npt}x{npt} mesh, {shape[0]}^2 frames", rows,
                ("pipeline", "median s", "min s", "ours faster by", "peak RSS MiB")))
    sb = statistics.median(info["bincount"]["times"]) / ours
    sp = statistics.median(info["pyfai"]["times"]) / ours
    print(f"speed-up vs bincount loop {sb:.2f}x (target >= 1.5), vs pyFAI loop {sp:.2f}x "
          f"(target >= 4); results {'agree' if not problems else 'DIFFER'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
