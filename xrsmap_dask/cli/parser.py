"""The command line's parser.  Options that are job settings come from the option table
(:data:`xrsmap_dask.settings.OPTIONS`): their flags, help and defaults are declared there
once and parsed by the same functions as job specs and ``Mapper``; this module adds the
commands, their inputs and outputs, and the scheduler options.
"""
from __future__ import annotations

import argparse

from ..settings import options_for
from ..settings.options import MAPS, STATS
from .commands import (cmd_convert, cmd_export, cmd_info, cmd_maps, cmd_preview, cmd_run,
                       cmd_stats, cmd_verify)

PROG = "xrsmap-dask"

MAIN_EPILOG = """\
examples (demo data: `make demo` writes demo_output/scan, 21 x 25 frames of 256 x 256):
  xrsmap-dask info 'demo_output/scan/scan_*.edf'
  xrsmap-dask composite 'demo_output/scan/scan_*.edf' --npt-y 21 --npt-x 25 \\
      --roi 64 64 191 191 --binning 8 --mask demo_output/scan/mask.edf \\
      -o demo_output/cli/maps.zarr --preview demo_output/cli/maps.png
  xrsmap-dask annulus 'demo_output/scan/scan_*.edf' --npt-y 21 --npt-x 25 \\
      --cen-y 120.32 --cen-x 135.68 --radius 46.08 79.36 --width 4 -o demo_output/cli/rings.zarr
  xrsmap-dask radial 'demo_output/scan/scan_*.edf' --npt-y 21 --npt-x 25 \\
      --poni demo_output/scan/geometry.poni --radial-bins 100 -o demo_output/cli/radial.nxs
  xrsmap-dask stats 'demo_output/scan/scan_*.edf' --stat median -o demo_output/cli/median.edf
  xrsmap-dask convert 'demo_output/scan/scan_*.edf' -o demo_output/scan.h5 --format hdf5 \\
      --path /imageseries
  xrsmap-dask run survey.yaml --scheduler local --workers 4
  xrsmap-dask preview demo_output/maps.zarr -o demo_output/cli/maps.png --log on
  xrsmap-dask export demo_output/maps.zarr demo_output/cli/maps_export.nxs

inputs: a glob (quote it), several files, @list.txt (one path per line),
file.h5:/path/to/dataset, store.zarr:/group, or an imageseries file (YAML, npz, fch5, h5).
exit codes: 0 ok, 1 error while running (or a failed scan), 2 bad usage or input,
130 interrupted.  Run 'xrsmap-dask COMMAND --help' for each command's options.
"""


