"""The synthetic scans hold what they claim: real EDF files, rings at the radii, a moving spot."""
from __future__ import annotations

import fabio
import h5py
import numpy as np

from xrsmap_dask import synth


def test_files_rings_spot_mask_and_hdf5(tmp_path):
    scan = synth.make_scan(tmp_path, npt_y=3, npt_x=4, frame_shape=(96, 80), noise=False,
                           n_background=2, hdf5=True)
    assert len(scan.files) == 12 and len(scan.background_files) == 2
    frames = np.stack([fabio.open(f).data for f in scan.files])
    assert frames.dtype == np.uint16 and frames.shape == (12, 96, 80)
    with h5py.File(scan.hdf5_file, "r") as f:
        np.testing.assert_array_equal(f[scan.hdf5_dataset][()], frames)
    mask = fabio.open(scan.mask_file).data != 0
    assert mask.any() and (frames[:, mask] == synth.HOT_VALUE).all()
    # header lengths vary between files
    sizes = {len(open(f, "rb").read().split(b"}\n", 1)[0]) for f in scan.files}
    assert len(sizes) > 1
    # the noiseless frame equals the model; its radial profile peaks at the ring radii
    model = synth.model_frame(5, 3, 4, (96, 80), scan.centre, scan.radii)
    good = ~mask
    np.testing.assert_array_equal(frames[5][good], np.rint(model)[good].astype(np.uint16))
    yy, xx = np.indices((96, 80))
    r = np.hypot(yy - scan.centre[0], xx - scan.centre[1])
    no_spot = synth.model_frame(5, 3, 4, (96, 80), scan.centre, scan.radii, spot=False)
    for radius in scan.radii[:2]:
        on = no_spot[np.abs(r - radius) < 0.5].mean()
        off = no_spot[np.abs(r - radius - 6) < 0.5].mean()
        assert on > off + 50
    # the spot moves with the scan position
    peaks = [np.unravel_index(np.argmax(np.where(good, f, 0)), f.shape) for f in frames[[0, 11]]]
    assert peaks[0] != peaks[1]
    assert synth.SynthScan.load(tmp_path).files == scan.files
