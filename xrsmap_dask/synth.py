"""Synthetic scans: real EDF files (or an HDF5 stack) with known features.

A raster scan of ``npt_y x npt_x`` points (row-major, x fastest: frame ``i`` is at
``(i // npt_x, i % npt_x)``).  Each frame (rows x cols, rows from the top) holds:

* a flat ``background`` level;
* Debye-Scherrer rings centred on ``centre = (cy, cx)`` at ``radii`` (pixels), Gaussian in
  radius (sigma ``ring_sigma``); ring ``k``'s amplitude varies over the map with a known
  pattern (:func:`ring_amplitude`) so annulus maps show structure;
* a Gaussian spot whose position moves with the scan position (so composite maps show it);
* optional Poisson noise; hot pixels where the mask excludes them.

EDF headers get a comment of varying length, so header sizes differ between files as in real
scans.  ``python -m xrsmap_dask.synth OUTDIR`` writes one from the command line.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HOT_VALUE = 60000


@dataclass
class SynthScan:
    """What :func:`make_scan` wrote and the truth it was built from."""

    directory: str
    npt_y: int
    npt_x: int
    frame_shape: tuple[int, int]
    dtype: str
    centre: tuple[float, float]
    radii: tuple[float, ...]
    files: list[str] = field(default_factory=list)
    background_files: list[str] = field(default_factory=list)
    mask_file: str | None = None
    hdf5_file: str | None = None
    hdf5_dataset: str = "/imageseries/images"

    @property
    def nframes(self) -> int:
        return self.npt_y * self.npt_x

    def save(self) -> str:
        path = os.path.join(self.directory, "scan.json")
        with open(path, "w") as f:
            json.dump(asdict(self), f, indent=1)
        return path

    @classmethod
    def load(cls, directory) -> "SynthScan":
        with open(os.path.join(directory, "scan.json")) as f:
            d = json.load(f)
        d["frame_shape"] = tuple(d["frame_shape"])
        d["centre"] = tuple(d["centre"])
        d["radii"] = tuple(d["radii"])
        return cls(**d)


def ring_amplitude(k: int, iy: int, ix: int, npt_y: int, npt_x: int) -> float:
    """Peak height of ring ``k`` at scan point (iy, ix): a different smooth pattern per ring."""
    fy = (iy + 0.5) / npt_y
    fx = (ix + 0.5) / npt_x
    patterns = (
        lambda: 200.0 * (0.5 + fx),                                   # gradient along x
        lambda: 300.0 * np.exp(-((fy - 0.5) ** 2 + (fx - 0.5) ** 2) / 0.08),  # blob
        lambda: 150.0 * (0.5 + fy),                                   # gradient along y
    )
    return float(patterns[k % len(patterns)]())


def spot_position(iy: int, ix: int, npt_y: int, npt_x: int,
                  frame_shape: tuple[int, int]) -> tuple[float, float]:
    """(row, col) of the moving spot at scan point (iy, ix)."""
    ny, nx = frame_shape
    return (ny * (0.2 + 0.6 * (iy + 0.5) / npt_y), nx * (0.2 + 0.6 * (ix + 0.5) / npt_x))


def model_frame(index: int, npt_y: int, npt_x: int, frame_shape=(128, 128),
                centre=None, radii=None, background: float = 20.0, ring_sigma: float = 1.5,
                spot: bool = True, _r=None) -> np.ndarray:
    """Noiseless expected counts of frame ``index`` (float64, rows x cols)."""
    ny, nx = frame_shape
    centre = default_centre(frame_shape) if centre is None else centre
    radii = default_radii(frame_shape) if radii is None else radii
    iy, ix = divmod(index, npt_x)
    if _r is None:
        yy, xx = np.indices(frame_shape, dtype=np.float64)
        _r = np.hypot(yy - centre[0], xx - centre[1])
    img = np.full(frame_shape, float(background))
    for k, radius in enumerate(radii):
        img += ring_amplitude(k, iy, ix, npt_y, npt_x) * np.exp(
            -0.5 * ((_r - radius) / ring_sigma) ** 2)
    if spot:
        sy, sx = spot_position(iy, ix, npt_y, npt_x, frame_shape)
        half = max(3, int(min(ny, nx) * 0.03))
        y0, y1 = max(0, int(sy) - half), min(ny, int(sy) + half + 1)
        x0, x1 = max(0, int(sx) - half), min(nx, int(sx) + half + 1)
        py, px = np.mgrid[y0:y1, x0:x1]
        img[y0:y1, x0:x1] += 2000.0 * np.exp(-((py - sy) ** 2 + (px - sx) ** 2) / (2 * (half / 3) ** 2))
    return img


def default_centre(frame_shape) -> tuple[float, float]:
    """Ring centre: a little off the frame centre (so rings clip the edges unevenly)."""
    return (frame_shape[0] * 0.47, frame_shape[1] * 0.53)


def default_radii(frame_shape) -> tuple[float, ...]:
    """Three rings; the outer one is clipped by the frame edge."""
    m = min(frame_shape)
    return (0.18 * m, 0.31 * m, 0.52 * m)


def default_mask(frame_shape) -> np.ndarray:
    """uint8 mask, nonzero = excluded: a detector gap (2 rows) and a few hot pixels."""
    ny, nx = frame_shape
    mask = np.zeros(frame_shape, dtype=np.uint8)
    mask[ny // 3: ny // 3 + 2, :] = 1
    rng = np.random.default_rng(1234)
    mask[rng.integers(0, ny, 5), rng.integers(0, nx, 5)] = 1
    return mask


def write_edf(path: str, data: np.ndarray, header: dict | None = None) -> None:
    """Write one frame as an EDF file with fabio."""
    import fabio.edfimage

    fabio.edfimage.EdfImage(data=data, header=header or {}).write(path)


def make_scan(directory, npt_y: int = 7, npt_x: int = 5, frame_shape=(128, 128),
              dtype: str = "uint16", radii=None, centre=None, noise: bool = True,
              spot: bool = True, background: float = 20.0, n_background: int = 0,
              mask: bool = True, vary_headers: bool = True, hdf5: bool = False,
              edf: bool = True, seed: int = 0, prefix: str = "scan",
              progress: bool = False) -> SynthScan:
    """Write a synthetic raster scan to ``directory`` and return its description.

    Files are ``{prefix}_{index:05d}.edf`` in scan order; background frames (background
    level and noise only) ``bkg_{k:03d}.edf``; the mask ``mask.edf`` (uint8, nonzero =
    excluded; the frames hold hot pixels there); with ``hdf5=True`` also ``{prefix}.h5``
    with the stack at ``/imageseries/images`` (hexrd layout).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frame_shape = tuple(int(v) for v in frame_shape)
    centre = default_centre(frame_shape) if centre is None else tuple(centre)
    radii = default_radii(frame_shape) if radii is None else tuple(radii)
    scan = SynthScan(str(directory), npt_y, npt_x, frame_shape, str(np.dtype(dtype)),
                     centre, radii)
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(frame_shape, dtype=np.float64)
    r = np.hypot(yy - centre[0], xx - centre[1])
    mask_arr = default_mask(frame_shape) if mask else None
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None

    def finish(expected: np.ndarray) -> np.ndarray:
        img = rng.poisson(expected).astype(np.float64) if noise else np.rint(expected)
        if mask_arr is not None:
            img[mask_arr != 0] = HOT_VALUE
        if info is not None:
            img = np.clip(img, info.min, info.max)
        return img.astype(dtype)

    h5 = None
    if hdf5:
        import h5py

        scan.hdf5_file = str(directory / f"{prefix}.h5")
        h5 = h5py.File(scan.hdf5_file, "w")
        ds = h5.create_dataset(scan.hdf5_dataset, shape=(scan.nframes,) + frame_shape,
                               dtype=dtype, chunks=(1,) + frame_shape)
    try:
        for i in range(scan.nframes):
            img = finish(model_frame(i, npt_y, npt_x, frame_shape, centre, radii, background,
                                     spot=spot, _r=r))
            if edf:
                scan.files.append(_scan_point_edf(directory / f"{prefix}_{i:05d}.edf", img,
                                                  i, npt_x, rng if vary_headers else None))
            if h5 is not None:
                ds[i] = img
            if progress and (i + 1) % max(1, scan.nframes // 20) == 0:
                print(f"  synth: {i + 1}/{scan.nframes} frames", flush=True)
    finally:
        if h5 is not None:
            h5.close()
    for k in range(n_background):
        path = str(directory / f"bkg_{k:03d}.edf")
        write_edf(path, finish(np.full(frame_shape, float(background))), {"background": str(k)})
        scan.background_files.append(path)
    if mask_arr is not None:
        scan.mask_file = str(directory / "mask.edf")
        write_edf(scan.mask_file, mask_arr)
    scan.save()
    return scan


def _scan_point_edf(path, img: np.ndarray, i: int, npt_x: int, rng) -> str:
    """Write frame ``i`` (header: its scan point and index; with ``rng`` a comment of random
    length, so header sizes differ between files); its path."""
    iy, ix = divmod(i, npt_x)
    header = {"scan_point": f"{iy} {ix}", "frame_index": str(i)}
    if rng is not None:
        header["comment"] = "x" * int(rng.integers(0, 1500))
    write_edf(str(path), img, header)
    return str(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xrsmap_dask.synth",
                                description="Write a synthetic scan of real EDF files.")
    p.add_argument("directory")
    p.add_argument("--npt-y", type=int, default=7)
    p.add_argument("--npt-x", type=int, default=5)
    p.add_argument("--shape", type=int, nargs=2, default=(128, 128), metavar=("ROWS", "COLS"))
    p.add_argument("--dtype", default="uint16")
    p.add_argument("--n-background", type=int, default=0)
    p.add_argument("--hdf5", action="store_true", help="also write an HDF5 stack")
    p.add_argument("--no-noise", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    scan = make_scan(a.directory, a.npt_y, a.npt_x, tuple(a.shape), a.dtype,
                     noise=not a.no_noise, n_background=a.n_background, hdf5=a.hdf5,
                     seed=a.seed, progress=True)
    print(f"wrote {scan.nframes} frames to {scan.directory} (description: scan.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


#: numpy dtype -> EDF DataType name, for :func:`edf_block_bytes`
EDF_TYPE_NAMES = {"u1": "UnsignedByte", "i1": "SignedByte", "u2": "UnsignedShort",
                  "i2": "SignedShort", "u4": "UnsignedInteger", "i4": "SignedInteger",
                  "u8": "Unsigned64", "i8": "Signed64", "f4": "FloatValue", "f8": "DoubleValue"}


def edf_block_bytes(data: np.ndarray, header: dict | None = None, compression: str | None = None,
                    big_endian: bool = False, pad_to: int = 512) -> bytes:
    """One EDF block (``{`` header ``}`` newline, then the data), written by hand.

    fabio writes neither compressed blocks nor arbitrary header text; tests of the readers
    need both.  The standard keys (``HeaderID``, ``ByteOrder``, ``DataType``, ``Dim_1``,
    ``Dim_2``, ``Size``, and ``Compression`` when ``compression`` is ``'gzip'``, ``'zlib'``
    or ``'bz2'``: ``Size`` is then the compressed size) come first; ``header`` entries
    replace them (``None`` removes one) or follow, written verbatim as ``key = value ;``.
    The header is padded with spaces so ``{ ... }\\n`` is a multiple of ``pad_to`` bytes.
    """
    import bz2
    import gzip
    import zlib

    data = np.ascontiguousarray(data)
    raw = data.astype(data.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    packers = {"gzip": lambda b: gzip.compress(b, mtime=0), "zlib": zlib.compress,
               "bz2": bz2.compress}
    payload = packers[compression](raw) if compression else raw
    fields = {"HeaderID": "EH:000001:000000:000000",
              "ByteOrder": "HighByteFirst" if big_endian else "LowByteFirst",
              "DataType": EDF_TYPE_NAMES[data.dtype.str[1:]], "Dim_1": data.shape[-1],
              "Dim_2": data.shape[0] if data.ndim == 2 else 1, "Size": len(payload)}
    if compression:
        fields["Compression"] = compression
    fields.update(header or {})
    text = "{\n" + "".join(f"{k} = {v} ;\n" for k, v in fields.items() if v is not None)
    pad = (-(len(text) + 2)) % pad_to if pad_to else 0
    return (text + " " * pad + "}\n").encode("ascii") + payload


# -- beamline HDF5 layouts (Eiger master + data files, LIMA, VDS) ---------------------------
#: HDF5 compression names -> h5py ``create_dataset`` keywords (hdf5plugin filters)
HDF5_COMPRESSIONS = ("bslz4", "lz4", "zstd", "blosc", "blosc2", "gzip", "gzip-shuffle",
                     "bzip2", "none")


def hdf5_compression(name: str) -> dict:
    """h5py keywords for one of :data:`HDF5_COMPRESSIONS` (``bslz4``: Eiger's bitshuffle +
    LZ4, filter 32008; ``bzip2``: a filter only HDF5 decodes here)."""
    import hdf5plugin

    table = {
        "bslz4": lambda: dict(hdf5plugin.Bitshuffle(cname="lz4")),
        "lz4": lambda: dict(hdf5plugin.LZ4()),
        "zstd": lambda: dict(hdf5plugin.Zstd()),
        "blosc": lambda: dict(hdf5plugin.Blosc(cname="lz4", shuffle=hdf5plugin.Blosc.SHUFFLE)),
        "blosc2": lambda: dict(hdf5plugin.Blosc2(cname="zstd",
                                                 filters=hdf5plugin.Blosc2.BITSHUFFLE)),
        "gzip": lambda: dict(compression="gzip", compression_opts=4),
        "gzip-shuffle": lambda: dict(compression="gzip", compression_opts=4, shuffle=True),
        "bzip2": lambda: dict(hdf5plugin.BZip2()),
        "none": dict,
    }
    if name not in table:
        raise ValueError(f"unknown compression {name!r}; known: {', '.join(table)}")
    return table[name]()


def detector_frames(nframes: int, frame_shape=(64, 48), dtype="uint32",
                    seed: int = 0) -> np.ndarray:
    """Detector-like frames ``(nframes, rows, cols)``: low Poisson counts, mostly zeros, a
    moving bright spot, and a few large values (no reserved all-ones values)."""
    rng = np.random.default_rng(seed)
    rows, cols = frame_shape
    frames = rng.poisson(0.7, (nframes, rows, cols)).astype(np.float64)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for i in range(nframes):
        cy, cx = (i * 7) % rows, (i * 5) % cols
        frames[i] += 400 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    frames[:, 0, 0] = np.arange(nframes) * 13 + 1000  # a value that tells frames apart
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        frames = np.minimum(frames, np.iinfo(dt).max - 1)
    return frames.astype(dt)


def write_hdf5_frames(path, dataset: str, frames: np.ndarray, compression: str = "bslz4",
                      chunks=None) -> str:
    """Write ``frames`` as ``path:dataset`` (chunks default: one frame); returns the path."""
    import h5py

    chunks = chunks or (1,) + frames.shape[1:]
    with h5py.File(path, "a") as f:
        if dataset in f:
            del f[dataset]
        f.create_dataset(dataset, data=frames, chunks=tuple(chunks),
                         **hdf5_compression(compression))
    return str(path)


def write_eiger_master(directory, frames: np.ndarray, frames_per_file: int,
                       name: str = "scan", compression: str = "bslz4",
                       pixel_mask: np.ndarray | None = None) -> tuple[str, list[str]]:
    """An Eiger/NeXus scan as the detector writes it: ``{name}_master.h5`` whose
    ``/entry/data/data_00000N`` are external links to ``{name}_data_00000N.h5`` (each
    ``/entry/data/data``, one frame per chunk, attrs ``image_nr_low/high``), with
    ``detectorSpecific/pixel_mask``, ``nimages`` and ``ntrigger``.  Returns (master, data
    files); the links are relative, as the detector writes them."""
    import h5py

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    master = directory / f"{name}_master.h5"
    data_files = []
    for k, start in enumerate(range(0, len(frames), frames_per_file), start=1):
        part = frames[start:start + frames_per_file]
        data_name = f"{name}_data_{k:06d}.h5"
        write_hdf5_frames(directory / data_name, "/entry/data/data", part, compression)
        with h5py.File(directory / data_name, "a") as f:
            f["/entry/data/data"].attrs["image_nr_low"] = start + 1
            f["/entry/data/data"].attrs["image_nr_high"] = start + len(part)
        data_files.append(str(directory / data_name))
    with h5py.File(master, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        for k, path in enumerate(data_files, start=1):
            data[f"data_{k:06d}"] = h5py.ExternalLink(os.path.basename(path), "/entry/data/data")
        spec = f.create_group("entry/instrument/detector/detectorSpecific")
        spec["nimages"] = np.uint32(len(frames))
        spec["ntrigger"] = np.uint32(1)
        mask = np.zeros(frames.shape[1:], np.uint32) if pixel_mask is None else pixel_mask
        spec.create_dataset("pixel_mask", data=mask.astype(np.uint32), **hdf5_compression("gzip"))
    return str(master), data_files


def write_lima(path, frames: np.ndarray, compression: str = "bslz4",
               instrument: str = "ESRF-ID11", detector: str = "eiger") -> str:
    """A LIMA (ESRF) file: frames at ``/entry_0000/{instrument}/{detector}/data`` and a soft
    link ``/entry_0000/measurement/data`` to them."""
    import h5py

    target = f"/entry_0000/{instrument}/{detector}/data"
    write_hdf5_frames(path, target, frames, compression)
    with h5py.File(path, "a") as f:
        f["/entry_0000"].attrs["NX_class"] = "NXentry"
        f.require_group("/entry_0000/measurement")["data"] = h5py.SoftLink(target)
    return str(path)


def write_vds(path, sources: list[str], dataset: str = "/entry/data/data",
              vds_path: str = "/entry/instrument/detector/data") -> str:
    """A virtual dataset ``path:vds_path`` stacking ``dataset`` of each source file in order
    (relative source names, as Bliss writes them), with NeXus ``default`` attributes leading
    to an NXdata group ``plot`` whose ``signal`` links to it."""
    import h5py

    shapes = []
    for src in sources:
        with h5py.File(src, "r") as f:
            shapes.append((f[dataset].shape, f[dataset].dtype))
    total = sum(s[0][0] for s in shapes)
    layout = h5py.VirtualLayout((total,) + shapes[0][0][1:], shapes[0][1])
    at = 0
    for src, (shape, _dt) in zip(sources, shapes):
        rel = os.path.relpath(src, os.path.dirname(os.path.abspath(path)))
        layout[at:at + shape[0]] = h5py.VirtualSource(rel, dataset, shape=shape)
        at += shape[0]
    with h5py.File(path, "a") as f:
        f.create_virtual_dataset(vds_path, layout, fillvalue=0)
        # NeXus default plot, as Bliss writes it: root -> entry -> NXdata whose signal is
        # a soft link to the frames
        entry_name = vds_path.strip("/").split("/")[0]
        f.attrs["default"] = entry_name
        entry = f[entry_name]
        entry.attrs.update(NX_class="NXentry", default="plot")
        plot = entry.require_group("plot")
        plot.attrs.update(NX_class="NXdata", signal="data")
        plot["data"] = h5py.SoftLink(vds_path)
    return str(path)


# ---------------------------------------------------------------------------------------
# calibrated scans: a pyFAI PONI file with tilts and frames with rings at known q


def write_poni(path, detector: str = "Pilatus300k", dist: float = 0.15,
               poni1: float | None = None, poni2: float | None = None, rot1: float = 0.02,
               rot2: float = -0.015, rot3: float = 0.1, wavelength: float = 1.0e-10,
               pixel_size: float | None = None, shape=None) -> str:
    """Write a pyFAI PONI file (tilted by ``rot1``-``rot3``, radians) and return its path.

    ``detector`` is a pyFAI detector name (its shape and mask are pyFAI's), or give
    ``pixel_size`` (metres) and ``shape`` (rows, cols) for a generic detector.  The PONI
    defaults to the pixel at 45 % of the rows and 55 % of the columns.
    """
    from pyFAI.detectors import Detector, detector_factory
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator
    from pyFAI.io.ponifile import PoniFile

    if pixel_size is not None:
        det = Detector(pixel1=pixel_size, pixel2=pixel_size, max_shape=tuple(shape))
    else:
        det = detector_factory(detector)
    rows, cols = det.max_shape
    poni1 = 0.45 * rows * det.pixel1 if poni1 is None else poni1
    poni2 = 0.55 * cols * det.pixel2 if poni2 is None else poni2
    ai = AzimuthalIntegrator(dist=dist, poni1=poni1, poni2=poni2, rot1=rot1, rot2=rot2,
                             rot3=rot3, wavelength=wavelength, detector=det)
    path = os.fspath(path)
    with open(path, "w") as f:
        PoniFile(ai).write(f)
    return path


@dataclass
class PoniScan:
    """What :func:`make_poni_scan` wrote: frames with rings at ``q_rings`` (nm^-1)."""

    directory: str
    npt_y: int
    npt_x: int
    frame_shape: tuple[int, int]
    dtype: str
    poni_file: str
    q_rings: tuple[float, ...]
    files: list[str] = field(default_factory=list)
    mask_file: str | None = None

    @property
    def nframes(self) -> int:
        return self.npt_y * self.npt_x


def poni_model_frame(q: np.ndarray, index: int, npt_y: int, npt_x: int, q_rings,
                     background: float = 20.0, q_sigma: float = 0.15) -> np.ndarray:
    """Expected counts of frame ``index``: ``background`` plus Gaussian rings in ``q`` (the
    per-pixel q array, nm^-1) at ``q_rings``, ring ``k`` of height
    :func:`ring_amplitude` ``(k, iy, ix)``."""
    iy, ix = divmod(index, npt_x)
    img = np.full(q.shape, float(background))
    for k, q0 in enumerate(q_rings):
        img += ring_amplitude(k, iy, ix, npt_y, npt_x) * np.exp(-0.5 * ((q - q0) / q_sigma) ** 2)
    return img


def make_poni_scan(directory, npt_y: int = 3, npt_x: int = 4, detector: str = "Pilatus300k",
                   q_rings=(8.0, 15.0, 22.0), dtype: str = "int32", noise: bool = True,
                   gap_value: int = -1, seed: int = 0, **poni_kwargs) -> PoniScan:
    """Write a PONI file (:func:`write_poni`, tilted) and a raster scan of EDF frames whose
    rings sit at ``q_rings`` (nm^-1) under that geometry.

    Pixels of the detector's own mask (module gaps) hold ``gap_value`` (-1, as Pilatus CBF
    files); a user mask ``mask.edf`` (uint8, nonzero = excluded) marks a few hot pixels,
    which hold :data:`HOT_VALUE`.
    """
    import pyFAI

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    poni = write_poni(directory / "geometry.poni", detector, **poni_kwargs)
    ai = pyFAI.load(poni)
    shape = tuple(int(v) for v in ai.detector.max_shape)
    q = ai.array_from_unit(shape, "center", "q_nm^-1", scale=True)
    gaps = ai.detector.mask
    gaps = np.zeros(shape, bool) if gaps is None else np.asarray(gaps) != 0
    rng = np.random.default_rng(seed)
    hot = np.zeros(shape, np.uint8)
    hot[rng.integers(0, shape[0], 6), rng.integers(0, shape[1], 6)] = 1
    hot[gaps] = 0
    scan = PoniScan(str(directory), npt_y, npt_x, shape, str(np.dtype(dtype)), poni,
                    tuple(float(v) for v in q_rings))
    for i in range(scan.nframes):
        expected = poni_model_frame(q, i, npt_y, npt_x, q_rings)
        img = rng.poisson(expected).astype(np.float64) if noise else np.rint(expected)
        img[hot != 0] = HOT_VALUE
        img[gaps] = gap_value
        path = str(directory / f"frame_{i:05d}.edf")
        write_edf(path, img.astype(dtype), {"frame_index": str(i)})
        scan.files.append(path)
    scan.mask_file = str(directory / "mask.edf")
    write_edf(scan.mask_file, hot)
    return scan
