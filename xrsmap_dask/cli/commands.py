"""The commands: each a short adapter from parsed arguments to the settings objects and
the pipeline (:mod:`xrsmap_dask.pipeline`).  Job settings are parsed by the option table's
functions (:func:`settings_values`); errors name fields, which ``main`` relabels as flags.
"""
from __future__ import annotations

import os
import sys

from ..errors import InputError
from ..settings import Context, options_for, parse_values
from ..settings.options import MAPS, STATS, read_options

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: formats whose size is known before writing (frames stored as they are)
UNCOMPRESSED_FORMATS = ("raw-image", "image-files")


# -- helpers --------------------------------------------------------------------------------
def settings_values(args, face: str) -> dict:
    """Parse the option-table arguments given on the command line for ``face``."""
    raw = {o.name: getattr(args, o.name) for o in options_for(face) if hasattr(args, o.name)}
    return parse_values(raw, face, Context(os.getcwd()), from_text=True)


def execution_spec(args, defaults: dict | None = None):
    """ExecutionSpec from the scheduler options (over ``defaults``, e.g. a job's ``cluster:``)."""
    from ..cluster import spec_from_options

    cli = {"scheduler": args.scheduler, "n_workers": args.workers,
           "threads_per_worker": args.threads_per_worker, "cores": args.cores,
           "memory": args.memory, "walltime": args.walltime, "queue": args.queue,
           "account": args.account, "adaptive_min": args.adaptive_min,
           "adaptive_max": args.adaptive_max, "host": args.host, "interface": args.interface,
           "job_directives": tuple(args.job_directive) if args.job_directive else None,
           "lifetime": args.lifetime, "lifetime_stagger": args.lifetime_stagger,
           "worker_memory_fraction": args.worker_memory_fraction,
           "tls": {"on": True, "off": False}.get(args.tls)}
    if args.dashboard is not None:
        cli["dashboard"] = False if args.dashboard.lower() in ("none", "off", "false", "no") \
            else args.dashboard
    return spec_from_options(defaults or {}, {k: v for k, v in cli.items() if v is not None})


def say(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr, flush=True)


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text  # the settings parser names it


