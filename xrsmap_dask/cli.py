"""The ``xrsmap-dask`` command line.

Subcommands: ``composite``, ``annulus``, ``stats``, ``convert``, ``info``, ``run``,
``preview``.  Every one that computes accepts the scheduler options (``--scheduler
threads|processes|pathos|local|slurm|pbs|ADDRESS|SCHEDULER_FILE``, ``--workers``, ...), shows
a progress bar on stderr (``--quiet`` for none) and exits with 0 (success), 1 (an error while
running, or a scan of a job failed) or 2 (bad usage or bad input: one clear line, no
traceback; ``--debug`` shows it).  SIGTERM (batch time limit, ``scancel``) stops like Ctrl-C:
chunks already written are kept and a rerun resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from typing import Sequence

from .errors import InputError

PROG = "xrsmap-dask"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

MAIN_EPILOG = """\
examples (demo data: `make demo` writes demo_output/scan, 21 x 25 frames of 256 x 256):
  xrsmap-dask info 'demo_output/scan/scan_*.edf'
  xrsmap-dask composite 'demo_output/scan/scan_*.edf' --npt-y 21 --npt-x 25 \\
      --roi 64 64 191 191 --binning 8 --mask demo_output/scan/mask.edf \\
      -o demo_output/maps.zarr --preview demo_output/maps.png
  xrsmap-dask annulus 'demo_output/scan/scan_*.edf' --npt-y 21 --npt-x 25 \\
      --cen-y 120.32 --cen-x 135.68 --radius 46.08 79.36 --width 4 -o demo_output/rings.zarr
  xrsmap-dask stats 'demo_output/scan/scan_*.edf' --stat median -o demo_output/median.edf
  xrsmap-dask convert 'demo_output/scan/scan_*.edf' -o demo_output/scan.h5 --format hdf5
  xrsmap-dask run survey.yaml --scheduler local --workers 4
  xrsmap-dask preview demo_output/maps.zarr -o demo_output/maps.png --log

inputs: a glob (quote it), several files, @list.txt (one path per line),
file.h5:/path/to/dataset, store.zarr:/group, or an imageseries file (YAML, npz, fch5, h5).
exit codes: 0 ok, 1 error while running (or a failed scan), 2 bad usage or input,
130 interrupted.  Run 'xrsmap-dask COMMAND --help' for each command's options.
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM received: stop like Ctrl-C (clusters released, written chunks kept)."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by deploy scripts
    raise Terminated()