# -- argument parsing -----------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """A usage error is one line naming the command and what is wrong (exit 2), not the
    whole usage: ``COMMAND --help`` shows that."""

    def error(self, message: str):
        if "required: INPUT" in message:
            message += (" (an option taking several values, such as --invalid or --radius, "
                        "swallows what follows it: put it after the inputs)")
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


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
    g.add_argument("--lifetime", default=None, metavar="DURATION|none",
                   help="slurm/pbs: worker --lifetime, e.g. 55m (default: from --walltime, so "
                        "workers retire before the batch system kills them)")
    g.add_argument("--lifetime-stagger", default=None, metavar="DURATION",
                   help="slurm/pbs: worker --lifetime-stagger (default: from the lifetime)")
    g.add_argument("--worker-memory-fraction", type=float, default=None, metavar="F",
                   help="slurm/pbs: worker memory limits add up to F of the job's memory "
                        "(default 0.9: headroom before the batch system's OOM killer)")
    g.add_argument("--tls", choices=("auto", "on", "off"), default=None,
                   help="TLS for clusters we start (default auto: on when listening beyond "
                        "127.0.0.1)")
    o = p.add_argument_group("output")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
    o.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def _input_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="glob, files, @list.txt, file.h5:/dataset or an imageseries file")
    return p


#: option-table sections and the help group titles their options go under
GROUP_TITLES = {"corrections": "corrections (xrsmap order: dark, flat, background, mask, norm)"}
#: options shown under "detector geometry" / "scan coordinates" (the table has no section)
GEOMETRY = ("poni", "unit", "cen_y", "cen_x", "radial_bins", "radial_range", "chi",
            "solid_angle", "polarization")
COORDINATES = ("step", "origin", "position_units", "motor_positions")


def _group_title(opt) -> str:
    if opt.name in GEOMETRY:
        return "detector geometry: rings and radial bins in pixels or in a PONI file's units"
    if opt.name in COORDINATES:
        return "scan coordinates of the outputs (y, x)"
    return GROUP_TITLES.get(opt.section, "settings")


def add_settings(parser: argparse.ArgumentParser, face: str, exclude=(),
                 required=()) -> None:
    """Add the option table's options of ``face`` (except ``exclude``) to ``parser``,
    grouped by section.  Values stay strings (``default=SUPPRESS``: only given options
    appear); :func:`xrsmap_dask.cli.commands.settings_values` parses them."""
    groups: dict = {}
    for opt in options_for(face):
        if not opt.flags or opt.name in exclude:
            continue
        title = _group_title(opt)
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        text = opt.flag_help or opt.help
        if not any(opt.default is v for v in (None, False, True)) and opt.default != () \
                and "action" not in opt.cli:
            text += f" (default: {opt.default})"
        extra = dict(opt.cli)
        choices = extra.pop("choices", None)
        if choices:  # shown in the help; checked by the option's parse function
            extra.setdefault("metavar", "{" + ",".join(choices) + "}")
        group.add_argument(*opt.flags, dest=opt.name, default=argparse.SUPPRESS, help=text,
                           required=opt.name in required, **extra)


def add_log_option(g) -> None:
    g.add_argument("--log", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                   help="colour scale of the preview: auto (log only for positive data "
                        "spanning two decades), on or off (--log alone: on)")


def _maps_parent(exclude=(), required=()) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("-o", "--output", required=True,
                   help="zarr group to write (maps.zarr); a NeXus file (maps.nxs, .h5, "
                        ".hdf5, .nx5) is exported from the zarr working group maps.nxs.zarr "
                        "beside it once complete")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a complete (or different) output instead of skipping it")
    g.add_argument("--preview", default=None, metavar="PNG",
                   help="also write a PNG preview (masked pixels grey)")
    add_log_option(g)
    add_settings(p, MAPS, exclude=exclude, required=("npt_y", "npt_x") + tuple(required))
    return p


#: settings of what is reduced, not of how frames are read: ``convert`` and ``info`` take
#: frames as read, so only the reading options (``on_error``, ``missing_chunks``) apply
FRAMES_AS_READ = ("roi", "roi_origin", "mask", "detector_mask", "invalid")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Lazy, parallel maps from scanning X-ray diffraction frames (dask).",
        epilog=MAIN_EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sched, inputs = _scheduler_parent(), _input_parent()
    _add_map_commands(sub, inputs, sched)
    _add_frame_commands(sub, inputs, sched)
    _add_run_command(sub, sched)
    _add_view_commands(sub)
    return parser


def _add_map_commands(sub, inputs, sched) -> None:
    """``composite``, ``annulus``, ``radial``: one read pass, maps to zarr (or NeXus)."""
    maps = _maps_parent()
    rings_only = _maps_parent(exclude=("roi", "roi_origin", "binning", "composite"))
    radial_only = _maps_parent(exclude=("roi", "roi_origin", "binning", "composite"),
                               required=("radial_bins",))
    p = sub.add_parser(
        "composite", parents=[inputs, maps, sched], formatter_class=_Formatter,
        help="composite map (binned ROI per scan point) and ROI sum map, to zarr",
        description="Composite (npt_y, npt_x, fy, fx) and ROI-sum (npt_y, npt_x) maps, "
                    "written chunk by chunk to a zarr group (resumable).",
        epilog="example:\n  xrsmap-dask composite 'demo_output/scan/scan_*.edf' --npt-y 21 "
               "--npt-x 25 --roi 64 64 191 191 \\\n      --binning 8 --mask "
               "demo_output/scan/mask.edf -o demo_output/cli/maps.zarr --preview "
               "demo_output/cli/maps.png")
    p.set_defaults(func=cmd_maps, mode="composite")

    p = sub.add_parser(
        "annulus", parents=[inputs, rings_only, sched], formatter_class=_Formatter,
        help="annulus (ring) sum maps, to zarr",
        description="Sum of the pixels whose centre lies in each ring "
                    "(radius - width/2 <= d <= radius + width/2) per scan point.",
        epilog="example:\n  xrsmap-dask annulus 'demo_output/scan/scan_*.edf' --npt-y 21 "
               "--npt-x 25 \\\n      --cen-y 120.32 --cen-x 135.68 --radius 46.08 79.36 "
               "--width 4 -o demo_output/cli/rings.zarr")
    g = p.add_argument_group("rings (pixels around --cen-y/--cen-x, rows from the top; or "
                             "positions in --unit of --poni)")
    g.add_argument("--radius", nargs="+", required=True, help="radii (ring positions)")
    g.add_argument("--width", required=True, help="full ring width")
    p.set_defaults(func=cmd_maps, mode="annulus")

    p = sub.add_parser(
        "radial", parents=[inputs, radial_only, sched], formatter_class=_Formatter,
        help="radial-bin maps (1-D integration per scan point), to zarr or NeXus",
        description="Mean intensity in --radial-bins radial bins per scan point, map "
                    "'radial' (bin, y, x) with the bin centres and pixel counts, as pyFAI's "
                    "integrate1d without pixel splitting (one read of the frames).  The same "
                    "flags on 'composite' and 'annulus' add the radial map to their read.",
        epilog="examples:\n  xrsmap-dask radial 'demo_output/scan/scan_*.edf' --npt-y 21 "
               "--npt-x 25 \\\n      --poni demo_output/scan/geometry.poni --radial-bins 100 "
               "--mask demo_output/scan/mask.edf -o demo_output/cli/radial.nxs\n"
               "  xrsmap-dask radial 'demo_output/scan/scan_*.edf' --npt-y 21 --npt-x 25 "
               "\\\n      --cen-y 120.32 --cen-x 135.68 --radial-bins 60 --radial-range 0 "
               "150 -o demo_output/cli/radial_px.zarr")
    p.set_defaults(func=cmd_maps, mode="radial")


def _add_frame_commands(sub, inputs, sched) -> None:
    """``stats``, ``convert``, ``info``: statistics over frames, formats, what inputs hold."""
    on_error = argparse.ArgumentParser(add_help=False)
    add_settings(on_error, STATS, exclude=FRAMES_AS_READ)
    p = sub.add_parser(
        "stats", parents=[inputs, sched], formatter_class=_Formatter,
        help="pixel-wise median/percentile/max/min/mean over frames, to zarr or an image",
        description="Pixel-wise statistics over all frames (exact median/percentiles in "
                    "bounded memory).  OUTPUT ending in .zarr gets one array per statistic; "
                    "otherwise one statistic to an image file (.edf, .tif, .npy).",
        epilog="examples:\n  xrsmap-dask stats 'demo_output/scan/scan_*.edf' --stat median "
               "-o demo_output/cli/median.edf\n  xrsmap-dask stats 'demo_output/scan/scan_*.edf' "
               "--stat max mean --percentile 5 95 -o demo_output/cli/stats.zarr")
    p.add_argument("--stat", nargs="+", default=[], choices=("median", "max", "min", "mean"),
                   help="statistics to compute")
    p.add_argument("--percentile", nargs="+", default=[], metavar="Q",
                   help="percentiles in [0, 100]")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    add_settings(p, STATS)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser(
        "convert", parents=[inputs, on_error], formatter_class=_Formatter,
        help="convert frames between imageseries formats",
        description="Read any imageseries input and write it with imageseries.write.",
        epilog="examples:\n  xrsmap-dask convert 'demo_output/scan/scan_*.edf' -o "
               "demo_output/scan.h5 --format hdf5 --path /imageseries\n  xrsmap-dask convert "
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
    add_settings(p, STATS, exclude=FRAMES_AS_READ)
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_info, quiet=False)


def _add_run_command(sub, sched) -> None:
    """``run``: every scan of a survey job spec."""
    p = sub.add_parser(
        "run", parents=[sched], formatter_class=_Formatter,
        help="process every scan of a YAML job spec on one cluster",
        description="Validate the job spec, then process its scans on one cluster (several "
                    "at once on a distributed cluster), each to its own zarr group: complete "
                    "outputs are skipped, incomplete ones resumed.  A summary table (CSV + "
                    "markdown) is written as scans finish.",
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
    p.add_argument("--scans-in-flight", type=_positive_int, default=None, metavar="N",
                   help="scans computed at once (default: the job's scans_in_flight, else "
                        "the cluster's worker threads; 1 on threads/processes)")
    p.set_defaults(func=cmd_run)


def _add_view_commands(sub) -> None:
    """``preview``, ``export``, ``verify``: what is in an output, and whether it is whole."""
    p = sub.add_parser(
        "preview", formatter_class=_Formatter,
        help="PNG preview of a zarr map group",
        description="Sum map, annulus maps and a downsampled composite mosaic with colour "
                    "bars, axes in scan points.",
        epilog="examples:\n  xrsmap-dask preview demo_output/maps.zarr -o demo_output/cli/maps.png "
               "--mask demo_output/scan/mask.edf\n  xrsmap-dask preview demo_output/stats.zarr "
               "-o demo_output/cli/stats.png --log on")
    p.add_argument("group", metavar="MAPS.zarr", help="a map group (survey: store.zarr/SCAN)")
    p.add_argument("-o", "--output", required=True, metavar="PNG")
    add_log_option(p)
    p.add_argument("--mask", default=None, metavar="FILE",
                   help="detector mask (nonzero = excluded): masked pixels grey in images "
                        "and composites")
    p.add_argument("--dpi", type=_positive_int, default=100)
    p.add_argument("--max-side", type=_positive_int, default=1024,
                   help="largest side of the composite mosaic, pixels")
    p.add_argument("--cmap", default="viridis")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser(
        "export", formatter_class=_Formatter,
        help="NeXus/HDF5 file from a complete zarr output (silx, PyMca, h5py)",
        description="Copy the maps of a complete zarr map group (or every complete scan of "
                    "a survey store, one NXentry each) into a NeXus file: NXdata with "
                    "signal, axes and units, the job in an NXprocess.",
        epilog="example:\n  xrsmap-dask export demo_output/maps.zarr "
               "demo_output/cli/maps_export.nxs")
    p.add_argument("group", metavar="MAPS.zarr", help="a map group or a survey store")
    p.add_argument("nexus", metavar="MAPS.nxs", help="NeXus file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "verify", formatter_class=_Formatter,
        help="check that outputs are whole: complete, every chunk present and unchanged",
        description="Check every xrsmap-dask output at or below OUTPUT (a map or statistics "
                    "group, or a survey store) without its inputs: complete, every array "
                    "there, every chunk present with the checksum recorded when it was "
                    "written.  Exit 0 when all are whole, 1 otherwise (a rerun of the job "
                    "redoes exactly the damaged chunks).",
        epilog="example:\n  xrsmap-dask verify demo_output/maps.zarr")
    p.add_argument("output", metavar="OUTPUT")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_verify)


