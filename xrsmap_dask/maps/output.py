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

from ..layout import OutputRequest, bad_frame_list, inputs_digest, jsonable


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
        return {"bad_frames": bad_frame_list(ims, frames)}

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
        summary_arrays=("frame_unreadable",), relayout=relayout,
        inputs=tuple(ims.filenames or ()), kind="maps", task_name="map-reduce-write")