# -- argument parsing -----------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw epilog (examples keep their lines); ``(default: X)`` only for real defaults."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and \
                "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _int_at_least(minimum: int):
    """argparse type: an int >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an int: {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _fpc(text: str):
    return text if text == "auto" else _positive_int(text)


def _scheduler_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("where it runs")
    g.add_argument("--scheduler", default=None, metavar="KIND|ADDRESS|FILE",
                   help="threads (default), processes, pathos, local (a LocalCluster), "
                        "slurm, pbs (dask-jobqueue), a scheduler address tcp://host:8786 or "
                        "a scheduler file (*.json)")
    g.add_argument("--workers", type=_positive_int, default=None,
                   help="threads / processes / workers (slurm, pbs: total workers)")
    g.add_argument("--threads-per-worker", type=_positive_int, default=None)
    g.add_argument("--cores", type=_positive_int, default=None, help="slurm/pbs: per job")
    g.add_argument("--memory", default=None, help="slurm/pbs: per job, e.g. 64GiB")
    g.add_argument("--walltime", default=None, help="slurm/pbs: HH:MM:SS")
    g.add_argument("--queue", default=None, help="slurm partition / pbs queue")
    g.add_argument("--account", default=None, help="slurm/pbs account")
    g.add_argument("--adaptive-min", type=_nonneg_int, default=None,
                   help="adaptive scaling: minimum jobs (slurm/pbs) or workers (local)")
    g.add_argument("--adaptive-max", type=_nonneg_int, default=None,
                   help="adaptive scaling: maximum jobs (slurm/pbs) or workers (local)")
    g.add_argument("--dashboard", default=None, metavar="ADDRESS|none",
                   help="dashboard bind address of a cluster we start (default "
                        "127.0.0.1:8787; 'none' for no dashboard)")
    g.add_argument("--host", default=None,
                   help="interface a local cluster / jobqueue scheduler binds to (default "
                        "127.0.0.1 for local)")
    g.add_argument("--interface", default=None, help="slurm/pbs network interface, e.g. ib0")
    g.add_argument("--job-directive", action="append", default=None, metavar="DIRECTIVE",
                   help="slurm/pbs: extra #SBATCH/#PBS directive (repeatable)")
    o = p.add_argument_group("output")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
    o.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def _input_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="glob, files, @list.txt, file.h5:/dataset or an imageseries file")
    p.add_argument("--on-error", choices=("raise", "fill"), default="raise",
                   help="unreadable frame: stop with an error, or fill it with NaN and list it")
    return p


def _maps_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("scan and output")
    g.add_argument("--npt-y", type=_positive_int, required=True,
                   help="scan points along y (map rows, slow axis)")
    g.add_argument("--npt-x", type=_positive_int, required=True,
                   help="scan points along x (map columns, fast axis)")
    g.add_argument("--scan-order", choices=("raster", "snake", "column"), default="raster")
    g.add_argument("--allow-incomplete", action="store_true",
                   help="accept fewer frames than scan points (an interrupted scan): the "
                        "points no frame reaches are NaN")
    g.add_argument("-o", "--output", required=True, help="zarr group to write (e.g. maps.zarr)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a complete (or different) output instead of skipping it")
    g.add_argument("--frames-per-chunk", type=_fpc, default="auto",
                   help="frames read by one task ('auto': about 32 MiB)")
    g.add_argument("--preview", default=None, metavar="PNG", help="also write a PNG preview")
    g.add_argument("--log", action="store_true", help="log colour scale in the preview")
    c = p.add_argument_group("corrections (xrsmap order: dark, flat, background, mask, norm)")
    c.add_argument("--mask", default=None, help="image, nonzero = pixel excluded")
    c.add_argument("--dark", default=None, help="image subtracted first")
    c.add_argument("--flat", default=None, help="image divided next")
    c.add_argument("--background", nargs="+", default=None, metavar="FILE",
                   help="background frames (their mean is subtracted, or see "
                        "--background-method)")
    c.add_argument("--background-method", choices=("mean", "median", "percentile"),
                   default="mean", help="how the background frames are combined (exact)")
    c.add_argument("--background-pct", type=float, default=None, metavar="Q",
                   help="with --background-method percentile: Q in [0, 100]")
    c.add_argument("--norm", default=None, help=".npy or text file: one value per frame")
    c.add_argument("--dummy", type=float, default=0.0,
                   help="composite value of masked pixels and unreadable frames")
    return p


def build_parser() -> argparse.ArgumentParser:
    sched = _scheduler_parent()
    inputs = _input_parent()
    maps = _maps_parent()
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Lazy, parallel maps from scanning X-ray diffraction frames (dask).",
        epilog=MAIN_EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "composite", parents=[inputs, maps, sched], formatter_class=_Formatter,
        help="composite map (binned ROI per scan point) and ROI sum map, to zarr",
        description="Composite (npt_y, npt_x, fy, fx) and ROI-sum (npt_y, npt_x) maps, "
                    "written chunk by chunk to a zarr group (resumable).",
        epilog="example:\n  xrsmap-dask composite 'demo_output/scan/scan_*.edf' --npt-y 21 "
               "--npt-x 25 --roi 64 64 191 191 \\\n      --binning 8 --mask "
               "demo_output/scan/mask.edf -o demo_output/maps.zarr --preview "
               "demo_output/maps.png")
    p.add_argument("--roi", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), default=None,
                   help="xrsmap ROI, bounds inclusive, rows from the top (default: whole "
                        "frame)")
    p.add_argument("--roi-origin", choices=("upper", "lower"), default="upper",
                   help="'lower': Y counted from the bottom row (fabio's legacy convention)")
    p.add_argument("--binning", type=_positive_int, default=1,
                   help="sum of b x b blocks; must divide the ROI")
    p.add_argument("--no-composite", action="store_true", help="only the ROI sum map")
    p.set_defaults(func=cmd_maps, mode="composite")

    p = sub.add_parser(
        "annulus", parents=[inputs, maps, sched], formatter_class=_Formatter,
        help="annulus (ring) sum maps, to zarr",
        description="Sum of the pixels whose centre lies in each ring "
                    "(radius - width/2 <= d <= radius + width/2) per scan point.",
        epilog="example:\n  xrsmap-dask annulus 'demo_output/scan/scan_*.edf' --npt-y 21 "
               "--npt-x 25 \\\n      --cen-y 120.32 --cen-x 135.68 --radius 46.08 79.36 "
               "--width 4 -o demo_output/rings.zarr")
    p.add_argument("--cen-y", type=float, required=True, help="ring centre row (pixels)")
    p.add_argument("--cen-x", type=float, required=True, help="ring centre column (pixels)")
    p.add_argument("--radius", type=float, nargs="+", required=True, help="radii (pixels)")
    p.add_argument("--width", type=float, required=True, help="full ring width (pixels)")
    p.set_defaults(func=cmd_maps, mode="annulus")

    p = sub.add_parser(
        "stats", parents=[inputs, sched], formatter_class=_Formatter,
        help="pixel-wise median/percentile/max/min/mean over frames, to zarr or an image",
        description="Pixel-wise statistics over all frames (exact median/percentiles in "
                    "bounded memory).  OUTPUT ending in .zarr gets one array per statistic; "
                    "otherwise one statistic to an image file (.edf, .tif, .npy).",
        epilog="examples:\n  xrsmap-dask stats 'demo_output/scan/scan_*.edf' --stat median "
               "-o demo_output/median.edf\n  xrsmap-dask stats 'demo_output/scan/scan_*.edf' "
               "--stat max mean --percentile 5 95 -o demo_output/stats.zarr")
    p.add_argument("--stat", nargs="+", default=[], choices=("median", "max", "min", "mean"),
                   help="statistics to compute")
    p.add_argument("--percentile", type=float, nargs="+", default=[], metavar="Q",
                   help="percentiles in [0, 100]")
    p.add_argument("--roi", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), default=None,
                   help="only this region (xrsmap ROI, inclusive)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser(
        "convert", parents=[inputs], formatter_class=_Formatter,
        help="convert frames between imageseries formats",
        description="Read any imageseries input and write it with imageseries.write.",
        epilog="examples:\n  xrsmap-dask convert 'demo_output/scan/scan_*.edf' -o "
               "demo_output/scan.h5 --format hdf5\n  xrsmap-dask convert "
               "demo_output/scan.h5:/imageseries/images -o demo_output/scan.npz "
               "--format frame-cache --threshold 30")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--format", required=True,
                   help="hdf5, frame-cache, zarr, ... (see 'xrsmap-dask info --formats')")
    p.add_argument("--path", default=None, help="hdf5/zarr: group to write into")
    p.add_argument("--threshold", type=float, default=None, help="frame-cache threshold")
    p.add_argument("--style", default=None, help="frame-cache style: npz, yml, fch5")
    p.add_argument("--gzip", type=int, default=None, help="hdf5 gzip level 0-9")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "info", formatter_class=_Formatter,
        help="what a file set or a zarr output holds",
        description="Frames, shape, dtype and metadata of an input; arrays, attrs and "
                    "completeness of a zarr output (a map group or a survey store).",
        epilog="examples:\n  xrsmap-dask info 'demo_output/scan/scan_*.edf'\n"
               "  xrsmap-dask info demo_output/maps.zarr\n  xrsmap-dask info --formats")
    p.add_argument("inputs", nargs="*", metavar="INPUT")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--formats", action="store_true", help="list the imageseries formats")
    p.add_argument("--on-error", choices=("raise", "fill"), default="raise")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_info, quiet=False)

    p = sub.add_parser(
        "run", parents=[sched], formatter_class=_Formatter,
        help="process every scan of a YAML job spec on one cluster",
        description="Validate the job spec, then process its scans one after the other on one "
                    "cluster, each to its own zarr group: complete outputs are skipped, "
                    "incomplete ones resumed.  A summary table (CSV + markdown) is written.",
        epilog="examples:\n  xrsmap-dask run survey.yaml\n  xrsmap-dask run survey.yaml "
               "--scheduler local --workers 4\n  xrsmap-dask run survey.yaml --scheduler "
               "slurm --cores 32 --memory 120GiB --walltime 02:00:00 --adaptive-max 10\n"
               "  xrsmap-dask run survey.yaml --check   # validate only")
    p.add_argument("job", metavar="JOB.yaml")
    p.add_argument("--overwrite", action="store_true", help="recompute complete outputs")
    p.add_argument("--summary", default=None, help="summary CSV (default: from the spec)")
    p.add_argument("--stop-on-error", action="store_true",
                   help="stop at the first failed scan (default: run the others)")
    p.add_argument("--check", action="store_true", help="validate the spec and inputs only")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "preview", formatter_class=_Formatter,
        help="PNG preview of a zarr map group",
        description="Sum map, annulus maps and a downsampled composite mosaic with colour "
                    "bars, axes in scan points.",
        epilog="example:\n  xrsmap-dask preview demo_output/maps.zarr -o demo_output/maps.png "
               "--log")
    p.add_argument("group", metavar="MAPS.zarr", help="a map group (survey: store.zarr/SCAN)")
    p.add_argument("-o", "--output", required=True, metavar="PNG")
    p.add_argument("--log", action="store_true", help="logarithmic colour scale")
    p.add_argument("--dpi", type=_positive_int, default=100)
    p.add_argument("--max-side", type=_positive_int, default=1024,
                   help="largest side of the composite mosaic, pixels")
    p.add_argument("--cmap", default="viridis")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_preview)
    return parser


# -- helpers ---------------------------------------------------------------------------------
def execution_spec(args, defaults: dict | None = None):
    """ExecutionSpec from the scheduler options (over ``defaults``, e.g. a job's ``cluster:``)."""
    from .cluster import spec_from_options

    cli = {"scheduler": args.scheduler, "n_workers": args.workers,
           "threads_per_worker": args.threads_per_worker, "cores": args.cores,
           "memory": args.memory, "walltime": args.walltime, "queue": args.queue,
           "account": args.account, "adaptive_min": args.adaptive_min,
           "adaptive_max": args.adaptive_max, "host": args.host, "interface": args.interface,
           "job_directives": tuple(args.job_directive) if args.job_directive else None}
    if args.dashboard is not None:
        cli["dashboard"] = False if args.dashboard.lower() in ("none", "off", "false", "no") \
            else args.dashboard
    return spec_from_options(defaults or {}, {k: v for k, v in cli.items() if v is not None})


def _say(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr, flush=True)


def _xrsmap_roi_slices(roi, shape, origin="upper"):
    from .roi import xrsmap_roi_to_slices

    return xrsmap_roi_to_slices(roi, shape, origin) if roi is not None else None


# -- commands --------------------------------------------------------------------------------
def cmd_maps(args) -> int:
    from .cluster import execution
    from .jobs import CorrectionFiles, ScanJob, resolve_inputs, run_scan
    from .maps import rings as make_rings

    inputs = resolve_inputs(args.inputs, allow_missing=args.on_error == "fill")

    def existing(flag: str):
        value = getattr(args, flag)
        if value is None:
            return None
        full = os.path.abspath(value)
        if not os.path.exists(full):
            raise InputError("file not found", path=full, argument=f"--{flag}")
        return full

    background = ()
    if args.background:
        background = resolve_inputs(args.background, argument="--background").paths
    method, pct = args.background_method, args.background_pct
    if (method == "percentile") != (pct is not None) or \
            (pct is not None and not 0 <= pct <= 100):
        raise InputError("give Q in [0, 100] with --background-method percentile, and only "
                         f"then (got {pct})", argument="--background-pct")
    if method != "mean" and not background:
        raise InputError(f"the {method} of which frames? give --background FILE...",
                         argument="--background-method")
    corr = CorrectionFiles(mask=existing("mask"), dark=existing("dark"),
                           flat=existing("flat"), background=background,
                           background_method=method, background_pct=pct,
                           norm=existing("norm"), dummy=args.dummy)
    out = os.path.abspath(args.output).rstrip(os.sep)
    common = dict(name=os.path.basename(out), inputs=inputs, npt_y=args.npt_y,
                  npt_x=args.npt_x, output=os.path.dirname(out), group=os.path.basename(out),
                  scan_order=args.scan_order, allow_incomplete=args.allow_incomplete,
                  corrections=corr, on_error=args.on_error,
                  frames_per_chunk=args.frames_per_chunk)
    if args.mode == "composite":
        if args.roi is not None:
            x0, y0, x1, y1 = args.roi
            if x1 < x0 or y1 < y0:
                raise InputError(f"x1 < x0 or y1 < y0 in {args.roi}", argument="--roi")
            from .maps import check_binning

            check_binning((y1 - y0 + 1, x1 - x0 + 1), args.binning, argument="--binning")
        job = ScanJob(roi=tuple(args.roi) if args.roi else None, roi_origin=args.roi_origin,
                      binning=args.binning, composite=not args.no_composite, roi_sum=True,
                      **common)
    else:
        job = ScanJob(rings=make_rings(args.cen_y, args.cen_x, args.radius, args.width),
                      composite=False, roi_sum=False, **common)
    with execution(execution_spec(args), quiet=args.quiet) as ex:
        result = run_scan(job, ex, overwrite=args.overwrite)
    _say(args, f"{result.status}: {result.frames} frames, {result.bad_frames} bad, "
               f"{result.seconds:.1f} s -> {result.output}"
               + (f" ({result.retries} tasks retried)" if result.retries else ""))
    if result.status == "skipped":
        _say(args, "the output was already complete; --overwrite recomputes it")
    if args.preview:
        from .preview import preview_zarr

        size = preview_zarr(result.output, args.preview, log=args.log)
        _say(args, f"preview: {args.preview} ({size[0]} x {size[1]} px)")
    return EXIT_OK


def cmd_stats(args) -> int:
    import numpy as np

    from . import stats as lazy_stats
    from .cluster import execution
    from .jobs import open_inputs, resolve_inputs

    names = list(dict.fromkeys(args.stat))
    qs = list(dict.fromkeys(args.percentile))
    for q in qs:
        if not 0 <= q <= 100:
            raise InputError(f"must be in [0, 100], got {q:g}", argument="--percentile")
    if not names and not qs:
        raise InputError("give --stat and/or --percentile", argument="--stat")
    labels = names + [lazy_stats.stat_label("percentile", q) for q in qs]
    out = args.output
    to_zarr = out.rstrip("/").lower().endswith(".zarr")
    if not to_zarr and len(labels) != 1:
        raise InputError(f"an image file holds one statistic, got {len(labels)} "
                         f"({', '.join(labels)}); write to a .zarr for several",
                         argument="--output")
    if os.path.exists(out) and not args.overwrite:
        raise InputError("exists; pass --overwrite to replace it", path=out,
                         argument="--output")
    from .cluster import text_counter

    ims = open_inputs(resolve_inputs(args.inputs, allow_missing=args.on_error == "fill"),
                      on_error=args.on_error,
                      progress=text_counter("reading headers", quiet=args.quiet))
    roi = _xrsmap_roi_slices(args.roi, ims.shape)
    skipna = args.on_error == "fill"
    lazy = lazy_stats.lazy_stats(ims, names, qs, roi=roi, skipna=skipna)
    with execution(execution_spec(args), quiet=args.quiet) as ex:
        results = ex.compute(*lazy.values(), label=f"{', '.join(labels)} of {len(ims)} frames")
    if to_zarr:
        import shutil

        from .store import write_stats

        if os.path.exists(out):
            shutil.rmtree(out)
        write_stats(out, dict(zip(labels, results)),
                    {"nframes": len(ims), "roi": list(args.roi) if args.roi else None,
                     "bad_frames": [list(b) for b in getattr(ims, "bad_frames", [])]})
    else:
        write_image(out, np.asarray(results[0]))
    _say(args, f"wrote {', '.join(labels)} ({results[0].shape[0]} x {results[0].shape[1]}) "
               f"-> {out}")
    return EXIT_OK


def write_image(path: str, img) -> None:
    """Write one 2-D image: ``.npy`` (numpy), ``.edf``, ``.tif``/``.tiff`` (fabio)."""
    import numpy as np

    low = path.lower()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if low.endswith(".npy"):
        np.save(path, img, allow_pickle=False)
    elif low.endswith(".edf"):
        import fabio.edfimage

        fabio.edfimage.EdfImage(data=img).write(path)
    elif low.endswith((".tif", ".tiff")):
        import fabio.tifimage

        data = img.astype(np.float32) if img.dtype.kind == "f" else img
        fabio.tifimage.TifImage(data=data).write(path)
    else:
        raise InputError("unknown image type; use .zarr, .npy, .edf or .tif", path=path,
                         argument="--output")


class _ProgressSeries:
    """Wraps an ImageSeries so block and frame reads advance a text progress bar."""

    def __new__(cls, ims, bar):
        from .imageseries.base import BlockSource, ImageSeries

        class CountingBlock(BlockSource):
            def __init__(self, inner):
                self.inner = inner
                self.nframes = inner.nframes

            def read(self, roi):
                out = self.inner.read(roi)
                bar.update(len(out))
                return out

        class ProgressSeries(ImageSeries):
            def __init__(self):
                self._shape = ims.shape
                self._dtype = ims.dtype
                self._metadata = ims.metadata
                self.on_error = getattr(ims, "on_error", "raise")
                self.bad_frames = getattr(ims, "bad_frames", [])

            def __len__(self):
                return len(ims)

            def _read_region(self, j, rows, cols):
                out = ims._read_region(j, rows, cols)
                bar.update(1)
                return out

            def block_source(self, start, stop):
                return CountingBlock(ims.block_source(start, stop))

            def block_dtype(self):
                return ims.block_dtype()

            @property
            def token(self):
                return ims.token

            def __getattr__(self, name):
                return getattr(ims, name)

        return ProgressSeries()


class TextBar:
    """A minimal ``[#####     ] 50% 10/20 frames`` bar on a stream (frames may be re-read)."""

    def __init__(self, total: int, stream=None, label: str = "frames", quiet: bool = False):
        self.total, self.done, self.label = max(1, total), 0, label
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self._last = -1.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.quiet and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(40 * frac)
            self.stream.write(f"\r[{bar:<40}] | {int(100 * frac):3d}% {min(self.done, self.total)}"
                              f"/{self.total} {self.label} | {now - self.t0:.1f}s")
            self.stream.flush()

    def close(self) -> None:
        if not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


def cmd_convert(args) -> int:
    from . import imageseries
    from .jobs import open_inputs, resolve_inputs

    fmts = imageseries.formats()
    if args.format not in fmts or not fmts[args.format].can_write:
        writable = sorted(k for k, e in fmts.items() if e.can_write)
        raise InputError(f"cannot write {args.format!r}; writable formats: "
                         f"{', '.join(writable)}", argument="--format")
    out = args.output
    if os.path.exists(out) and not args.overwrite:
        raise InputError("exists; pass --overwrite to replace it", path=out,
                         argument="--output")
    from .cluster import text_counter

    ims = open_inputs(resolve_inputs(args.inputs), on_error=args.on_error,
                      progress=text_counter("reading headers", quiet=args.quiet))
    kw = {}
    for name in ("path", "threshold", "style", "gzip"):
        value = getattr(args, name)
        if value is not None:
            kw[name] = value
    if args.format == "frame-cache" and "threshold" not in kw:
        raise InputError("frame-cache needs --threshold (pixels above it are stored)",
                         argument="--threshold")
    if os.path.exists(out) and args.overwrite:
        import shutil

        shutil.rmtree(out) if os.path.isdir(out) else os.remove(out)
    bar = TextBar(len(ims), quiet=args.quiet)
    try:
        imageseries.write(_ProgressSeries(ims, bar), out, args.format, **kw)
    finally:
        bar.close()
    _say(args, f"wrote {len(ims)} frames ({ims.shape[0]} x {ims.shape[1]} {ims.dtype}) -> "
               f"{out} [{args.format}]")
    return EXIT_OK


def describe_input(ims, spec) -> dict:
    """JSON-able description of an opened input."""
    import numpy as np

    meta = {}
    for k, v in (ims.metadata or {}).items():
        meta[str(k)] = f"array {np.shape(v)} {np.asarray(v).dtype}" \
            if isinstance(v, np.ndarray) else v if isinstance(v, (int, float, str, bool)) \
            else str(v)
    d = {"kind": spec.kind, "source": spec.describe(), "frames": len(ims),
         "frame_shape": list(ims.shape), "dtype": str(ims.dtype), "metadata": meta,
         "bad_frames": [list(b) for b in getattr(ims, "bad_frames", [])]}
    names = getattr(ims, "filenames", None)
    if names:
        d["files"] = len(dict.fromkeys(names))
        d["first_file"], d["last_file"] = names[0], names[-1]
    return d


def describe_zarr(path: str) -> dict:
    """JSON-able description of a zarr map group or survey store."""
    import zarr

    try:
        group = zarr.open_group(store=path, mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"not a zarr group: {exc}", path=path) from None
    attrs = dict(group.attrs)
    arrays = {name: {"shape": list(a.shape), "dtype": str(a.dtype)}
              for name, a in group.arrays()}
    d: dict = {"path": path, "arrays": arrays}
    keep = ("complete", "nframes", "binning", "roi", "rings", "scan", "unfilled_points",
            "on_error", "scan_name", "stats", "date", "xrsmap_dask_version", "first_file",
            "last_file")
    d["attrs"] = {k: attrs[k] for k in keep if k in attrs}
    if "bad_frames" in attrs:
        d["bad_frames"] = attrs["bad_frames"]
    if "chunk_done" in arrays:
        import numpy as np

        done = np.asarray(group["chunk_done"][...])
        d["chunks_done"] = f"{int(done.sum())}/{done.size}"
    subs = {}
    for name, sub in sorted(group.groups(), key=lambda kv: kv[0]):
        sattrs = dict(sub.attrs)
        subs[name] = {"complete": sattrs.get("complete", False),
                      "arrays": sorted(n for n, _ in sub.arrays()),
                      "bad_frames": len(sattrs.get("bad_frames", []) or [])}
    if subs:
        d["groups"] = subs
    return d


def _print_description(d: dict, indent: int = 0) -> None:
    pad = " " * indent
    for key, value in d.items():
        if isinstance(value, dict) and value:
            print(f"{pad}{key}:")
            _print_description(value, indent + 2)
        elif isinstance(value, list) and value and isinstance(value[0], (list, dict)):
            print(f"{pad}{key}: ({len(value)})")
            for item in value[:20]:
                print(f"{pad}  - {item}")
            if len(value) > 20:
                print(f"{pad}  ... {len(value) - 20} more")
        else:
            print(f"{pad}{key}: {value}")


def cmd_info(args) -> int:
    from . import imageseries
    from .jobs import open_inputs, resolve_inputs

    if args.formats:
        fmts = imageseries.formats()
        if args.json:
            print(json.dumps({k: {"open": True, "write": e.can_write,
                                  "description": e.description} for k, e in fmts.items()}))
        else:
            for k, e in fmts.items():
                print(f"{k:12s} open {'write' if e.can_write else '     '} {e.description}")
        return EXIT_OK
    if not args.inputs:
        raise InputError("give an input (files, glob, file.h5:/data, a .zarr output) or "
                         "--formats", argument="INPUT")
    first = args.inputs[0].rstrip("/")
    if len(args.inputs) == 1 and os.path.isdir(first) and \
            os.path.exists(os.path.join(first, "zarr.json")) and \
            not os.path.exists(os.path.join(first, "images")):
        d = describe_zarr(first)
    else:
        spec = resolve_inputs(args.inputs)
        d = describe_input(open_inputs(spec, on_error=args.on_error), spec)
    if args.json:
        print(json.dumps(d, indent=1, default=str))
    else:
        _print_description(d)
    return EXIT_OK


def cmd_run(args) -> int:
    from .cluster import execution
    from .jobs import build_scan_maps, format_table, load_job, run_survey

    job = load_job(args.job)
    if args.summary:
        from dataclasses import replace

        job = replace(job, summary=os.path.abspath(args.summary))
    spec = execution_spec(args, job.cluster)
    if args.check:
        for scan in job.scans:
            try:
                ims, _ = build_scan_maps(scan)
            except InputError as exc:
                raise InputError(f"scan {scan.name!r}: {exc}", path=job.path) from None
            _say(args, f"{scan.name}: ok ({len(ims)} frames, {scan.npt_y} x {scan.npt_x} "
                       f"points)")
        _say(args, f"{job.path}: {len(job.scans)} scans valid")
        return EXIT_OK
    _say(args, f"{job.path}: {len(job.scans)} scans on {spec.kind}"
               + (f" ({spec.address})" if spec.address else ""))
    with execution(spec, quiet=args.quiet) as ex:
        results = run_survey(job, ex, overwrite=args.overwrite,
                             keep_going=not args.stop_on_error)
    if not args.quiet:
        print(format_table(results), end="")
        _say(args, f"summary: {job.summary}")
    return EXIT_ERROR if any(r.status in ("failed", "not run") for r in results) else EXIT_OK


def cmd_preview(args) -> int:
    from .preview import preview_zarr

    size = preview_zarr(args.group, args.output, log=args.log, dpi=args.dpi,
                        max_mosaic_side=args.max_side, cmap=args.cmap)
    _say(args, f"preview: {args.output} ({size[0]} x {size[1]} px)")
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 bad usage/input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"{PROG}: {what}; chunks already written are kept, rerun to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one clear line, the traceback with --debug
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
