"""``make demo``: a synthetic scan of real EDF files, mapped end to end.

Writes ``OUT/scan/`` (EDF frames, background frames, mask, and ``geometry.poni``: an
untilted pyFAI geometry whose beam centre is the rings' centre, 0.1 mm pixels at 100 mm,
1 angstrom), then computes from one read pass the composite (ROI binned), the ROI-sum map,
three annulus maps and 100 radial bins in q (from the PONI file), written to
``OUT/maps.zarr`` (with scan coordinates: a 0.05 mm step) and exported to the NeXus file
``OUT/maps.nxs`` (silx view opens it); the pixel-wise median and 10th percentile of the
frames (background images) to ``OUT/stats.zarr``; PNG previews of both (masked pixels in
grey); and prints where everything is.

    python -m xrsmap_dask.demo --out demo_output
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xrsmap_dask.demo", description=__doc__)
    p.add_argument("--out", default="demo_output")
    p.add_argument("--npt-y", type=int, default=21)
    p.add_argument("--npt-x", type=int, default=25)
    p.add_argument("--size", type=int, default=256, help="frame side in pixels")
    a = p.parse_args(argv)

    from . import imageseries

    out = os.path.abspath(a.out)
    t0 = time.perf_counter()
    scan = _scan(os.path.join(out, "scan"), a)
    ims = imageseries.from_files(scan.files)
    maps_path, nexus_path = _maps(scan, ims, out)
    stats_path = _stats(scan, ims, out)
    pngs = _previews(scan, maps_path, stats_path, out)
    _report(out, time.perf_counter() - t0,
            (scan.directory, maps_path, nexus_path, stats_path, *pngs), maps_path)
    return 0


def _scan(scan_dir: str, a):
    """The synthetic scan (written once, reused by later runs) and its PONI file."""
    from . import synth

    if os.path.exists(os.path.join(scan_dir, "scan.json")):
        scan = synth.SynthScan.load(scan_dir)
    else:
        print(f"1. writing a synthetic {a.npt_y} x {a.npt_x} scan of {a.size}² EDF frames ...")
        scan = synth.make_scan(scan_dir, a.npt_y, a.npt_x, (a.size, a.size), n_background=8)
    print(f"   {scan.nframes} frames in {scan_dir}")
    print("   pyFAI geometry (untilted, beam at the rings' centre): "
          f"{write_demo_poni(scan)}")
    return scan


def _maps(scan, ims, out: str) -> tuple[str, str]:
    """Composite, ROI sum, rings and radial bins in q from one read pass, to zarr and NeXus:
    ``(zarr path, NeXus path)``."""
    from dask.diagnostics import ProgressBar

    from . import stats
    from .geometry import load_poni
    from .mapper import load_image
    from .maps import Corrections, MapSpec, RadialSpec, ScanAxes, build_maps, rings
    from .nexus_export import export
    from .scan import ScanGeometry
    from .store import write_maps

    s = scan.frame_shape[0]
    roi = (slice(s // 4, s - s // 4), slice(s // 4, s - s // 4))
    corr = Corrections(mask=load_image(scan.mask_file, "mask"),
                       background=stats.background(scan.background_files, "median"))
    spec = MapSpec(roi=roi, binning=8,
                   rings=rings(scan.centre[0], scan.centre[1], scan.radii, width=4.0),
                   radial=RadialSpec(load_poni(write_demo_poni(scan)), "q_nm^-1", bins=100))
    maps = build_maps(ims, spec, ScanGeometry(scan.npt_y, scan.npt_x), corr,
                      axes=ScanAxes(step=(0.05, 0.05), units="mm"))
    maps_path = os.path.join(out, "maps.zarr")
    print(f"2. composite (ROI rows {roi[0].start}:{roi[0].stop}, cols {roi[1].start}:"
          f"{roi[1].stop}, binning 8) + ROI sum + {len(scan.radii)} annuli + 100 radial "
          "bins in q, one read pass:")
    with ProgressBar(dt=0.5):
        result = write_maps(maps, maps_path, ims, overwrite=True)
    print(f"   wrote {maps_path} ({result.nchunks} chunks)")
    nexus_path = export(maps_path, os.path.join(out, "maps.nxs"), overwrite=True)
    print(f"   exported {nexus_path} (NeXus/HDF5: silx view, PyMca, h5py)")
    return maps_path, nexus_path


def _stats(scan, ims, out: str) -> str:
    """Pixel-wise median and 10th percentile of the frames, to zarr."""
    import dask
    from dask.diagnostics import ProgressBar

    from . import stats
    from .store import write_stats

    print("3. pixel-wise median and 10th percentile of the frames (exact, bounded memory):")
    lazy = stats.lazy_stats(ims, ["median"], [10])
    stats_path = os.path.join(out, "stats.zarr")
    with ProgressBar(dt=0.5):
        images = dict(zip(lazy, dask.compute(*lazy.values())))
    write_stats(stats_path, images, {"nframes": len(ims), "units": "counts",
                                     "source": scan.directory})
    print(f"   wrote {stats_path}")
    return stats_path


def _previews(scan, maps_path: str, stats_path: str, out: str) -> tuple[str, str]:
    from .preview import preview_zarr

    print("4. previews:")
    pngs = (os.path.join(out, "maps.png"), os.path.join(out, "stats.png"))
    for path, group, title in ((pngs[0], maps_path, None),
                               (pngs[1], stats_path, "background images")):
        size = preview_zarr(group, path, title=title, mask=scan.mask_file)
        print(f"   {path} ({size[0]} x {size[1]} px)")
    return pngs


def _report(out: str, seconds: float, paths, maps_path: str) -> None:
    import zarr

    roi_sum = np.asarray(zarr.open_group(maps_path, mode="r")["roi_sum"])
    print(f"\ndone in {seconds:.1f} s. Outputs in {out}:")
    for path in paths:
        print(f"  {path}")
    print(f"ROI-sum map {roi_sum.shape}: min {roi_sum.min():.4g}, max {roi_sum.max():.4g}")
    print("open the maps with:  python -c \"import xarray; print(xarray.open_zarr("
          f"'{maps_path}'))\"")


def write_demo_poni(scan) -> str:
    """``<scan dir>/geometry.poni``: an untilted generic detector of the scan's frame shape,
    0.1 mm pixels, 100 mm from the sample, wavelength 1 angstrom, the PONI (beam centre) on
    the synthetic rings' centre, so rings at radius ``r`` pixels sit at ``r_mm = r / 10``."""
    from . import synth

    path = os.path.join(scan.directory, "geometry.poni")
    cen_y, cen_x = scan.centre
    pixel = 1e-4
    if not os.path.exists(path):
        synth.write_poni(path, dist=0.1, poni1=(cen_y + 0.5) * pixel,
                         poni2=(cen_x + 0.5) * pixel, rot1=0.0, rot2=0.0, rot3=0.0,
                         wavelength=1e-10, pixel_size=pixel, shape=scan.frame_shape)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
