"""``xrsmap-dask info``: what an input (frames, shape, dtype, metadata, files, bad
frames) or a zarr output (arrays, the job's attributes, completeness) holds."""
from __future__ import annotations

import json
import os

from ..errors import InputError
from ..settings.options import STATS, read_options


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
         "bad_frames": [list(b) for b in ims.bad_frames]}
    if spec.kind in ("hdf5", "nexus") and len(spec.paths) == 1:
        from ..io.h5info import describe_hdf5

        d["hdf5"] = describe_hdf5(spec.paths[0] + (f":{spec.dataset}" if spec.dataset else ""))
    names = ims.filenames
    if names:
        d["files"] = len(dict.fromkeys(names))
        d["first_file"], d["last_file"] = names[0], names[-1]
    return d


def describe_zarr(path: str) -> dict:
    """JSON-able description of a zarr map group or survey store."""
    import zarr

    from ..layout import decode_attrs

    try:
        group = zarr.open_group(store=path, mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"not a zarr group: {exc}", path=path) from None
    attrs = decode_attrs(dict(group.attrs))
    arrays = {name: {"shape": list(a.shape), "dtype": str(a.dtype)}
              for name, a in group.arrays()}
    d: dict = {"path": path, "arrays": arrays}
    keep = ("complete", "nframes", "binning", "roi", "rings", "radial", "scan", "scan_axes",
            "unfilled_points", "on_error", "scan_name", "stats", "date", "xrsmap_dask_version",
            "first_file", "last_file")
    d["attrs"] = {k: attrs[k] for k in keep if k in attrs}
    if "bad_frames" in attrs:
        d["bad_frames"] = attrs["bad_frames"]
    if "chunk_done" in arrays:
        import numpy as np

        done = np.asarray(group["chunk_done"][...])
        d["chunks_done"] = f"{int(done.sum())}/{done.size}"
    subs = {}
    for name, sub in sorted(group.groups(), key=lambda kv: kv[0]):
        sattrs = decode_attrs(dict(sub.attrs))
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


def info(args) -> int:
    """The ``info`` command."""
    from .. import imageseries
    from ..inputs import open_inputs, resolve_inputs
    from .commands import settings_values

    if args.formats:
        fmts = imageseries.formats()
        if args.json:
            print(json.dumps({k: {"open": True, "write": e.can_write,
                                  "description": e.description} for k, e in fmts.items()}))
        else:
            for k, e in fmts.items():
                print(f"{k:12s} open {'write' if e.can_write else '     '} {e.description}")
        return 0
    if not args.inputs:
        raise InputError("give an input (files, glob, file.h5:/data, a .zarr output) or "
                         "--formats", argument="inputs")
    first = args.inputs[0].rstrip("/")
    if len(args.inputs) == 1 and os.path.isdir(first) and \
            os.path.exists(os.path.join(first, "zarr.json")) and \
            not os.path.exists(os.path.join(first, "images")):
        d = describe_zarr(first)
    else:
        values = settings_values(args, STATS)
        spec = resolve_inputs(args.inputs, options=read_options(values))
        on_error = values["on_error"]
        d = describe_input(open_inputs(spec, on_error=on_error), spec)
    if args.json:
        print(json.dumps(d, indent=1, default=str))
    else:
        hdf5 = d.pop("hdf5", None)
        _print_description(d)
        if hdf5 is not None:
            from ..io.h5info import format_description

            print("hdf5:")
            for line in format_description(hdf5):
                print(f"  {line}")
    return 0
