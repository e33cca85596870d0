"""Where the frames of a NeXus / Eiger / LIMA / Bliss HDF5 file are: one ordered list of
:class:`~.segments.Segment` (a run of frames of one real dataset) per series.

* Eiger master (``*_master.h5``): ``/entry/data/data_000001``, ``data_000002``, ... external
  links to ``*_data_00000N.h5`` files, each holding ``/entry/data/data`` ``(N, H, W)``; the
  links are followed in numeric order, frame counts from each linked dataset.
* LIMA (ESRF): ``/entry_0000/measurement/data`` (also ``/entry_0000/<instrument>/<det>/data``).
* NeXus: the ``default`` attributes (file -> NXentry -> NXdata) and the NXdata ``signal``.
* Virtual datasets (VDS, Bliss scans): see :mod:`.vds`.
* Several files of one scan: one segment list after the other.

Damage is found here, at open: a missing data file or VDS source, a dangling link, frames of a
VDS mapped to nothing, and (from :func:`~.hdf5.inspect_dataset`) chunks never written and
short external raw files.  Each is a :class:`~.segments.Gap` ``(lo, hi, path, reason)`` in
series frame numbers (``lo`` .. ``hi - 1``).
"""
from __future__ import annotations

import os
import re

from ..errors import FrameReadError, InputError
from .hdf5 import inspect_dataset, open_file
from .segments import Gap, Segment, gaps, unknown_count_error  # noqa: F401 (re-exported)
from .vds import resolve_link_file, vds_segments

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".nx", ".cxi")
EIGER_DATA_GROUP = "/entry/data"
LIMA_DATA = "/entry_0000/measurement/data"
_DATA_LINK = re.compile(r"^data_(\d+)$")


def split_dataset_path(name: str) -> tuple[str, str | None]:
    """``file.h5:/group/data`` -> (``file.h5``, ``/group/data``); otherwise (name, None).

    The part before the last ``:`` must end in an HDF5 suffix or be an existing file (so a
    Windows drive letter is never taken for a dataset path).
    """
    head, sep, tail = os.fspath(name).rpartition(":")
    if sep and tail.startswith("/") and (head.lower().endswith(HDF5_SUFFIXES)
                                         or os.path.isfile(head)):
        return head, tail
    return os.fspath(name), None


def is_hdf5_file(path: str) -> bool:
    """Whether ``path`` is a file starting with the HDF5 signature (at 0 or a user block)."""
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048, 4096):
                f.seek(offset)
                if f.read(8) == b"\x89HDF\r\n\x1a\n":
                    return True
    except OSError:
        return False
    return False


# -- discovery -----------------------------------------------------------------------------
def detector_frames_path(f) -> str | None:
    """Path of the frames in a detector layout: the NeXus ``default``/``signal`` chain, an
    Eiger ``/entry/data`` group (links ``data_NNNNNN`` or a ``data`` dataset) or LIMA's
    ``/entry_0000/measurement/data``; ``None`` for any other file."""
    import h5py

    path = _nexus_default(f)
    if path:
        return path
    group = f.get(EIGER_DATA_GROUP)
    if isinstance(group, h5py.Group) and (_data_links(group) or "data" in group):
        return EIGER_DATA_GROUP
    return LIMA_DATA if LIMA_DATA in f else None


def default_frames_path(f) -> str:
    """Path of the frames in an open file given without a dataset path: a detector layout
    (:func:`detector_frames_path`), hexrd's ``/imageseries/images`` or ``/images``, else the
    only 3-D numeric dataset of the file."""
    import h5py

    path = detector_frames_path(f)
    if path:
        return path
    for candidate in ("/imageseries/images", "/images"):
        if candidate in f:
            return candidate
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim == 3 and obj.dtype.kind in "buif":
            found.append("/" + name)

    f.visititems(visit)
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError("no 3-D dataset of frames found (give file.h5:/path/to/dataset)",
                         path=f.filename)
    listed = ", ".join(found[:8]) + (" ..." if len(found) > 8 else "")
    raise InputError(f"several 3-D datasets ({listed}); give file.h5:/path/to/dataset",
                     path=f.filename)


def _attr_str(obj, name: str) -> str | None:
    value = obj.attrs.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        value = value.tolist()
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _nexus_default(f) -> str | None:
    """Follow NeXus ``default`` attributes (root -> NXentry -> NXdata) to the ``signal``."""
    import h5py

    obj, path = f, "/"
    for _ in range(3):
        name = _attr_str(obj, "default")
        if name is None or name not in obj:
            break
        path = obj[name].name
        obj = obj[name]
    if path == "/" or not isinstance(obj, h5py.Group):
        return None
    signal = _attr_str(obj, "signal")
    if signal and signal in obj:
        return obj[signal].name
    return path if "data" in obj or _data_links(obj) else None