def _refuse_existing(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise InputError("exists; pass @{overwrite} to replace it", path=path,
                         argument="output")


# -- maps -------------------------------------------------------------------------------------
def _log(args):
    """The preview's ``log`` argument from ``--log {auto,on,off}``."""
    return {"auto": "auto", "on": True, "off": False}[getattr(args, "log", "auto") or "auto"]


def cmd_maps(args) -> int:
    """``composite``, ``annulus`` and ``radial``: one scan's maps to a zarr group (and a
    NeXus file when ``-o`` ends in .nxs/.h5/.hdf5/.nx5)."""
    from ..cluster import execution
    from ..inputs import resolve_inputs
    from ..pipeline import export_nexus, run_scan
    from ..settings import parse_rings, scan_job_from_values
    from ..settings.scan_job import scan_geometry
    from ..settings.specs import OutputSpec, nexus_output

    values = settings_values(args, MAPS)
    if args.mode == "annulus":
        values.update(composite=False, roi_sum=False, rings=parse_rings(
            {"radii": [_number(r) for r in args.radius], "width": _number(args.width)}))
    elif args.mode == "radial":
        if values.get("radial_bins") is None:
            raise InputError("the radial command needs @{radial_bins}", argument="radial_bins")
        values.update(composite=False, roi_sum=False)
    inputs = resolve_inputs(args.inputs, allow_missing=values["on_error"] == "fill",
                            options=read_options(values))
    zarr_path, nexus = nexus_output(args.output)
    out = OutputSpec.from_path(zarr_path)
    job = scan_job_from_values(values, name=out.group, inputs=inputs,
                               scan=scan_geometry(values), output=out.store, group=out.group,
                               nexus=nexus)
    if args.preview:
        from ..preview import check_png_output

        check_png_output(args.preview, argument="preview")
    with execution(execution_spec(args), quiet=args.quiet) as ex:
        result = run_scan(job, ex, overwrite=args.overwrite)
    say(args, f"{result.status}: {result.frames} frames, {result.bad_frames} bad, "
              f"{result.seconds:.1f} s -> {result.output}"
              + (f" ({result.retries} tasks retried)" if result.retries else ""))
    if result.status == "skipped":
        say(args, "the output was already complete; --overwrite recomputes it")
    for path in export_nexus([job], [result]):
        say(args, f"NeXus: {path}")
    if args.preview:
        from ..preview import preview_zarr

        mask = job.corrections.mask if isinstance(job.corrections.mask, str) else None
        size = preview_zarr(result.output, args.preview, log=_log(args), mask=mask)
        say(args, f"preview: {args.preview} ({size[0]} x {size[1]} px)")
    return EXIT_OK


# -- stats ------------------------------------------------------------------------------------
def cmd_stats(args) -> int:
    """``stats``: pixel-wise statistics to a zarr group or one image file."""
    from ..cluster import execution
    from ..inputs import resolve_inputs
    from ..pipeline import run_stats
    from ..settings import parse_stats, stats_job_from_values

    values = settings_values(args, STATS)
    wanted = list(args.stat)
    if args.percentile:
        wanted.append({"percentile": [_number(q) for q in args.percentile]})
    values["stats"] = parse_stats(wanted)
    inputs = resolve_inputs(args.inputs, allow_missing=values["on_error"] == "fill",
                            options=read_options(values))
    job = stats_job_from_values(values, inputs=inputs, output=os.path.abspath(args.output))
    to_zarr = job.output.rstrip("/").lower().endswith(".zarr")
    if not to_zarr and len(job.labels) != 1:
        raise InputError(f"an image file holds one statistic, got {len(job.labels)} "
                         f"({', '.join(job.labels)}); write to a .zarr for several",
                         argument="output")
    if not to_zarr:
        _refuse_existing(job.output, args.overwrite)
    with execution(execution_spec(args), quiet=args.quiet) as ex:
        ims, images = run_stats(job, ex, overwrite=args.overwrite)
    first = next(iter(images.values()))
    say(args, f"wrote {', '.join(images)} ({first.shape[0]} x {first.shape[1]}) -> "
              f"{args.output}")
    return EXIT_OK


# -- convert, info, run, preview --------------------------------------------------------------
def cmd_convert(args) -> int:
    """``convert``: any readable input to any writable imageseries format.  The output may
    not be or hold an input; with ``--overwrite`` an existing output is replaced only once
    the new one is whole."""
    from .. import imageseries
    from ..inputs import open_series, resolve_inputs
    from ..pipeline import input_paths, replace_output
    from ..progress import ProgressSeries, TextBar
    from ..store import check_output_path, check_writable

    values = settings_values(args, STATS)
    fmts = imageseries.formats()
    if args.format not in fmts or not fmts[args.format].can_write:
        writable = sorted(k for k, e in fmts.items() if e.can_write)
        raise InputError(f"cannot write {args.format!r}; writable formats: "
                         f"{', '.join(writable)}", argument="format")
    out = os.path.abspath(args.output)
    _refuse_existing(out, args.overwrite)
    spec = resolve_inputs(args.inputs, options=read_options(values))
    ims = open_series(spec, on_error=values["on_error"],
                      progress=_counter(args, "reading headers"))
    check_output_path(out, input_paths(spec, ims))
    check_writable(out, directory=args.format == "zarr")
    from ..store import check_free_space

    if args.format in UNCOMPRESSED_FORMATS or (args.format == "hdf5" and args.gzip == 0):
        # the size is known: refuse before writing anything
        check_free_space(out, len(ims) * ims.shape[0] * ims.shape[1] * ims.dtype.itemsize)

    def guard(nbytes: int) -> None:
        # before each block reaches the writer: room for it uncompressed (a writer that
        # meets a full disk mid-file can crash, HDF5 does), so a full disk stops cleanly
        check_free_space(out, nbytes)

    kw = {name: getattr(args, name) for name in ("path", "threshold", "style", "gzip")
          if getattr(args, name) is not None}
    if args.format == "frame-cache" and "threshold" not in kw:
        raise InputError("frame-cache needs @{threshold} (pixels above it are stored)",
                         argument="threshold")
    bar = TextBar(len(ims), quiet=args.quiet)
    try:
        replace_output(out, lambda path: imageseries.write(ProgressSeries(ims, bar, guard),
                                                           path, args.format, **kw))
    finally:
        bar.close()
    say(args, f"wrote {len(ims)} frames ({ims.shape[0]} x {ims.shape[1]} {ims.dtype}) -> "
              f"{out} [{args.format}]")
    return EXIT_OK


def cmd_verify(args) -> int:
    """``verify``: check outputs (every chunk present and unchanged since written,
    complete); exit 0 when all are whole, 1 otherwise."""
    from ..store import verify

    report = verify(args.output)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_ERROR


def _counter(args, label: str):
    from ..progress import text_counter

    return text_counter(label, quiet=args.quiet)


def cmd_info(args) -> int:
    """``info``: what an input or a zarr output holds; ``--formats``: the formats."""
    from .describe import info

    return info(args)


def cmd_run(args) -> int:
    """``run``: every scan of a YAML job spec."""
    from ..cluster import execution
    from ..jobs import check_scan, format_table, load_job, run_survey

    job = load_job(args.job)
    if args.summary:
        from dataclasses import replace

        job = replace(job, summary=os.path.abspath(args.summary))
    spec = execution_spec(args, job.cluster)
    if args.check:
        for scan in job.scans:
            ims = check_scan(scan)
            bad = list(ims.bad_frames)
            say(args, f"{scan.name}: ok ({len(ims)} frames, {scan.npt_y} x {scan.npt_x} "
                      f"points)" + (f"; {len(bad)} unreadable frame(s) will be NaN "
                                    f"(on_error: fill), first: frame {bad[0][0]}, "
                                    f"{bad[0][1]}: {bad[0][2]}" if bad else ""))
        say(args, f"{job.path}: {len(job.scans)} scans valid")
        return EXIT_OK
    say(args, f"{job.path}: {len(job.scans)} scans on {spec.kind}"
              + (f" ({spec.address})" if spec.address else ""))
    with execution(spec, quiet=args.quiet) as ex:
        results = run_survey(job, ex, overwrite=args.overwrite,
                             keep_going=not args.stop_on_error,
                             max_in_flight=args.scans_in_flight or job.scans_in_flight)
    if not args.quiet:
        print(format_table(results), end="")
        say(args, f"summary: {job.summary}")
    return EXIT_ERROR if any(r.status in ("failed", "not run") for r in results) else EXIT_OK


def cmd_preview(args) -> int:
    """``preview``: a PNG of a map or stats group."""
    from ..preview import preview_zarr

    size = preview_zarr(args.group, args.output, log=_log(args), dpi=args.dpi,
                        max_mosaic_side=args.max_side, cmap=args.cmap, mask=args.mask)
    say(args, f"preview: {args.output} ({size[0]} x {size[1]} px)")
    return EXIT_OK


def cmd_export(args) -> int:
    """``export``: a complete map group (or every complete scan of a survey store) to a
    NeXus file."""
    from ..nexus_export import export_entries
    from ..store import read_attrs

    attrs = read_attrs(args.group)
    if attrs is None:
        raise InputError("not a zarr group", path=args.group, argument="group")
    if attrs.get("output_kind", "maps") == "maps" and "xrsmap_dask_format" in attrs:
        entries = {"entry": args.group}
    else:
        subs = {name: os.path.join(args.group, name) for name in sorted(os.listdir(args.group))}
        entries = {name: path for name, path in subs.items()
                   if (read_attrs(path) or {}).get("complete") is True
                   and read_attrs(path).get("output_kind") == "maps"}
        if not entries:
            raise InputError("holds no complete map group (is it a map group or a survey "
                             "store?)", path=args.group, argument="group")
    path = export_entries(entries, args.nexus, overwrite=args.overwrite)
    say(args, f"exported {len(entries)} map group{'s' if len(entries) > 1 else ''} -> {path}")
    return EXIT_OK
