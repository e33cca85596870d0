"""Composite, ROI-sum and annulus maps as dask graphs, all from one read pass.

* :mod:`.settings`: what to compute (:class:`MapSpec`, :class:`Ring`, :class:`UnitRing`,
  :func:`rings`, :func:`radial_bins`) and the corrections (:class:`Corrections`);
* :mod:`.radial`: rings in a physical unit and radial bins from a detector geometry
  (:class:`RadialSpec`, a pyFAI PONI file);
* :mod:`.coords`: the outputs' scan coordinates (:class:`ScanAxes`);
* :mod:`.kernels`: numpy kernels (corrections, binning, block reduction, placement);
* :mod:`.layout`: the job's read box and write units (:func:`plan_maps`);
* :mod:`.graph`: the dask graph (:func:`build_maps`);
* :mod:`.output`: the job as an output request for :mod:`xrsmap_dask.store`;
* :mod:`.background`: the background image from background frames.
"""
from ..roi import RoiSlices, check_binning, normalize_roi, roi_shape
from .background import background_image
from .graph import Maps, annulus_sum, build_maps, composite, roi_sum
from .kernels import (FrameResults, KernelParams, UnitMaps, apply_corrections,
                      bin_frames, mosaic, reduce_block, ring_bbox, ring_mask, union_box)
from .layout import MapPlan, plan_maps
from .coords import ScanAxes
from .radial import RadialSpec
from .settings import Corrections, MapSpec, Ring, UnitRing, radial_bins, rings

__all__ = ["MapSpec", "Corrections", "Ring", "UnitRing", "RadialSpec", "ScanAxes", "rings", "radial_bins", "build_maps", "mosaic",
           "background_image", "check_binning", "Maps", "MapPlan", "plan_maps",
           "apply_corrections", "bin_frames", "reduce_block", "composite", "roi_sum",
           "annulus_sum", "FrameResults", "KernelParams", "UnitMaps", "ring_bbox", "ring_mask",
           "union_box", "RoiSlices", "normalize_roi", "roi_shape"]
