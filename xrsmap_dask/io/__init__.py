"""Low-level ROI readers: uncompressed EDF by positioned reads, HDF5 hyperslabs, and fabio
for everything else.  Kernels only: numpy in, numpy out, no dask."""