def _data_links(group) -> list[str]:
    """Names ``data_NNNNNN`` in ``group``, in numeric order."""
    names = [n for n in group if _DATA_LINK.match(n)]
    return sorted(names, key=lambda n: int(_DATA_LINK.match(n).group(1)))


# -- sources of one path -------------------------------------------------------------------
def frame_sources(filename: str, path: str | None = None) -> tuple[list[tuple], str]:
    """``([(file, dataset) or (missing file, reason)...], resolved path)`` for one file.

    A group given as ``path`` stands for its ``data_NNNNNN`` links (Eiger master), else its
    NXdata ``signal``, else its ``data`` dataset (or hexrd's ``images``).  A source is ``(file, dataset, None)`` or,
    for a link whose target cannot be opened, ``(target file, target dataset, reason)``.
    """
    import h5py

    filename = os.path.abspath(filename)
    f = open_file(filename)
    with f:
        if path is None:
            path = default_frames_path(f)
        link = f.get(path, getlink=True)
        if link is None:
            raise InputError(f"HDF5 file has no dataset or group {path!r}", path=filename)
        obj = _get(f, path)
        if isinstance(obj, h5py.Group):
            names = _data_links(obj)
            if not names:
                inner = _attr_str(obj, "signal") or next(
                    (n for n in ("data", "images") if n in obj), None)  # images: hexrd's
                if inner is None:
                    raise InputError(f"group {path!r} holds no frames (no data_NNNNNN links, "
                                     "NXdata signal, 'data' or 'images' dataset)",
                                     path=filename)
                return frame_sources(filename, f"{obj.name}/{inner}")
            return [_source(f, f"{obj.name}/{n}", filename) for n in names], obj.name
        return [_source(f, path, filename)], path


def _get(f, path: str):
    try:
        return f.get(path)
    except (KeyError, OSError):  # a dangling external link
        return None


def _source(f, path: str, filename: str) -> tuple[str, str, str | None]:
    """``(file, dataset, None)`` for a reachable dataset; a dangling external link gives
    ``(target file, target dataset, reason)``."""
    import h5py

    link = f.get(path, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        target = resolve_link_file(link.filename, filename)
        if not os.path.exists(target):
            return target, link.path, "data file not found"
        if _get(f, path) is not None:
            return target, link.path, None
        try:  # say why the link does not resolve: an unreadable file, or no such dataset
            open_file(target).close()
        except FrameReadError as exc:
            return target, link.path, exc.reason
        return target, link.path, f"dataset {link.path!r} not found in the data file"
    obj = _get(f, path)
    if obj is None:
        return filename, path, f"link {path!r} points to nothing"
    return obj.file.filename, obj.name, None


# -- segments --------------------------------------------------------------------------------
def open_segments(filename: str, path: str | None = None,
                  direct: bool = True) -> tuple[list[Segment], str]:
    """The segments of ``filename`` (``path`` as for :func:`frame_sources`) and the resolved
    path.  A missing data file's frame count is that of the other files when it is not the
    last, else the Eiger master's ``nimages x ntrigger`` minus the others; when neither is
    known its segment keeps ``hi = -1`` (see :func:`unknown_count_error`)."""
    sources, path = frame_sources(filename, path)
    segments: list[Segment] = []
    for file, dataset, why in sources:
        if why is None:
            segments.extend(dataset_segments(file, dataset, direct))
        else:
            segments.append(Segment(None, 0, -1, file, why))
    if any(s.hi < 0 for s in segments):
        segments = _count_missing(segments, filename)
    return segments, path


def _count_missing(segments: list[Segment], master: str) -> list[Segment]:
    known = [s.nframes for s in segments if s.hi >= 0]
    total = _eiger_total_frames(master)
    out = []
    for i, s in enumerate(segments):
        if s.hi < 0:
            if i < len(segments) - 1 and known:
                s = Segment(None, 0, max(known), s.path, s.reason)
            elif total is not None and total > sum(known):
                s = Segment(None, 0, total - sum(known), s.path, s.reason)
        out.append(s)
    return out


def _eiger_total_frames(master: str) -> int | None:
    """``nimages x ntrigger`` from an Eiger master's detectorSpecific group, if present."""
    import numpy as np

    with open_file(master) as f:
        spec = f.get("/entry/instrument/detector/detectorSpecific")
        if spec is None or "nimages" not in spec:
            return None
        n = int(np.asarray(spec["nimages"][()]).ravel()[0])
        trig = int(np.asarray(spec["ntrigger"][()]).ravel()[0]) if "ntrigger" in spec else 1
    return n * max(1, trig)


def dataset_segments(filename: str, dataset: str, direct: bool = True) -> list[Segment]:
    """One dataset as segments: itself, or for a VDS its sources of whole frames."""
    data = inspect_dataset(filename, dataset, direct)
    if data.layout != "virtual":
        return [Segment(data, 0, data.nframes, data.filename)]
    return vds_segments(data, direct)


