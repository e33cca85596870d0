"""A map job as an :class:`~xrsmap_dask.layout.OutputRequest`: what the store writes.

The identity (part of ``job_digest``: an output resumes only for the same identity) holds
the ROI, binning, frame shape, read box, rings, scan geometry, unfilled points, corrections
(with a digest of each array), the number of frames, a digest of the inputs (paths, sizes,
mtimes), ``on_error`` and the caller's extra attrs.  The chunk layout is not part of it: a
partial output written with another ``frames_per_chunk`` resumes in its own layout.
"""
from __future__ import annotations

import datetime

import numpy as np

from ..layout import (ArraySpec, OutputLayout, OutputRequest, bad_frame_list, inputs_digest,
                      jsonable)

INVALID_ARRAYS = ("invalid_pixels", "invalid_union")


def with_invalid_arrays(layout: OutputLayout, rule) -> OutputLayout:
    """``layout`` plus the invalid-pixel arrays when ``rule`` is active: the bookkeeping
    ``invalid_pixels`` ``(y, x)`` uint32 (pixels of the read box excluded in the frame of
    each point) and ``invalid_union`` ``(unit, field)`` int64 (each write unit's excluded
    positions: ``[count, digest, positions...]``, see :func:`~.exclusion.union_record`),
    and with radial bins the map ``radial_excluded`` ``(bin, y, x)`` uint32 (pixels of each
    bin excluded in the frame of each point: that frame's mean is over ``radial_count -
    radial_excluded`` pixels)."""
    from .exclusion import UNION_POSITIONS

    if rule is None or not rule.active:
        return layout
    points = layout.spec("frame_unreadable")
    n = layout.nunits
    arrays = layout.arrays + (
        ArraySpec("invalid_pixels", points.dims, points.shape, points.chunks, "uint32", 0,
                  attrs={"long_name": "pixels excluded by the invalid-pixel rule",
                         "units": "1",
                         "description": "pixels of the read box excluded by the invalid-"
                                        "pixel rule in this point's frame",
                         "rule": rule.description, "bookkeeping": 1}),
        ArraySpec("invalid_union", ("unit", "field"), (n, 2 + UNION_POSITIONS),
                  (1, 2 + UNION_POSITIONS), "int64", -1,
                  attrs={"description": "per write unit, the read-box pixels excluded in any "
                                        "of its frames: [count, digest, flat indices (at most "
                                        f"{UNION_POSITIONS}, else -1)]", "bookkeeping": 1}))
    names = {a.name for a in layout.arrays}
    if "radial" in names:
        radial = layout.spec("radial")
        arrays += (ArraySpec(
            "radial_excluded", radial.dims, radial.shape, radial.chunks, "uint32", 0,
            attrs={"long_name": "bin pixels excluded by the invalid-pixel rule in this "
                                "point's frame (its mean is over radial_count - "
                                "radial_excluded pixels)", "units": "1",
                   "rule": rule.description}),)
    units = tuple({**unit, "invalid_pixels": unit["frame_unreadable"],
                   "invalid_union": (slice(u, u + 1), slice(0, 2 + UNION_POSITIONS)),
                   **({"radial_excluded": unit["radial"]} if "radial" in unit else {})}
                  for u, unit in enumerate(layout.units))
    return OutputLayout(arrays, units)


def invalid_summary(maps, arrays: dict) -> dict:
    """The ``invalid`` attrs of a map output: the rule, the excluded values and counts.

    ``excluded_pixel_frames``: excluded pixels summed over all frames (pixels of the read
    box); ``frames_with_excluded``: frames holding at least one; ``excluded_per_frame``:
    ``[min, max]`` over the frames read; ``excluded_positions``: distinct pixel positions
    excluded in any frame, exact when every write unit excluded the same positions (static
    module gaps, dead pixels) or each unit few enough to list them (a few saturated
    pixels), else ``None`` with ``excluded_positions_range`` ``[at least, at most]``.
    """
    rule = maps.invalid_rule
    out = {"rule": "none", "excluded_values": []} if rule is None else rule.to_attrs()
    out.update(excluded_pixel_frames=0, frames_with_excluded=0, excluded_positions=0)
    if rule is None or not rule.active or "invalid_pixels" not in arrays:
        return out
    plan = maps.plan
    read = plan.point_to_frame >= 0
    counts = np.asarray(arrays["invalid_pixels"], dtype=np.int64)[read]
    out["excluded_pixel_frames"] = int(counts.sum())
    out["frames_with_excluded"] = int(np.count_nonzero(counts))
    out["excluded_per_frame"] = [int(counts.min()), int(counts.max())] if counts.size \
        else [0, 0]
    box = (plan.box[0].stop - plan.box[0].start) * (plan.box[1].stop - plan.box[1].start)
    out.update(_distinct_positions(np.asarray(arrays["invalid_union"], np.int64), box))
    return out


