"""Segments: runs of frames of real HDF5 datasets that make one image series, and the gaps
(frames that cannot be read as written) found in them at open."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import FrameReadError
from .hdf5 import FrameDataset


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


def unknown_count_error(segments: list[Segment]) -> FrameReadError | None:
    """A :class:`FrameReadError` for the first source whose frame count is unknown."""
    start = 0
    for s in segments:
        if s.hi < 0:
            return FrameReadError(f"{s.reason}: frames from {start} on are missing and their "
                                  "count is unknown", path=s.path, frame=start)
        start += s.nframes
    return None


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
