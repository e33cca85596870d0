"""Rotation angles of an image series (hexrd's ``imageseries.omega``).

The ``omega`` metadata is an ``(nframes, 2)`` array: the rotation angle (degrees) at the
start and the stop of each frame's exposure.  A *wedge* is a run of frames whose intervals
are contiguous (each frame starts where the previous stopped) with a constant step.

>>> w = OmegaWedges(360)
>>> w.addwedge(0, 90, 180); w.addwedge(180, 270, 180)
>>> ims.metadata['omega'] = w.omegas                 # doctest: +SKIP
>>> oms = OmegaImageSeries(ims)                      # doctest: +SKIP
>>> oms.omega_to_frame(45.3)                         # doctest: +SKIP
(90, 0)
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .base import ImageSeries

#: tolerance (degrees) when deciding that frames are contiguous / have the same step
OMEGA_TOL = 1e-6


class OmegaSeriesError(InputError):
    """Bad omega metadata or wedges (hexrd's ``OmegaSeriesError``; also an ``InputError``)."""


class OmegaWedges:
    """Build omega metadata from wedges ``(ostart, ostop, nsteps)``.

    Parameters
    ----------
    nframes : int
        Frames the wedges must cover in all (checked by :attr:`omegas`).
    """

    def __init__(self, nframes: int):
        try:
            n = int(nframes)
        except (TypeError, ValueError):
            n = -1
        if n < 0:
            raise InputError(f"must be a non-negative int, got {nframes!r}", argument="nframes")
        self.nframes = n
        self._wedges: list[dict] = []

    @property
    def wedges(self) -> list[dict]:
        """The wedges in order: dicts with ``ostart``, ``ostop`` (degrees), ``nsteps`` (the
        list itself, as in hexrd)."""
        return self._wedges

    @property
    def wframes(self) -> int:
        """Frames the wedges hold in all."""
        return int(sum(w["nsteps"] for w in self._wedges))

    @property
    def nwedges(self) -> int:
        return len(self._wedges)

    def addwedge(self, ostart: float, ostop: float, nsteps: int, loc: int | None = None) -> None:
        """Add a wedge of ``nsteps`` equal frames from ``ostart`` to ``ostop`` (degrees), at
        position ``loc`` (``None``: at the end; else as ``list.insert``)."""
        try:
            steps = int(nsteps)
        except (TypeError, ValueError):
            steps = 0
        if steps < 1 or steps != nsteps:
            raise InputError(f"must be a positive int, got {nsteps!r}", argument="nsteps")
        wedge = {"ostart": float(ostart), "ostop": float(ostop), "nsteps": steps}
        if loc is None:
            self._wedges.append(wedge)
        else:
            self._wedges.insert(int(loc), wedge)

    def delwedge(self, i: int) -> None:
        """Delete wedge ``i``."""
        try:
            del self._wedges[i]
        except (IndexError, TypeError):
            raise InputError(f"no wedge {i!r} (there are {self.nwedges})",
                             argument="i") from None

    @property
    def omegas(self) -> np.ndarray:
        """``(nframes, 2)`` float64 start/stop angles of every frame, wedge after wedge.

        Raises :class:`InputError` when the wedges' steps do not sum to ``nframes``."""
        total = self.wframes
        if total != self.nframes:
            raise OmegaSeriesError(f"number of frames ({self.nframes}) does not match the "
                                   f"number of wedge frames ({total})", argument="nframes")
        out = np.empty((self.nframes, 2), dtype=np.float64)
        k = 0
        for w in self._wedges:
            edges = np.linspace(w["ostart"], w["ostop"], w["nsteps"] + 1)
            out[k:k + w["nsteps"], 0] = edges[:-1]
            out[k:k + w["nsteps"], 1] = edges[1:]
            k += w["nsteps"]
        return out

    def save_omegas(self, fname) -> None:
        """``np.save(fname, self.omegas)``."""
        np.save(fname, self.omegas)


class OmegaImageSeries(ImageSeries):
    """An image series with rotation angles: wedges and omega <-> frame lookup.

    Frames, reads and metadata are those of ``ims`` (this is a view of it); ``ims.metadata``
    must hold ``'omega'``, an ``(nframes, 2)`` array of start/stop angles (degrees), each
    frame's stop greater than its start.
    """

    DFLT_TOL = OMEGA_TOL
    TAU = 360

    def __init__(self, ims: ImageSeries):
        from .wrapped import as_series

        ims = as_series(ims)
        self._imser = ims
        self.on_error = ims.on_error
        if "omega" not in ims.metadata:
            raise OmegaSeriesError("Imageseries has no omega metadata (an (nframes, 2) array "
                                   "of start, stop angles)", argument="omega")
        try:
            om = np.asarray(ims.metadata["omega"], dtype=np.float64)
        except (TypeError, ValueError):
            raise OmegaSeriesError("omega array is not numeric", argument="omega") from None
        if om.ndim != 2 or om.shape[1] != 2 or om.shape[0] != len(ims):
            raise OmegaSeriesError(f"omega array mismatch: array has shape {om.shape}, "
                                   f"expecting ({len(ims)}, 2)", argument="omega")
        if len(ims) and not np.all(om[:, 1] > om[:, 0]):
            bad = int(np.flatnonzero(~(om[:, 1] > om[:, 0]))[0])
            raise OmegaSeriesError(f"omega array must be increasing: frame {bad} stops at "
                                   f"{om[bad, 1]}, not above its start {om[bad, 0]}",
                                   argument="omega")
        self._omega = om
        self._make_wedges()

    def _make_wedges(self) -> None:
        om = self._omega
        n = len(om)
        starts = [0] if n else []
        for f in range(1, n):
            step, prev_step = om[f, 1] - om[f, 0], om[f - 1, 1] - om[f - 1, 0]
            if abs(om[f, 0] - om[f - 1, 1]) > OMEGA_TOL or abs(step - prev_step) > OMEGA_TOL:
                starts.append(f)
        ends = starts[1:] + [n]
        self._wedge_frames = [(s, e) for s, e in zip(starts, ends)]
        self._wedges = OmegaWedges(n)
        for s, e in self._wedge_frames:
            self._wedges.addwedge(om[s, 0], om[e - 1, 1], e - s)

    # -- ImageSeries (delegated) --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._imser)

    @property
    def shape(self) -> tuple[int, int]:
        return self._imser.shape

    @property
    def dtype(self) -> np.dtype:
        return self._imser.dtype

    @property
    def metadata(self) -> dict:
        return self._imser.metadata

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self._imser._read_region(j, rows, cols)

    def block_source(self, start: int, stop: int):
        return self._imser.block_source(start, stop)

    def block_dtype(self) -> np.dtype:
        return self._imser.block_dtype()

    def read_block(self, start: int, stop: int, roi=None) -> np.ndarray:
        return self._imser.read_block(start, stop, roi)

    @property
    def token(self) -> str:
        return self._imser.token

    # -- omega ------------------------------------------------------------------------------
    @property
    def omega(self) -> np.ndarray:
        """``(nframes, 2)`` start/stop angles (degrees)."""
        return self._omega.copy()

    @property
    def omegawedges(self) -> OmegaWedges:
        return self._wedges

    @property
    def nwedges(self) -> int:
        return self._wedges.nwedges

    def wedge(self, i: int) -> dict:
        """Wedge ``i``: ``ostart``, ``ostop`` (degrees), ``nsteps``, ``delta`` (degrees per
        frame) and ``frame0`` (its first frame)."""
        if not isinstance(i, (int, np.integer)) or not -self.nwedges <= i < self.nwedges:
            raise InputError(f"no wedge {i!r} (there are {self.nwedges})", argument="i")
        d = dict(self._wedges.wedges[i])
        d["delta"] = (d["ostop"] - d["ostart"]) / d["nsteps"]
        d["frame0"] = self._wedge_frames[i][0]
        return d

    @property
    def omegarange(self) -> tuple[float, float]:
        """(smallest wedge start, largest wedge stop), degrees."""
        ws = self._wedges.wedges
        return (min(w["ostart"] for w in ws), max(w["ostop"] for w in ws))

    @property
    def omegaspan(self) -> float:
        """``omegarange[1] - omegarange[0]`` (degrees)."""
        lo, hi = self.omegarange
        return hi - lo

    def omega_to_frame(self, om: float) -> tuple[int, int]:
        """(frame, wedge) whose interval ``[start, stop)`` holds angle ``om`` (degrees,
        taken modulo 360 from each wedge's start); ``(-1, -1)`` when no wedge holds it."""
        for i, (f0, f1) in enumerate(self._wedge_frames):
            ostart = self._omega[f0, 0]
            ostop = self._omega[f1 - 1, 1]
            check = ostart + np.mod(om - ostart, 360.0)
            if check < ostop:
                delta = (ostop - ostart) / (f1 - f0)
                k = min(int(math.floor((check - ostart) / delta)), f1 - f0 - 1)
                return f0 + k, i
        return -1, -1

    def omegarange_to_frames(self, omin: float, omax: float):
        """Frames covering angles ``omin`` .. ``omax`` (both frames included), as hexrd:

        - both angles in one wedge, ``omax``'s frame after ``omin``'s: those frames;
        - ``omin``'s wedge ends where ``omax``'s starts, modulo 360 degrees (a scan joined
          across 360, or one full-circle wedge wrapping): the frames to the end of ``omin``'s
          wedge, then from the start of ``omax``'s;
        - otherwise (an angle in no wedge, a gap between wedges, both angles in one frame of
          a wedge that does not wrap): ``()``.
        """
        f0, w0 = self.omega_to_frame(omin)
        f1, w1 = self.omega_to_frame(omax)
        if w0 < 0 or w1 < 0:
            return ()
        if w0 == w1 and f1 > f0:
            return list(range(f0, f1 + 1))
        end0 = self._omega[self._wedge_frames[w0][1] - 1, 1]
        start1 = self._omega[self._wedge_frames[w1][0], 0]
        if np.mod(abs(start1 - end0), 360.0) < OMEGA_TOL:
            return (list(range(f0, self._wedge_frames[w0][1]))
                    + list(range(self._wedge_frames[w1][0], f1 + 1)))
        return ()
