"""Write tests/fixtures/hexrd/ with the REAL hexrd (run in a venv where hexrd is installed).

    /path/to/hexrd-venv/bin/python tools/make_hexrd_fixtures.py tests/fixtures/hexrd

Every file is written by hexrd's own writers where hexrd has one (hdf5, frame-cache npz and
fch5); the YAML formats hexrd only reads (frame-cache yml, image-files, raw-image) are written
in hexrd's layout next to data hexrd wrote or fabio wrote, and each file is then opened with
the real hexrd and compared with the reference frames before the script succeeds.
The reference frames are :func:`reference_stack` (the test suite computes the same).
"""
import os
import sys

import numpy as np


def reference_stack() -> np.ndarray:
    """4 uint16 frames of 12 x 10, about 40% of the pixels non-zero, values up to 999."""
    a = (np.arange(4 * 12 * 10, dtype=np.int64).reshape(4, 12, 10) * 7919) % 1000
    a[a < 600] = 0
    return a.astype(np.uint16)


def main(out: str) -> None:
    import fabio
    import yaml
    from hexrd.core import imageseries
    from hexrd.core.imageseries.load.framecache import FrameCacheImageSeriesAdapter
    from hexrd.core.imageseries.omega import OmegaImageSeries, OmegaWedges

    os.makedirs(out, exist_ok=True)
    os.chdir(out)  # hexrd resolves YAML paths against the working directory
    data = reference_stack()
    wedges = OmegaWedges(4)
    wedges.addwedge(0.0, 1.0, 4)
    meta = {"omega": wedges.omegas, "panel": np.str_("ff1"), "temperature": np.float64(295.5)}
    ims = imageseries.open(None, "array", data=data, meta=dict(meta))
    imageseries.write(ims, "hdf5_gzip.h5", "hdf5", path="imageseries", gzip=4)
    imageseries.write(ims, "fc.npz", "frame-cache", threshold=0, style="npz")
    nested = dict(meta, panel="ff1", detector={"name": "ge", "pixels": np.array([12, 10])})
    imageseries.write(imageseries.open(None, "array", data=data, meta=nested), "fc.fch5",
                      "frame-cache", threshold=0, style="fch5")
    # frame-cache YAML (hexrd reads it; its own YAML writer is broken): data beside it
    imageseries.write(ims, "fc_yml.npz", "frame-cache", threshold=0, style="npz")
    np.save("fc_yml-omega.npy", meta["omega"])
    with open("fc.yml", "w") as f:
        yaml.safe_dump({"data": {"file": "fc_yml.npz", "dtype": "uint16", "nframes": 4,
                                 "shape": [12, 10]},
                        "meta": {"omega": "! load-numpy-array fc_yml-omega.npy",
                                 "panel": "ff1", "legacy": "++np.array",
                                 "legacy-array": [1, 2, 3]}}, f)
    # image-files: EDF frames written by fabio, YAML in hexrd's layout
    os.makedirs("imagefiles", exist_ok=True)
    for i, frame in enumerate(data):
        fabio.edfimage.EdfImage(data=frame).write(f"imagefiles/frame_{i:03d}.edf")
    with open("imagefiles.yml", "w") as f:
        yaml.safe_dump({"image-files": {"directory": "imagefiles", "files": "frame_*.edf"},
                        "options": {"empty-frames": 0, "max-total-frames": 0},
                        "meta": {"omega": "! load-numpy-array fc_yml-omega.npy",
                                 "panel": "ff1"}}, f)
    # raw-image: big-endian int32 frames after a 16-byte header
    with open("raw.bin", "wb") as f:
        f.write(b"\0" * 16 + data.astype(">i4").tobytes())
    with open("raw.yml", "w") as f:
        yaml.safe_dump({"filename": "raw.bin", "scalar": {"type": "i", "bytes": 4,
                        "signed": True, "endian": "big"}, "shape": "12 10", "skip": 16}, f)
    check(data, meta)


def check(data: np.ndarray, meta: dict) -> None:
    """Open every fixture with the real hexrd and compare frames and metadata."""
    from hexrd.core import imageseries
    from hexrd.core.imageseries.load.framecache import FrameCacheImageSeriesAdapter
    from hexrd.core.imageseries.load.rawimage import RawImageSeriesAdapter
    from hexrd.core.imageseries.omega import OmegaImageSeries

    series = {
        "hdf5_gzip.h5": imageseries.open("hdf5_gzip.h5", "hdf5", path="imageseries"),
        "fc.npz": imageseries.open("fc.npz", "frame-cache", style="npz"),
        "fc.fch5": imageseries.open("fc.fch5", "frame-cache", style="fch5"),
        "fc.yml": imageseries.ImageSeries(FrameCacheImageSeriesAdapter("fc.yml", style="yml")),
        "imagefiles.yml": imageseries.open("imagefiles.yml", "image-files"),
        "raw.yml": imageseries.ImageSeries(RawImageSeriesAdapter("raw.yml")),
    }
    for name, s in series.items():
        got = np.stack([np.asarray(s[i]) for i in range(len(s))])
        assert np.array_equal(got, data), name
        if name != "raw.yml":  # hexrd's raw-image has no metadata
            assert np.array_equal(OmegaImageSeries(s).omega, meta["omega"]), name
        print(f"hexrd reads {name}: {len(s)} frames {s.dtype}, metadata {sorted(s.metadata)}")


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