def _distinct_positions(rec: np.ndarray, box: int) -> dict:
    """``excluded_positions`` from the units' records (:func:`~.kernels.union_record`):
    exact when every unit listed its positions or all units excluded the same ones; else
    ``None`` and ``excluded_positions_range`` ``[at least, at most]``."""
    rec = rec[rec[:, 0] > 0]
    listed = rec[:, 0] <= rec.shape[1] - 2
    pos = rec[listed, 2:]
    known = np.unique(pos[pos >= 0])
    if listed.all():
        return {"excluded_positions": int(len(known))}
    big = rec[~listed]
    digests, first = np.unique(big[:, 1], return_index=True)
    if len(digests) == 1 and not len(known):
        return {"excluded_positions": int(big[0, 0])}
    return {"excluded_positions": None,
            "excluded_positions_range": [int(max(len(known), big[:, 0].max())),
                                         int(min(box, len(known) + big[first, 0].sum()))]}


def job_identity(maps, ims, extra: dict | None = None) -> dict:
    """JSON-able identity of a map job (see the module docstring)."""
    plan = maps.plan
    roi = plan.roi
    ident = {
        "roi": None if roi is None else {
            "rows": [roi[0].start, roi[0].stop], "cols": [roi[1].start, roi[1].stop],
            "convention": "numpy slices, rows from the top, stop exclusive",
            "xrsmap": [roi[1].start, roi[0].start, roi[1].stop - 1, roi[0].stop - 1]},
        "binning": plan.binning,
        "frame_shape": list(plan.frame_shape),
        "read_box": {"rows": [plan.box[0].start, plan.box[0].stop],
                     "cols": [plan.box[1].start, plan.box[1].stop]},
        "rings": [{"cen_y": r.cen_y, "cen_x": r.cen_x, "radius": r.radius, "width": r.width}
                  for r in plan.rings],
        "scan": plan.scan.to_attrs(),
        "unfilled_points": plan.unfilled,
        "corrections": maps.corrections.to_attrs(),
        "nframes": plan.nframes,
        "inputs_digest": inputs_digest(ims),
        "on_error": ims.on_error,
        "invalid_rule": None if maps.invalid_rule is None else maps.invalid_rule.to_attrs(),
    }
    if maps.spec.radial is not None:
        ident["radial"] = maps.spec.radial.to_attrs()
    if maps.axes is not None and maps.axes.given:
        ident["scan_axes"] = maps.axes.to_attrs()
    ident.update(extra or {})
    return jsonable(ident)


def descriptive_attrs(maps, ims) -> dict:
    """Attrs that describe but do not identify the job (layout, version, files)."""
    from .. import __version__

    plan = maps.plan
    attrs = {"frames_per_chunk": plan.frames_per_chunk, "nchunks": plan.nchunks,
             "chunk_shape": list(plan.chunk_shape), "xrsmap_dask_version": __version__,
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if ims.filenames:
        attrs["first_file"] = ims.filenames[0]
        attrs["last_file"] = ims.filenames[-1]
    return attrs


def map_request(maps, ims, extra: dict | None = None) -> OutputRequest:
    """The :class:`~xrsmap_dask.layout.OutputRequest` of ``maps`` (built over ``ims``)."""
    plan = maps.plan

    def summarize(arrays: dict) -> dict:
        flags = np.asarray(arrays["frame_unreadable"]) != 0
        frames = plan.point_to_frame[flags & (plan.point_to_frame >= 0)]
        return {"bad_frames": bad_frame_list(ims, frames),
                "invalid": invalid_summary(maps, arrays)}

    def relayout(stored: dict):
        from .graph import build_maps

        try:
            chunks = stored["layout"]["arrays"]["frame_unreadable"]["chunks"]
            fpc = int(stored["frames_per_chunk"])
        except (KeyError, TypeError, ValueError):
            return None
        again = build_maps(ims, maps.spec, plan.scan, maps.corrections, fpc, maps.fuse_reads,
                           chunk_shape=tuple(chunks), axes=maps.axes)
        return map_request(again, ims, extra)

    return OutputRequest(
        layout=maps.layout(), unit_task=lambda u: maps.unit_tasks[u],
        graph=maps.graph.subgraph(maps.unit_deps), identity=job_identity(maps, ims, extra),
        attrs=descriptive_attrs(maps, ims), summarize=summarize,
        summary_arrays=("frame_unreadable",) + tuple(
            n for n in INVALID_ARRAYS if n in maps.layout().unit_arrays), relayout=relayout,
        inputs=tuple(ims.source_files), kind="maps", task_name="map-reduce-write")
