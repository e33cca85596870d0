"""Where the frames of a NeXus / Eiger / LIMA / Bliss HDF5 file are: one ordered list of
:class:`Segment` (a run of frames of one real dataset) per series.

* Eiger master (``*_master.h5``): ``/entry/data/data_000001``, ``data_000002``, ... external
  links to ``*_data_00000N.h5`` files, each holding ``/entry/data/data`` ``(N, H, W)``; the
  links are followed in numeric order, frame counts from each linked dataset.
* LIMA (ESRF): ``/entry_0000/measurement/data`` (also ``/entry_0000/<instrument>/<det>/data``).
* NeXus: the ``default`` attributes (file -> NXentry -> NXdata) and the NXdata ``signal``.
* Virtual datasets (VDS, Bliss scans): each source mapping of whole frames becomes its own
  segment (read in parallel like any dataset); other mappings are read through the VDS.
* Several files of one scan: one segment list after the other.

Damage is found here, at open: a missing data file or VDS source, a dangling link, frames of a
VDS mapped to nothing, and (from :func:`~.hdf5.inspect_dataset`) chunks never written and
short external raw files.  Each is a :class:`Gap` ``(lo, hi, path, reason)`` in series frame
numbers (``lo`` .. ``hi - 1``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import FrameReadError, InputError
from .hdf5 import FrameDataset, inspect_dataset, open_file

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".nx", ".cxi")
EIGER_DATA_GROUP = "/entry/data"
LIMA_DATA = "/entry_0000/measurement/data"
_DATA_LINK = re.compile(r"^data_(\d+)$")


@dataclass(frozen=True)
class Segment:
    """Frames ``lo`` .. ``hi - 1`` of dataset ``data``.  ``data=None``: a source that cannot
    be read (``path`` and ``reason`` say which and why; ``hi = -1`` while its frame count is
    unknown)."""

    data: FrameDataset | None
    lo: int
    hi: int
    path: str = ""
    reason: str = ""

    @property
    def nframes(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class Gap:
    """Series frames ``lo`` .. ``hi - 1`` that cannot be read: where and why."""

    lo: int
    hi: int
    path: str
    reason: str

    def message(self) -> str:
        return f"frames {self.lo}..{self.hi - 1}: {self.reason}"


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
def default_frames_path(f) -> str:
    """Path of the frames in an open file given without a dataset path.

    In order: the NeXus ``default``/``signal`` chain, an Eiger ``/entry/data`` group (links
    ``data_NNNNNN`` or a ``data`` dataset), LIMA's ``/entry_0000/measurement/data``, hexrd's
    ``/imageseries/images``, else the only 3-D numeric dataset of the file.
    """
    import h5py

    path = _nexus_default(f)
    if path:
        return path
    group = f.get(EIGER_DATA_GROUP)
    if isinstance(group, h5py.Group) and (_data_links(group) or "data" in group):
        return EIGER_DATA_GROUP
    for candidate in (LIMA_DATA, "/imageseries/images", "/images"):
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
        return target, link.path, None if _get(f, path) is not None else \
            f"dataset {link.path!r} not found in the data file"
    obj = _get(f, path)
    if obj is None:
        return filename, path, f"link {path!r} points to nothing"
    return obj.file.filename, obj.name, None


def resolve_link_file(name: str, parent: str) -> str:
    """An external link's or VDS source's file as HDF5 finds it: absolute as given; else
    beside the file holding the link, else in the working directory."""
    if name == ".":
        return parent
    if os.path.isabs(name):
        return name
    beside = os.path.join(os.path.dirname(parent), name)
    if os.path.exists(beside) or not os.path.exists(name):
        return os.path.abspath(beside)
    return os.path.abspath(name)


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


def unknown_count_error(segments: list[Segment]) -> FrameReadError | None:
    """A :class:`FrameReadError` for the first source whose frame count is unknown."""
    start = 0
    for s in segments:
        if s.hi < 0:
            return FrameReadError(f"{s.reason}: frames from {start} on are missing and their "
                                  "count is unknown", path=s.path, frame=start)
        start += s.nframes
    return None


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


def gaps(segments: list[Segment]) -> list[Gap]:
    """Unreadable frames of a segment list, in series frame numbers."""
    out, start = [], 0
    for s in segments:
        if s.data is None:
            out.append(Gap(start, start + max(0, s.nframes), s.path, s.reason))
        else:
            for lo, hi, why in s.data.missing:
                a, b = max(lo, s.lo), min(hi, s.hi)
                if a < b:
                    out.append(Gap(start + a - s.lo, start + b - s.lo, s.data.filename,
                                   f"dataset {s.data.dataset!r}: {why}"))
        start += max(0, s.nframes)
    return out


# -- virtual datasets ------------------------------------------------------------------------
def _extent(space, dims) -> list[tuple[int, int]] | None:
    """``[(start, length)]`` per axis of a dataspace selection that is one box, else None.
    A whole-space selection of a source (whose extent HDF5 may not report) gives ``dims``
    lengths, or ``[]`` when ``dims`` is None (the source's own shape decides)."""
    import h5py

    kind = space.get_select_type()
    if kind == h5py.h5s.SEL_ALL:
        return [] if dims is None else [(0, int(n)) for n in dims]
    if kind != h5py.h5s.SEL_HYPERSLABS or not space.is_regular_hyperslab():
        return None
    out = []
    for start, stride, count, block in zip(*space.get_regular_hyperslab()):
        if count > 1 and stride != block:
            return None
        out.append((int(start), int(count * block)))
    return out


def vds_segments(vds: FrameDataset, direct: bool = True) -> list[Segment]:
    """A VDS as the segments of its sources when every mapping is a run of whole frames
    (each read like any dataset); else the VDS itself, read through h5py, with the frames of
    missing sources (and frames mapped to nothing) marked missing."""
    from .hdf5 import open_dataset

    f, ds = open_dataset(vds.filename, vds.dataset)
    with f:
        maps = [(m, _extent(m.vspace, ds.shape), _extent(m.src_space, None))
                for m in ds.virtual_sources()]
    h, w = vds.frame_shape
    pieces = []
    for m, vbox, sbox in maps:
        path = resolve_link_file(m.file_name, vds.filename)
        whole = (vbox is not None and sbox is not None and vds.ndim == 3
                 and vbox[1:] == [(0, h), (0, w)]
                 and (sbox == [] or (len(sbox) == 3 and sbox[1:] == [(0, h), (0, w)]
                                     and vbox[0][1] == sbox[0][1])))
        pieces.append((m, path, vbox, sbox, whole))
    if all(p[4] for p in pieces):
        return _source_segments(vds, pieces, direct)
    return [Segment(_vds_checked(vds, pieces), 0, vds.nframes, vds.filename)]


def _source_segments(vds: FrameDataset, pieces, direct: bool) -> list[Segment]:
    segments, at = [], 0
    for m, path, vbox, sbox, _ in sorted(pieces, key=lambda p: p[2][0][0]):
        v0, n = vbox[0]
        if v0 < at:
            return [Segment(_vds_checked(vds, pieces), 0, vds.nframes, vds.filename)]
        if v0 > at:
            segments.append(Segment(None, 0, v0 - at, vds.filename,
                                    f"VDS {vds.dataset!r}: frames mapped to no source"))
        s0 = sbox[0][0] if sbox else 0
        segments.append(_source_segment(vds, m.dset_name, path, s0, n, sbox == [], direct))
        at = v0 + n
    if at < vds.nframes:
        segments.append(Segment(None, 0, vds.nframes - at, vds.filename,
                                f"VDS {vds.dataset!r}: frames mapped to no source"))
    return segments


def _source_segment(vds: FrameDataset, dataset: str, path: str, s0: int, n: int,
                    whole_source: bool, direct: bool) -> Segment:
    """Frames ``s0`` .. ``s0 + n - 1`` of a VDS source (all of it when ``whole_source``)."""
    where = f"VDS {vds.dataset!r} source {dataset!r}"
    if not os.path.exists(path):
        return Segment(None, 0, n, path, f"{where}: file not found")
    try:
        src = inspect_dataset(path, dataset, direct)
    except FrameReadError as exc:
        return Segment(None, 0, n, path, f"{where}: {exc.reason}")
    if src.layout == "virtual" or src.frame_shape != vds.frame_shape \
            or src.dtype != vds.dtype or s0 + n > src.nframes \
            or (whole_source and src.nframes != n):
        return Segment(None, 0, n, path, f"{where}: shape {src.nframes} x "
                       f"{src.frame_shape} {src.dtype} does not match the mapping")
    return Segment(src, s0, s0 + n, path)


def _vds_checked(vds: FrameDataset, pieces) -> FrameDataset:
    """The VDS read through h5py, with missing sources and unmapped frames marked."""
    from dataclasses import replace

    import numpy as np

    covered = np.zeros(vds.nframes, bool)
    missing = []
    for m, path, vbox, _sbox, _ in pieces:
        lo, hi = (vbox[0][0], vbox[0][0] + vbox[0][1]) if vbox else \
            (m.vspace.get_select_bounds()[0][0], m.vspace.get_select_bounds()[1][0] + 1)
        covered[lo:hi] = True
        if not os.path.exists(path):
            missing.append((lo, hi, f"VDS source file {path!r} not found"))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ~covered, [0]]).astype(np.int8)))
    for lo, hi in zip(edges[::2], edges[1::2]):
        missing.append((int(lo), int(hi), "frames mapped to no source"))
    return replace(vds, missing=tuple(sorted(missing)))
